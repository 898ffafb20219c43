"""Channel importance and activation patterns of fitted EEG decoders (arrays in, arrays out).

Figures: :mod:`neuroattn.report.eeg_patterns`; scoring maps against the simulated truth:
:mod:`neuroattn.metrics.eeg_truth`.

Per class ``k`` and EEG channel ``c`` (rows normalised to sum to 1):

* :func:`gradient_x_input` (torch nets): mean over the trials of class ``k`` of
  ``sum_t |d logit_k / d x[c, t] * x[c, t]|``.
* :func:`attention_importance` (BaseNet with a channel-attention module): the module's mean
  channel gate over the trials of class ``k`` (``attention_weights``, over the 16 feature maps)
  carried back to the electrodes through the absolute 1x1 mixing weights and the spatial
  *patterns* (training covariance times spatial filter, Haufe et al. 2014) of the first block.
* :func:`occlusion_importance` (any estimator with ``predict_proba``, used for CSP+LDA and TS+LR):
  mean drop of the true class's probability when channel ``c`` is set to zero (its mean after
  standardisation).

:func:`channel_importance` picks one per model: attention where the module has a gate,
gradient x input for the other nets, occlusion for the classic pipelines.

These three describe the *filters* of a decoder: which electrodes its output is sensitive to.
Filters are not interpretable per electrode (Haufe et al. 2014, NeuroImage 87:96-110): a decoder
also weights channels that only cancel noise. The *activation pattern* is:
:func:`power_pattern` correlates, over test trials, a model's evidence for each class with every
electrode's log band power; :func:`erd_map` keeps its power-decrease (ERD) part as a per-class map.
It needs nothing but predicted probabilities, so it works for every model alike.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "attention_importance", "attention_weights", "band_log_power", "channel_importance", "erd_map",
    "gradient_x_input", "occlusion_importance", "pattern_from_power", "power_pattern",
]


def _normalise(imp: np.ndarray) -> np.ndarray:
    imp = np.asarray(imp, dtype=np.float64)
    s = imp.sum(axis=1, keepdims=True)
    return np.divide(imp, s, out=np.zeros_like(imp), where=s > 0)


def _per_class(values: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    out = np.full((n_classes,) + values.shape[1:], np.nan)
    for k in range(n_classes):
        if np.any(y == k):
            out[k] = values[y == k].mean(0)
    return out


def gradient_x_input(module, X: np.ndarray, y: np.ndarray, n_classes: int, batch_size: int = 64,
                     raw=None) -> np.ndarray:
    """Gradient x input channel importance (n_classes, n_chans); ``y`` holds class indices.

    ``raw = (X_raw, M)``: the model input is ``X = M_n X_raw_n + b`` per trial (alignment and
    standardisation, ``M`` (n, C, C)); the importance is then taken in electrode space,
    ``|(M_n^T grad) * X_raw_n|``.
    """
    import torch

    module = module.cpu().eval()
    rows = []
    for start in range(0, len(X), batch_size):
        sl = slice(start, start + batch_size)
        x = torch.as_tensor(X[sl], dtype=torch.float32).requires_grad_(True)
        yy = torch.as_tensor(y[sl], dtype=torch.long)
        logits = module(x)
        (grad,) = torch.autograd.grad(logits.gather(1, yy[:, None]).sum(), x)
        grad, xin = grad.numpy().astype(np.float64), x.detach().numpy()
        if raw is not None:
            grad, xin = np.einsum("ndc,ndt->nct", raw[1][sl], grad), raw[0][sl]
        rows.append(np.abs(grad * xin).sum(-1))
    return _normalise(_per_class(np.concatenate(rows), np.asarray(y), n_classes))


def attention_weights(module, X: np.ndarray, y: np.ndarray, n_classes: int, batch_size: int = 128):
    """Mean channel gate of ``module.attention`` per class (n_classes, n_feature_maps), or None."""
    import torch

    att = getattr(module, "attention", None)
    if att is None or not hasattr(att, "_keep"):
        return None
    module = module.cpu().eval()
    gates = []
    with torch.no_grad():
        for start in range(0, len(X), batch_size):
            module(torch.as_tensor(X[start:start + batch_size], dtype=torch.float32))
            gates.append(att.last_weights.numpy())
    return _per_class(np.concatenate(gates), np.asarray(y), n_classes)


def attention_importance(module, X: np.ndarray, y: np.ndarray, n_classes: int, X_train: np.ndarray):
    """Attention weights carried back to the electrodes (n_classes, n_chans), or None.

    ``X_train`` gives the covariance for the spatial patterns.
    """
    w = attention_weights(module, X, y, n_classes)
    if w is None:
        return None
    filt = module.block1.spatial.weight.detach().numpy().reshape(module.block1.n_filters, -1)  # (F1, C)
    xt = np.asarray(X_train, dtype=np.float64)
    cov = np.einsum("nct,ndt->cd", xt, xt) / (xt.shape[0] * xt.shape[2])
    patterns = np.abs(filt @ cov)  # (F1, C)
    mix = np.abs(module.conv2.weight.detach().numpy()[:, :, 0, 0])  # (F2, F1)
    return _normalise(np.nan_to_num(w) @ mix @ patterns)


def occlusion_importance(estimator, X: np.ndarray, y: np.ndarray, n_classes: int, raw=None) -> np.ndarray:
    """Drop of the true-class probability when each channel is zeroed (n_classes, n_chans).

    With ``raw = (X_raw, M)`` (see :func:`gradient_x_input`) the *electrode* is zeroed before
    the alignment: its contribution ``M_n[:, c] X_raw_n[c]`` is removed from the model input.
    """
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y)
    base = estimator.predict_proba(X)[np.arange(len(y)), y]
    drops = np.zeros((len(y), X.shape[1]))
    for c in range(X.shape[1]):
        if raw is None:
            Xo = X.copy()
            Xo[:, c] = 0.0
        else:
            Xo = (X - raw[1][:, :, c, None] * raw[0][:, None, c, :]).astype(np.float32)
        drops[:, c] = base - estimator.predict_proba(Xo)[np.arange(len(y)), y]
    return _normalise(np.clip(_per_class(drops, y, n_classes), 0, None))


def channel_importance(estimator, X: np.ndarray, y: np.ndarray, X_train: np.ndarray, raw=None) -> dict:
    """Importance per class for a fitted estimator of :mod:`neuroattn.models.eeg_estimators`.

    Parameters
    ----------
    estimator : fitted TorchEEGClassifier or ClassicEEGClassifier
    X, y : test trials and their class *indices* (into ``estimator.classes_``)
    X_train : training trials (spatial patterns of the attention projection)
    raw : (X_raw, M), optional
        Electrode-space test trials and the per-trial linear map ``M`` (n, C, C) from them to the
        model input (Euclidean alignment, standardisation): gradient x input and occlusion are
        then reported per electrode rather than per aligned channel.

    Returns
    -------
    dict
        ``importance`` (n_classes, n_chans), ``method`` (``attention``, ``gradient_x_input`` or
        ``occlusion``), and for nets ``gradient_x_input`` and, with attention, ``attention``
        (n_classes, n_feature_maps).
    """
    k = len(estimator.classes_)
    module = getattr(estimator, "module_", None)
    if module is None:
        return {"importance": occlusion_importance(estimator, X, y, k, raw=raw), "method": "occlusion"}
    out = {"gradient_x_input": gradient_x_input(module, X, y, k, raw=raw)}
    att = attention_importance(module, X, y, k, X_train) if hasattr(module, "attention") else None
    if att is not None:
        out.update(importance=att, method="attention", attention=attention_weights(module, X, y, k))
    else:
        out.update(importance=out["gradient_x_input"], method="gradient_x_input")
    return out


def band_log_power(X_raw, sfreq: float, band=(8.0, 30.0), tmin: float = 0.5,
                   epoch_tmin: float = 0.0) -> np.ndarray:
    """Log band power of every trial and channel in a window after the cue.

    Parameters
    ----------
    X_raw : ndarray, shape (n_trials, n_chans, n_times)
        Electrode-space epochs (not aligned or standardised).
    sfreq : float
        Sampling frequency in Hz.
    band : (float, float)
        Pass band in Hz (zero-phase FIR, :func:`mne.filter.filter_data`, applied to the whole
        epoch before cropping so that the window is free of edge effects).
    tmin : float
        Start of the power window in seconds after the cue (or the epoch's start if that is later);
        the window runs to the end of the epoch.
    epoch_tmin : float
        Time of the epoch's first sample relative to the cue (config ``eeg.tmin``).

    Returns
    -------
    ndarray, shape (n_trials, n_chans)
        Natural log of the mean squared band-passed signal in the window.

    Raises
    ------
    ValueError
        ``X_raw`` not 3-D or not finite, ``sfreq`` not positive, a band outside (0, sfreq/2), or a
        window with fewer than two samples.
    """
    import mne

    X = np.asarray(X_raw, dtype=np.float64)
    if X.ndim != 3:
        raise ValueError(f"X_raw must have shape (n_trials, n_chans, n_times), got {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("X_raw holds non-finite values")
    if not (np.isfinite(sfreq) and sfreq > 0):
        raise ValueError(f"sfreq must be a positive number of Hz, got {sfreq!r}")
    lo, hi = (float(b) for b in band)
    if not 0 < lo < hi < sfreq / 2:
        raise ValueError(f"band must satisfy 0 < low < high < sfreq/2 = {sfreq / 2:g} Hz, got {tuple(band)}")
    start = max(0, int(round((tmin - epoch_tmin) * sfreq)))
    if X.shape[2] - start < 2:
        raise ValueError(f"power window from {tmin:g} s after the cue is outside the epoch ({X.shape[2]} samples "
                         f"at {sfreq:g} Hz starting {epoch_tmin:g} s after the cue)")
    Xb = mne.filter.filter_data(X, sfreq, lo, hi, n_jobs=None, verbose="error")
    return np.log(np.mean(Xb[..., start:] ** 2, axis=-1) + np.finfo(float).tiny)


def _zscore_columns(a: np.ndarray) -> np.ndarray:
    a = a - a.mean(0)
    sd = a.std(0)
    return np.divide(a, sd, out=np.zeros_like(a), where=sd > 1e-12 * (np.abs(a).max() + 1e-300))


def power_pattern(proba, X_raw, sfreq: float, band=(8.0, 30.0), tmin: float = 0.5,
                  epoch_tmin: float = 0.0) -> np.ndarray:
    """Activation pattern of a decoder in band power: class evidence vs each electrode's log power.

    For class ``k`` the evidence of trial ``n`` is the centred log-probability
    ``e_nk = log p_nk - mean_j log p_nj``; the pattern is the Pearson correlation over test
    trials between ``e_k`` and the log band power of each electrode (:func:`band_log_power`).
    Unlike filter-based importance (gradients, attention, occlusion), this is a forward model
    (Haufe et al. 2014) and only uses the predicted probabilities: it applies to any classifier.

    Parameters
    ----------
    proba : ndarray, shape (n_trials, n_classes)
        Predicted class probabilities of the test trials (one seed).
    X_raw : ndarray, shape (n_trials, n_chans, n_times)
        The same test trials in electrode space.
    sfreq, band, tmin, epoch_tmin
        See :func:`band_log_power` (defaults: 8-30 Hz, from 0.5 s after the cue to the end).

    Returns
    -------
    ndarray, shape (n_classes, n_chans)
        Correlations in [-1, 1]. Sign convention: **negative** means that the model's evidence for
        the class grows as the electrode's band power *drops* (event-related desynchronisation,
        ERD, the motor-imagery signature); positive means it grows with a power *increase* (ERS).
        Classes or electrodes without variance over the trials get 0.

    Raises
    ------
    ValueError
        ``proba`` not 2-D, negative, non-finite or with fewer than two classes; a trial-count
        mismatch with ``X_raw``; fewer than three trials; bad ``X_raw`` / band / window
        (:func:`band_log_power`).
    """
    P = np.asarray(proba, dtype=np.float64)
    if P.ndim != 2 or P.shape[1] < 2:
        raise ValueError(f"proba must have shape (n_trials, n_classes >= 2), got {P.shape}")
    if not np.all(np.isfinite(P)) or (P < 0).any():
        raise ValueError("proba must hold finite, non-negative probabilities")
    X_shape = np.shape(X_raw)
    if len(X_shape) != 3 or X_shape[0] != P.shape[0]:
        raise ValueError(f"proba has {P.shape[0]} trials but X_raw has shape {X_shape}; expected "
                         f"({P.shape[0]}, n_chans, n_times)")
    if P.shape[0] < 3:
        raise ValueError(f"power_pattern needs at least 3 trials to correlate, got {P.shape[0]}")
    return pattern_from_power(P, band_log_power(X_raw, sfreq, band=band, tmin=tmin, epoch_tmin=epoch_tmin))


def pattern_from_power(proba, power) -> np.ndarray:
    """:func:`power_pattern` from precomputed log band power (n_trials, n_chans) of the same trials
    (:func:`band_log_power`): one filtering for every model evaluated on those trials."""
    P = np.asarray(proba, dtype=np.float64)
    logp = np.log(np.clip(P, 1e-9, None))
    evidence = logp - logp.mean(1, keepdims=True)
    return np.clip(_zscore_columns(evidence).T @ _zscore_columns(power) / P.shape[0], -1.0, 1.0)


def erd_map(pattern) -> np.ndarray:
    """Per-class ERD map of a :func:`power_pattern`: its negative part, each row summing to 1.

    A class with no negative correlation gets a row of zeros (NaN rows stay NaN).
    """
    pattern = np.asarray(pattern, dtype=np.float64)
    if pattern.ndim != 2:
        raise ValueError(f"pattern must have shape (n_classes, n_chans), got {pattern.shape}")
    out = _normalise(np.clip(-np.nan_to_num(pattern), 0, None))
    out[np.isnan(pattern).all(1)] = np.nan
    return out
