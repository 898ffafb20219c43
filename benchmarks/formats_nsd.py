"""NSD adapter: time and peak memory to read one session of betas (750 trials) inside ROI voxels.

    python benchmarks/formats_nsd.py [--full] [--voxels 20000]

Writes a synthetic session file in the released layout (HDF5 int16 (750, Z, Y, X), and the
NIfTI (X, Y, Z, 750) variant) into a temporary folder, then times
``neuroattn.data.formats.nsd.read_session_betas``. ``--full`` uses the real 1.8-mm grid
(81 x 104 x 83: a 1 GB file); the default uses half of each dimension (134 MB).
"""
import argparse
import resource
import tempfile
import time
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np

from neuroattn.data.formats import nsd


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--voxels", type=int, default=20000)
    ap.add_argument("--nifti", action="store_true", help="also time the .nii.gz variant")
    a = ap.parse_args()
    shape = (81, 104, 83) if a.full else (41, 52, 42)
    rng = np.random.default_rng(0)
    n_vox = min(a.voxels, int(np.prod(shape)))
    flat = np.sort(rng.choice(int(np.prod(shape)), n_vox, replace=False))
    ijk = np.column_stack(np.unravel_index(flat, shape))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "betas_session01.hdf5"
        t0 = time.perf_counter()
        with h5py.File(path, "w") as f:
            ds = f.create_dataset("betas", (nsd.TRIALS_PER_SESSION,) + shape[::-1], dtype=np.int16)
            for lo in range(0, nsd.TRIALS_PER_SESSION, 50):
                ds[lo:lo + 50] = rng.integers(-900, 900, (50,) + shape[::-1], dtype=np.int16)
        print(f"grid {shape}, {n_vox} ROI voxels; wrote {path.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - t0:.1f} s")
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t0 = time.perf_counter()
        out = nsd.read_session_betas(path, ijk, shape)
        dt = time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"hdf5 read: {dt:.2f} s for {out.shape} ({path.stat().st_size / 1e6 / dt:.0f} MB/s); "
              f"peak RSS {rss:.0f} MB (before {rss0:.0f} MB); 40 sessions ~ {40 * dt / 60:.1f} min")
        if a.nifti:
            with h5py.File(path, "r") as f:
                data = f["betas"][()].transpose(3, 2, 1, 0)
            npath = Path(d) / "betas_session01.nii.gz"
            nib.save(nib.Nifti1Image(data, np.eye(4)), npath)
            del data
            t0 = time.perf_counter()
            out2 = nsd.read_session_betas(npath, ijk, shape)
            dt = time.perf_counter() - t0
            print(f"nifti read: {dt:.2f} s; same values: {np.array_equal(out, out2)}")


if __name__ == "__main__":
    main()
