"""A feature cache that does not fit the disk is refused before anything is extracted (issue 19)."""
import errno
import shutil
from collections import namedtuple

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from neuroattn.features.backbones import load_backbone
from neuroattn.features.cache import cache_features, layer_shapes
from neuroattn.features.store import _CHUNK_OVERHEAD, _FILE_OVERHEAD, _NAME_OVERHEAD, store_nbytes
from neuroattn.utils import available_disk, check_fits_disk

SMALL = dict(widths=(8, 16, 16, 32))
_Usage = namedtuple("_Usage", "total used free")


@pytest.fixture
def cnn():
    torch.manual_seed(0)
    return load_backbone("smallcnn", image_size=32, **SMALL)


def _tiny_disk(monkeypatch, free):
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: _Usage(real(p).total, real(p).used, free))


def test_store_nbytes_by_hand():
    # layer a: 16 tokens x 8 channels (under PCA 12: kept), b: 4 x 32 with a CLS token, reduced to 12
    got = store_nbytes(10, {"a": (16, 8), "b": (4, 32)}, dtype="float16", pca=12, cls=["b"])
    a = 10 * 16 * 8 * 2 + 10 * 8 * 4 + 10 * _CHUNK_OVERHEAD
    b = 10 * 4 * 12 * 2 + 2 * 10 * 12 * 4 + 10 * _CHUNK_OVERHEAD + (12 * 32 + 32) * 4
    assert got == a + b + _FILE_OVERHEAD + 10 * _NAME_OVERHEAD
    # float32 doubles the tokens; no PCA keeps 32 channels
    assert store_nbytes(10, {"b": (4, 32)}, "float32") - store_nbytes(10, {"b": (4, 32)}, "float16") == 10 * 4 * 32 * 2
    assert store_nbytes(9000, {"x": (961, 768)}, "float16") > 9000 * 961 * 768 * 2   # NSD: 13.3 GB of tokens


def test_store_nbytes_bounds_the_written_file(tmp_path, cnn, rng):
    images = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    layers = ["layer1", "layer3"]
    shapes, cls = layer_shapes(cnn, images, layers)
    assert shapes == {"layer1": (64, 8), "layer3": (4, 16)} and cls == []
    for pca, dtype in ((None, "float16"), (6, "float32")):
        path = tmp_path / f"f{pca}.h5"
        cache_features(cnn, images, path, layers=layers, dtype=dtype, pca=pca, fit_on=np.arange(30))
        size = path.stat().st_size
        need = store_nbytes(40, shapes, dtype=dtype, pca=pca)
        with h5py.File(path, "r") as f:          # the data alone, as stored
            data = sum(f[k][name].nbytes for k in layers for name in ("tokens", "pooled"))
        assert data <= size <= need, (data, size, need)
        assert need - data < 2**20 + 2**15                       # overhead bounded: no wild margin


def test_check_fits_disk_message():
    with pytest.raises(OSError, match=r"out\.h5: writing the cache needs 2\.00 GiB of disk but 1\.00 GiB is free "
                                      r"there; change features\.pca") as exc:
        check_fits_disk(2 * 2**30, "the cache", "out.h5", "features.pca", available=2**30)
    assert exc.value.errno == errno.ENOSPC
    check_fits_disk(2**30, "the cache", "out.h5", "features.pca", available=2**30)   # fits: no error


def test_available_disk_of_a_folder_not_made_yet(tmp_path):
    assert available_disk(tmp_path / "a" / "b" / "f.h5") == shutil.disk_usage(tmp_path).free


def test_cache_refused_when_disk_too_small(tmp_path, cnn, rng, monkeypatch):
    images = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    path = tmp_path / "f.h5"
    cache_features(cnn, images, path, layers=["layer2"])          # the real disk: fits
    assert path.is_file()
    path.unlink()
    _tiny_disk(monkeypatch, free=100_000)                         # 100 kB free; the cache needs over 1 MB
    with pytest.raises(OSError, match=r"f\.h5: writing the feature cache of 12 images x layers layer2 16x16 "
                                      r"\(float16\) needs 1\.\d MiB of disk but 0\.1 MiB is free there; change pca"):
        cache_features(cnn, images, path, layers=["layer2"])
    assert not path.exists()


def test_extract_features_stage_names_output_and_keys(tmp_path, rng, monkeypatch):
    from neuroattn.stages.features import extract_features

    stim = tmp_path / "bids" / "stimuli"
    stim.mkdir(parents=True)
    names = [f"im{i}.png" for i in range(6)]
    for i, n in enumerate(names):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(stim / n)
    pd.DataFrame({"image": names, "split": ["train"] * 4 + ["test"] * 2}).to_csv(tmp_path / "split.tsv", sep="\t",
                                                                                  index=False)
    out = tmp_path / "results" / "features.h5"
    kw = dict(features_h5=str(out), split=str(tmp_path / "split.tsv"), stimuli_dir=str(stim), backbone="tiny",
              backbone_config={"arch": "smallcnn", "weights": "random", "layers": ["layer2"], "image_size": 32},
              features={"batch_size": 4}, seed=0, device="cpu")
    _tiny_disk(monkeypatch, free=1000)
    with pytest.raises(OSError, match=rf"{out}: writing the feature cache of 6 images .* needs .* of disk but "
                                      r".* is free there; change features\.pca .*features\.dtype .*"
                                      r"features\.backbones\.tiny\.layers"):
        extract_features(**kw)
    assert not out.exists() and not list(out.parent.glob(".features*"))   # no temporary left behind
    monkeypatch.undo()
    extract_features(**kw)
    assert out.is_file()
