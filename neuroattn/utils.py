"""Small shared helpers: seeding, devices, atomic writes, logging set-up."""
from __future__ import annotations

import contextlib
import logging
import os
import random
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


def set_threads(n: int | None) -> None:
    """Limit torch's intra-op threads to ``n`` (a rule's ``threads``); None leaves the default."""
    if n:
        import torch

        torch.set_num_threads(int(n))


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
