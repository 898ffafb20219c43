"""Cross-subject decoding by anatomical alignment: the baseline the in-context decoder replaces.

The training subjects' voxel encoders (ridge on image embeddings, one alpha per voxel) are carried
to the held-out subject's voxels through anatomy (the same voxel of a shared grid, e.g. MNI space),
averaged over training subjects, and used to predict the held-out subject's response pattern to
every candidate image. A test pattern is decoded as the candidate whose predicted pattern
correlates best with it. No data of the held-out subject is used at all, so this is what
MindEye-style anatomical alignment offers without fine-tuning.

Only applicable when every subject's betas sit on one grid (same affine and shape); otherwise
:func:`aligned_ridge_decoding` returns None.
"""
from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger("neuroattn.models.alignment")

def shared_grid(betas_list) -> bool:
    """Whether every :class:`~neuroattn.data.betas.Betas` has the same affine and grid shape."""
    ref = betas_list[0]
    if ref.affine is None or ref.shape is None:
        return False
    return all(b.affine is not None and b.shape is not None and np.allclose(b.affine, ref.affine)
               and tuple(b.shape) == tuple(ref.shape) for b in betas_list[1:])


def _voxel_index(betas) -> dict:
    return {tuple(int(v) for v in ijk): i for i, ijk in enumerate(np.asarray(betas.voxel_ijk))}


def _standardize_rows(P):
    P = P - P.mean(axis=1, keepdims=True)
    return P / np.maximum(np.linalg.norm(P, axis=1, keepdims=True), 1e-12)


def aligned_ridge_decoding(train_subjects, heldout, candidates, test_rows, alphas):
    """Decode a held-out subject's test patterns with anatomically aligned training-subject encoders.

    Parameters
    ----------
    train_subjects : list of (Betas, X_train, Y_train)
        Each training subject's betas (for voxel positions) and its training embeddings/responses.
    heldout : (Betas, Y_test)
        The held-out subject's betas and its test responses (n_test, n_vox).
    candidates : ndarray, (n_candidates, d)
        Embeddings of the candidate images.
    test_rows : ndarray of int, (n_test,)
        Row of each test pattern's true image in ``candidates``.
    alphas : sequence of float
        Ridge grid (config ``incontext.aligned_ridge_alphas``).

    Returns
    -------
    dict or None
        ``top1``, ``top5`` (Score), ``r`` (per held-out voxel Pearson r of the aligned prediction of
        its test responses, NaN for unmatched voxels), ``n_matched``; None when the subjects do not
        share a grid or no voxel matches.
    """
    from ..metrics import pearson_r, topk_retrieval
    from .ridge import ridge_loo

    h_betas, Y_test = heldout
    if not shared_grid([h_betas] + [b for b, _, _ in train_subjects]):
        log.info("anatomical alignment not applicable: subjects are not on one grid")
        return None
    h_index = list(map(tuple, np.asarray(h_betas.voxel_ijk).astype(int)))
    sums = np.zeros((len(candidates), len(h_index)))
    counts = np.zeros(len(h_index))
    for betas, X_tr, Y_tr in train_subjects:
        index = _voxel_index(betas)
        cols = np.array([index.get(ijk, -1) for ijk in h_index])
        hit = cols >= 0
        if not hit.any():
            continue
        model = ridge_loo(X_tr, Y_tr[:, cols[hit]], alphas)
        sums[:, hit] += model.predict(candidates)
        counts[hit] += 1
    matched = counts > 0
    if not matched.any():
        log.info("anatomical alignment: no held-out voxel matches a training subject's voxel")
        return None
    pred = sums[:, matched] / counts[matched]
    obs = np.asarray(Y_test)[:, matched]
    r = np.full(len(h_index), np.nan)
    r[matched] = pearson_r(obs, pred[test_rows])
    q, c = _standardize_rows(obs), _standardize_rows(pred)  # cosine of centred patterns = Pearson
    return {"top1": topk_retrieval(q, c, test_rows, k=1), "top5": topk_retrieval(q, c, test_rows, k=5),
            "r": r, "n_matched": int(matched.sum())}
