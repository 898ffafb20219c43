"""Channel importance of fitted EEG decoders, and the figures the report draws from it.

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
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "attention_importance", "attention_weights", "channel_importance", "gradient_x_input",
    "occlusion_importance", "plot_confusion", "plot_topomaps",
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


def _info(ch_names, sfreq: float = 250.0):
    import mne

    info = mne.create_info(list(ch_names), sfreq, "eeg")
    names = mne.channels.get_builtin_montages()
    info.set_montage("colin27_1020" if "colin27_1020" in names else "standard_1020", on_missing="ignore")
    return info


def plot_topomaps(importance: np.ndarray, ch_names, classes, title: str = "", sfreq: float = 250.0):
    """One scalp map per class of a (n_classes, n_chans) importance array (``mne.viz.plot_topomap``).

    Channel positions come from MNE's ``standard_1020`` montage; returns the matplotlib figure.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import mne

    importance = np.asarray(importance)
    if importance.shape != (len(classes), len(ch_names)):
        raise ValueError(f"importance has shape {importance.shape}, expected ({len(classes)}, {len(ch_names)})")
    info = _info(ch_names, sfreq)
    fig, axes = plt.subplots(1, len(classes), figsize=(2.4 * len(classes), 2.6), squeeze=False)
    for ax, row, cls in zip(axes[0], importance, classes):
        mne.viz.plot_topomap(np.nan_to_num(row), info, axes=ax, show=False, cmap="Reds",
                             vlim=(0, np.nanmax(importance) or None), contours=0)
        ax.set_title(str(cls), fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_confusion(confusion: np.ndarray, classes, title: str = ""):
    """Row-normalised confusion matrix (true x predicted) as a matplotlib figure."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    cm = np.asarray(confusion, dtype=float)
    rows = cm.sum(1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(classes), 0.8 + 0.7 * len(classes)))
    ax.imshow(frac, vmin=0, vmax=1, cmap="Blues")
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{frac[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if frac[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
