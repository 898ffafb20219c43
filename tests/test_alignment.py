"""Anatomical-alignment baseline: decodes when voxel tuning follows anatomy, not otherwise."""
import numpy as np
import pytest

from neuroattn.data.betas import Betas
from neuroattn.config import section_defaults
from neuroattn.models.alignment import aligned_ridge_decoding, shared_grid

ALPHAS = section_defaults("incontext", "aligned_ridge_alphas")

AFFINE = np.diag([4.0, 4.0, 4.0, 1.0])


def _subject(name, W, ijk, X, rng, noise=0.3, affine=AFFINE):
    Y = X @ W + noise * rng.standard_normal((len(X), W.shape[1]))
    b = Betas(name, Y, [f"im{i}" for i in range(len(X))], ["roi"] * W.shape[1], voxel_ijk=ijk,
              affine=affine, shape=(10, 10, 10))
    return b, Y


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    d, n_vox, n_train, n_test = 8, 120, 200, 40
    ijk = np.stack(np.unravel_index(rng.choice(1000, n_vox, replace=False), (10, 10, 10)), axis=1)
    W = rng.standard_normal((d, n_vox))  # tuning is a property of the location: shared across subjects
    X_train, X_test = rng.standard_normal((n_train, d)), rng.standard_normal((n_test, d))
    train = []
    for s in ["01", "02"]:
        b, Y = _subject(s, W, ijk, X_train, rng)
        train.append((b, X_train, Y))
    h, Y_test = _subject("03", W, ijk, X_test, rng)
    return train, h, Y_test, X_test, W, ijk, rng


def test_aligned_encoders_decode_the_held_out_subject(problem):
    train, h, Y_test, X_test, *_ = problem
    res = aligned_ridge_decoding(train, (h, Y_test), X_test, np.arange(len(X_test)), ALPHAS)
    assert res["n_matched"] == Y_test.shape[1]
    assert res["top1"].value > 0.8  # chance is 1/40
    assert np.nanmedian(res["r"]) > 0.8


def test_misaligned_voxels_decode_at_chance(problem):
    train, h, Y_test, X_test, W, ijk, rng = problem
    # the held-out subject's tuning is permuted across locations: anatomy no longer predicts it
    h2, Y2 = _subject("03", W[:, rng.permutation(W.shape[1])], ijk, X_test, rng)
    res = aligned_ridge_decoding(train, (h2, Y2), X_test, np.arange(len(X_test)), ALPHAS)
    assert res["top1"].value < 0.2


def test_not_applicable_without_a_shared_grid(problem):
    train, h, Y_test, X_test, W, ijk, rng = problem
    other, _ = _subject("03", W, ijk, X_test, rng, affine=np.diag([2.0, 2.0, 2.0, 1.0]))
    assert not shared_grid([train[0][0], other])
    assert aligned_ridge_decoding(train, (other, Y_test), X_test, np.arange(len(X_test)), ALPHAS) is None
