"""Small shared helpers: seeding, devices, atomic writes, logging set-up."""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and torch (when installed); return a NumPy generator from ``seed``."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return np.random.default_rng(seed)


SEED_STRIDE = 100_003  # a prime: derived seeds of different base seeds do not collide for index < stride


def derive_seed(seed: int, index: int = 0) -> int:
    """The seed of the ``index``-th independent draw under base ``seed`` (ensemble member, EEG
    seed, training epoch): ``seed * SEED_STRIDE + index``. The one place seeds are derived."""
    seed, index = int(seed), int(index)
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be >= 0, got seed={seed}, index={index}")
    return seed * SEED_STRIDE + index


def resolve_device(device: str = "auto") -> str:
    """Return ``"cuda"`` or ``"cpu"`` for ``device`` in ``{"auto", "cpu", "cuda"}``."""
    if device not in {"auto", "cpu", "cuda"}:
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but no CUDA device is available")
    return device


_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def set_threads(n: int | None) -> None:
    """Limit this process to ``n`` compute threads (a rule's ``threads``); None leaves the defaults.

    Sets torch's intra-op threads (``OMP_NUM_THREADS`` for a torch imported later) and, through threadpoolctl, every BLAS (NumPy's and SciPy's
    OpenBLAS, MKL) and OpenMP pool already loaded; the environment variables cover libraries
    loaded later and child processes. Snakemake sets these variables for ``shell:`` rules only,
    so without this a ``threads: 1`` ``script:`` job ran one BLAS/OpenMP thread per core, and two
    such jobs side by side oversubscribed the cores.
    """
    if not n:
        return
    n = int(n)
    for var in _THREAD_ENV:
        os.environ[var] = str(n)
    import sys

    # torch reads OMP_NUM_THREADS when it is first imported: only a torch already loaded needs
    # telling, and stages that never use torch do not pay its ~2 s import here
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return
    threadpool_limits(limits=n)  # process-wide: not used as a context manager


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success.

    Readers never see a half-written file, and a crash leaves no partial output behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file ordinary permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def setup_logging(log_file: str | os.PathLike | None = None, level: int = logging.INFO) -> logging.Logger:
    """Log to stderr and, when given, to ``log_file`` (a rule's ``log:``). Returns the package logger."""
    logger = logging.getLogger("neuroattn")
    logger.setLevel(level)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    logger.handlers.clear()
    for h in handlers:
        h.setFormatter(fmt)
        logger.addHandler(h)
    return logger


def run_key(*parts) -> str:
    """A short stable hash of JSON-serialisable ``parts`` (parameters, seed, input files).

    Used to name resumable checkpoint folders, so that a checkpoint is only resumed by a run with
    the same settings and inputs. Paths contribute their size and modification time.
    """
    import hashlib
    import json

    def norm(x):
        if isinstance(x, Path) or (isinstance(x, str) and os.path.isfile(x)):
            st = os.stat(x)
            return [str(x), st.st_size, st.st_mtime_ns]
        return x

    blob = json.dumps([norm(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def available_memory() -> int | None:
    """Bytes of memory this process can still take: ``MemAvailable`` of /proc/meminfo, capped by
    the cgroup (v2) limit when one is set; psutil elsewhere; None when unknown."""
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
                break
    except OSError:
        try:
            import psutil

            avail = int(psutil.virtual_memory().available)
        except ImportError:  # pragma: no cover
            return None
    try:  # a container's limit is lower than the host's free memory
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            avail = min(avail, int(limit) - used) if avail is not None else int(limit) - used
    except (OSError, ValueError):
        pass
    return avail


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def check_fits_memory(nbytes: int, what: str, path, key: str, available: int | None = None) -> None:
    """Refuse up front to load ``nbytes`` that do not fit the available memory.

    Parameters
    ----------
    nbytes : int
        Memory the load needs (in-memory size, including the copies the caller makes).
    what : str
        What is loaded (e.g. ``"layer3 tokens of 9000 images"``).
    path : path
        The file it comes from (named in the error).
    key : str
        The config key(s) that make it smaller (named in the error).
    available : int, optional
        Bytes available (default: :func:`available_memory`).

    Raises
    ------
    MemoryError
        Naming the file, the bytes needed, the bytes available and ``key``.
    """
    available = available_memory() if available is None else available
    if available is not None and nbytes > available:
        raise MemoryError(f"{path}: loading {what} needs {_gib(nbytes)} of memory but {_gib(available)} "
                          f"is available; change {key}, or run on a machine with more memory")


def check_hdf5_fits_memory(path, weights: dict, what: str, key: str) -> None:
    """Refuse up front to read HDF5 datasets that will not fit the available memory.

    ``weights`` maps dataset names of ``path`` to how many times their in-memory (float32) size
    the job holds at its peak (copies, float64 temporaries); the datasets are not read, only
    their shapes. See :func:`check_fits_memory`.
    """
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError:  # not HDF5: the reader's own error names the file
        return
    with f:
        need = sum(float(w) * int(np.prod(f[name].shape)) * 4 for name, w in weights.items() if name in f)
    check_fits_memory(int(need), what, path, key)


def _size(n: float) -> str:
    return _gib(n) if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def available_disk(path) -> int:
    """Free bytes (for this user) on the file system that ``path`` will be written to: that of
    its nearest existing folder (the output folder may not exist yet)."""
    folder = Path(path).absolute()
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    return int(shutil.disk_usage(folder).free)


def check_fits_disk(nbytes: int, what: str, path, key: str, available: int | None = None) -> None:
    """Refuse up front to write ``nbytes`` that do not fit the free disk space at ``path``.

    Parameters
    ----------
    nbytes : int
        Bytes the file will take on disk.
    what : str
        What is written (e.g. ``"the feature store of 9000 images"``).
    path : path
        The output file (named in the error; its folder's file system is checked).
    key : str
        The config key(s) that make it smaller (named in the error).
    available : int, optional
        Free bytes (default: :func:`available_disk` of ``path``).

    Raises
    ------
    OSError
        ``errno.ENOSPC``, naming the file, the bytes needed, the bytes free and ``key``.
    """
    available = available_disk(path) if available is None else available
    if nbytes > available:
        raise OSError(errno.ENOSPC, f"{path}: writing {what} needs {_size(nbytes)} of disk but {_size(available)} "
                                    f"is free there; change {key}, or write to a disk with more space")
