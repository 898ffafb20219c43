"""Noise ceilings: Brain-Score's split-half internal consistency and NSD's ncsnr-based ceiling.

Conventions (references.md sections 4-5):

- :func:`internal_consistency` (Brain-Score): repetitions split in two random halves (10 splits),
  each half averaged, Pearson r per unit between the halves, Spearman-Brown ``2r / (1 + r)``,
  median over units, mean over splits.  The result estimates the fraction of variance of the
  repetition-averaged response that is stimulus-driven, so ``r**2 / ceiling`` (ceiled explained
  variance, Brain-Score since Jan 2026) is on the same scale.
- :func:`ncsnr` / :func:`nsd_noise_ceiling` (NSD, Algonauts): noise sd from the variance over
  repetitions, signal sd from what is left of the total variance; NC = ncsnr^2 / (ncsnr^2 +
  mean(1 / n_repeats)).
"""
from __future__ import annotations

import logging

import numpy as np

from .score import Score, pearson_r

log = logging.getLogger("neuroattn.metrics")


def _check_reps(R, name="R") -> np.ndarray:
    R = np.asarray(R, dtype=np.float64)
    if R.ndim == 2:
        R = R[:, :, None]
    if R.ndim != 3:
        raise ValueError(f"{name} must have shape (n_repetitions, n_stimuli, n_units), got {R.shape}")
    if R.shape[0] < 2:
        raise ValueError(f"{name}: a noise ceiling needs at least 2 repetitions per stimulus, got {R.shape[0]}")
    if R.shape[1] < 3:
        raise ValueError(f"{name}: a noise ceiling needs at least 3 stimuli, got {R.shape[1]}")
    return R


def _valid_units(R) -> np.ndarray:
    """Units without NaN and not constant over all trials."""
    flat = R.reshape(-1, R.shape[2])
    finite = np.isfinite(flat).all(axis=0)
    spread = np.zeros(R.shape[2], dtype=bool)
    spread[finite] = np.ptp(flat[:, finite], axis=0) > 0
    return finite & spread


def spearman_brown(r, factor: float = 2.0):
    """Spearman-Brown prophecy ``factor * r / (1 + (factor - 1) * r)``."""
    r = np.asarray(r, dtype=np.float64)
    return factor * r / (1 + (factor - 1) * r)


def internal_consistency(R, n_splits: int = 10, random_state: int = 1) -> Score:
    """Brain-Score's split-half internal consistency with Spearman-Brown correction.

    Parameters
    ----------
    R : array-like, (n_repetitions, n_stimuli, n_units)
        Responses to each repetition of each stimulus.
    n_splits : int
        Random splits of the repetitions into two halves (the second half takes the extra
        repetition when their number is odd).
    random_state : int

    Returns
    -------
    Score
        ``value`` mean over splits of the median over units; ``error`` the standard error over
        splits (std / sqrt(n_splits)); ``raw`` (n_units,) each unit's corrected consistency
        averaged over splits (NaN for dropped units); ``meta['split_unit_r']`` the
        (n_splits, n_units) values; ``meta['n_dropped']`` the NaN or constant units dropped.
    """
    R = _check_reps(R)
    if n_splits < 1:
        raise ValueError(f"n_splits must be >= 1, got {n_splits}")
    n_reps, n_stim, n_units = R.shape
    ok = _valid_units(R)
    if not ok.any():
        raise ValueError("internal_consistency: every unit is NaN or constant")
    rng = np.random.default_rng(random_state)
    raw = np.full((n_splits, n_units), np.nan)
    half = n_reps // 2
    for s in range(n_splits):
        perm = rng.permutation(n_reps)
        a = R[perm[:half]][:, :, ok].mean(axis=0)
        b = R[perm[half:]][:, :, ok].mean(axis=0)
        raw[s, ok] = spearman_brown(pearson_r(a, b))
    per_split = np.nanmedian(raw[:, ok], axis=1)
    per_unit = np.full(n_units, np.nan)
    per_unit[ok] = raw[:, ok].mean(axis=0)
    return Score(value=float(per_split.mean()), error=float(per_split.std() / np.sqrt(n_splits)), raw=per_unit,
                 meta={"n_units": int(ok.sum()), "n_dropped": int((~ok).sum()), "n_stimuli": n_stim,
                       "n_repetitions": n_reps, "n_splits": n_splits, "per_split": per_split,
                       "split_unit_r": raw})


def ncsnr(R) -> np.ndarray:
    """NSD's noise-ceiling signal-to-noise ratio per unit.

    Parameters
    ----------
    R : array-like, (n_repetitions, n_stimuli, n_units)
        Single-trial responses (NSD z-scores them per unit within each session first).

    Returns
    -------
    ndarray, (n_units,)
        ``sqrt(max(0, total_var - noise_var)) / sqrt(noise_var)`` where ``noise_var`` is the mean
        over stimuli of the variance over repetitions (ddof=1) and ``total_var`` the variance of
        all trials (ddof=1; 1 for z-scored data, NSD's formula).  NaN for units with NaN or no
        trial-to-trial variance.
    """
    R = _check_reps(R)
    noise_var = R.var(axis=0, ddof=1).mean(axis=0)
    total_var = R.reshape(-1, R.shape[2]).var(axis=0, ddof=1)
    sig = np.sqrt(np.maximum(total_var - noise_var, 0.0))
    out = np.full(R.shape[2], np.nan)
    ok = np.isfinite(noise_var) & (noise_var > 0)
    out[ok] = sig[ok] / np.sqrt(noise_var[ok])
    return out


def nsd_noise_ceiling(ncsnr, n_repeats) -> np.ndarray:
    """NSD/Algonauts noise ceiling (a fraction of variance, in [0, 1]) per unit.

    Parameters
    ----------
    ncsnr : array-like, (n_units,)
    n_repeats : int or array-like of int, (n_images,)
        Repeat counts of the images the score is computed on (the responses being predicted are
        averages over that many trials).

    Returns
    -------
    ndarray, (n_units,)
        ``ncsnr**2 / (ncsnr**2 + mean(1 / n_repeats))``.
    """
    s = np.asarray(ncsnr, dtype=np.float64)
    n = np.atleast_1d(np.asarray(n_repeats, dtype=np.float64))
    if n.size == 0 or np.any(~np.isfinite(n)) or np.any(n < 1):
        raise ValueError("n_repeats must be a non-empty set of repeat counts >= 1")
    s2 = s**2
    return s2 / (s2 + np.mean(1.0 / n))


def ceiled_explained_variance(r, ceiling):
    """Brain-Score's ceiled explained variance ``r**2 / ceiling`` (scalars or arrays).

    ``ceiling`` is on the variance scale (an internal consistency or an NSD noise ceiling).
    NaN where the ceiling is not positive.
    """
    r = np.asarray(r, dtype=np.float64)
    c = np.asarray(ceiling, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(c > 0, r**2 / c, np.nan)
    return out if out.ndim else float(out)


def noise_normalized_r2(r, nc):
    """Algonauts score ``max(r, 0)**2 / nc`` per unit, capped at 1; NaN where nc is not positive."""
    r = np.asarray(r, dtype=np.float64)
    nc = np.asarray(nc, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(nc > 0, np.minimum(np.maximum(r, 0.0) ** 2 / nc, 1.0), np.nan)
    return out if out.ndim else float(out)


def images_noise_ceiling(ncsnr, images, n_repeats, subset=None) -> np.ndarray:
    """NSD noise ceiling per unit for predicting the repeat-averaged responses to ``subset``.

    Parameters
    ----------
    ncsnr : array-like, (n_units,)
    images : array-like of str, (n_images,)
        The images of the response table, in its order.
    n_repeats : array-like of int, (n_images,)
        How often each of ``images`` was shown.
    subset : array-like of str, optional
        The images scored (each must be in ``images``); ``None`` or empty: all images.

    Returns
    -------
    ndarray, (n_units,)
        :func:`nsd_noise_ceiling` with the repeat counts of ``subset`` (in ``subset``'s order).
    """
    n_repeats = np.asarray(n_repeats)
    if subset is None or len(subset) == 0:
        return nsd_noise_ceiling(ncsnr, n_repeats)
    pos = {im: i for i, im in enumerate(np.asarray(images).astype(str))}
    missing = [im for im in subset if str(im) not in pos]
    if missing:
        raise KeyError(f"images_noise_ceiling: {len(missing)} image(s) not in the table, e.g. {missing[:3]}")
    return nsd_noise_ceiling(ncsnr, n_repeats[[pos[str(im)] for im in subset]])


def subject_noise_ceiling(betas, heldout_images) -> np.ndarray:
    """Per-unit NSD noise ceiling of one subject's betas for predicting ``heldout_images``.

    Uses ``betas.ncsnr`` when filled, else :func:`ncsnr` of the repeated held-out trials
    (``betas.repeats(heldout_images)``); NaN (with a warning) when neither is possible.
    ``betas`` is any object with ``ncsnr``, ``images``, ``n_repeats``, ``betas``, ``subject`` and
    ``repeats`` (a :class:`neuroattn.data.betas.Betas`); nothing is read from disk here.
    """
    snr = np.asarray(betas.ncsnr, dtype=np.float64)
    if not np.isfinite(snr).any():
        try:
            snr = ncsnr(betas.repeats(heldout_images))
        except ValueError as exc:
            log.warning("sub-%s: no noise ceiling (%s)", betas.subject, exc)
            return np.full(betas.betas.shape[1], np.nan)
    return images_noise_ceiling(snr, betas.images, betas.n_repeats, list(heldout_images))
