"""One scikit-learn interface for every EEG decoder: torch nets and classic pipelines.

:func:`make_eeg_estimator` maps a leaderboard model name to an estimator:

=====================  ============================================================================
``basenet``            :class:`TorchEEGClassifier` with :class:`~.eeg_attention.BaseNet`
``basenet_<att>``      BaseNet with attention module ``<att>`` (a name of ``eeg_attention.ATTENTION``)
``eegnet``             EEGNet-8,2
``shallow``            ShallowConvNet
``csp_lda``            :class:`ClassicEEGClassifier`: ``mne.decoding.CSP`` (log-variance) + LDA
``ts_lr``              :class:`ClassicEEGClassifier`: pyriemann ``Covariances`` + ``TangentSpace``
                       + ``LogisticRegression``
=====================  ============================================================================

All take ``X`` as an array (n_trials, n_chans, n_times) or an object with ``.X`` and
``.ch_names`` (``neuroattn.data.eeg.EEGData``); in the latter case the channel names seen at
``fit`` are kept in ``ch_names_`` and ``predict`` refuses epochs with another channel set, naming
the channels. Torch nets train through the shared loop :func:`neuroattn.train.fit_torch` (Adam,
linear warmup then cosine decay); early stopping, when asked for, uses a stratified validation
split of the *training* data only.
"""
from __future__ import annotations

import inspect

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin

from ..registry import Registry

__all__ = [
    "ClassicEEGClassifier", "OASCovariances", "TorchEEGClassifier", "make_eeg_estimator", "check_channels",
    "MODEL_NAMES", "TORCH_ARCHS", "EEG_DECODERS",
]

TORCH_ARCHS = ("basenet", "eegnet", "shallow")
CLASSIC = ("csp_lda", "ts_lr")
MODEL_NAMES = TORCH_ARCHS + CLASSIC


def check_channels(expected, got, where: str = "epochs") -> None:
    """Raise ``ValueError`` naming missing/extra channels when ``got`` differs from ``expected``.

    Same names in another order are refused too (the model's spatial filters are per position).
    """
    expected, got = list(expected), list(got)
    if expected == got:
        return
    missing = [c for c in expected if c not in got]
    extra = [c for c in got if c not in expected]
    if missing or extra:
        raise ValueError(
            f"{where}: channel set differs from the model's: missing {missing}, unexpected {extra}"
        )
    raise ValueError(f"{where}: channels are in another order than the model's ({got} vs {expected})")


def _unpack(X):
    """Return ``(array float32 (n, C, T), ch_names or None)``."""
    ch_names = getattr(X, "ch_names", None)
    arr = np.asarray(X.X if hasattr(X, "X") and not isinstance(X, np.ndarray) else X, dtype=np.float32)
    if arr.ndim == 4 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 3:
        raise ValueError(f"EEG input must be (n_trials, n_chans, n_times), got shape {arr.shape}")
    return arr, (list(ch_names) if ch_names is not None else None)


class _EEGBase(ClassifierMixin, BaseEstimator):
    def _fit_checks(self, X, y):
        arr, names = _unpack(X)
        y = np.asarray(y)
        if len(y) != len(arr):
            raise ValueError(f"X has {len(arr)} trials but y has {len(y)} labels")
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"need at least two classes to train, got {self.classes_.tolist()}")
        self.ch_names_ = names
        self.n_chans_, self.n_times_ = arr.shape[1], arr.shape[2]
        return arr, y_idx

    def _predict_checks(self, X):
        arr, names = _unpack(X)
        if names is not None and getattr(self, "ch_names_", None) is not None:
            check_channels(self.ch_names_, names, "predict")
        if arr.shape[1:] != (self.n_chans_, self.n_times_):
            raise ValueError(f"model was fitted on ({self.n_chans_} channels, {self.n_times_} samples), "
                             f"got {arr.shape[1:]}")
        return arr

    def predict(self, X):
        """Class labels (from ``classes_``) of the most probable class."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class OASCovariances(TransformerMixin, BaseEstimator):
    """Per-trial OAS-shrunk covariance matrices, all trials at once.

    The estimator of ``pyriemann.estimation.Covariances(estimator="oas")`` (which calls
    ``sklearn.covariance.oas`` once per trial): each trial is centred over time, its empirical
    covariance ``S`` is shrunk towards ``mu I`` (``mu = tr(S) / C``) by
    ``min((a + mu^2) / ((T + 1) (a - mu^2 / C)), 1)`` with ``a`` the mean of ``S**2`` (Chen et al.
    2010, as scikit-learn writes it). Vectorised over trials, which makes the tangent-space
    pipeline and its occlusion importance ~20x faster; a test checks equality with pyriemann.
    """

    def fit(self, X, y=None):
        """Nothing to learn; returns self."""
        return self

    def transform(self, X):
        """Covariances (n_trials, C, C) of trials ``X`` (n_trials, C, T)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 3:
            raise ValueError(f"expected trials (n_trials, n_chans, n_times), got shape {X.shape}")
        n_chans, n_times = X.shape[1:]
        Xc = X - X.mean(axis=2, keepdims=True)
        emp = Xc @ Xc.transpose(0, 2, 1) / n_times
        alpha = (emp**2).mean(axis=(1, 2))
        mu = np.trace(emp, axis1=1, axis2=2) / n_chans
        num = alpha + mu**2
        den = (n_times + 1) * (alpha - mu**2 / n_chans)
        shrink = np.where(den == 0, 1.0, np.minimum(num / np.where(den == 0, 1.0, den), 1.0))
        cov = (1.0 - shrink)[:, None, None] * emp
        cov[:, np.arange(n_chans), np.arange(n_chans)] += (shrink * mu)[:, None]
        return cov


class ClassicEEGClassifier(_EEGBase):
    """CSP+LDA or tangent space + logistic regression behind the common interface.

    Parameters
    ----------
    kind : {"csp_lda", "ts_lr"}
    n_components : int
        CSP filters (``csp_lda``).
    cov_estimator : str
        pyriemann covariance estimator (``ts_lr``), e.g. ``"oas"``, ``"lwf"``, ``"scm"``.
    C : float
        Inverse regularisation of the logistic regression (``ts_lr``).
    random_state : int
        Accepted for a uniform interface (both pipelines are deterministic).
    """

    def __init__(self, kind: str = "ts_lr", n_components: int = 8, cov_estimator: str = "oas",
                 C: float = 1.0, random_state: int = 0):
        self.kind, self.n_components, self.cov_estimator, self.C = kind, n_components, cov_estimator, C
        self.random_state = random_state

    def _pipeline(self):
        from sklearn.pipeline import make_pipeline

        if self.kind == "csp_lda":
            from mne.decoding import CSP
            from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

            return make_pipeline(CSP(n_components=self.n_components, reg="ledoit_wolf", log=True),
                                 LinearDiscriminantAnalysis())
        if self.kind == "ts_lr":
            from pyriemann.estimation import Covariances
            from pyriemann.tangentspace import TangentSpace
            from sklearn.linear_model import LogisticRegression

            cov = OASCovariances() if self.cov_estimator == "oas" else Covariances(estimator=self.cov_estimator)
            return make_pipeline(cov, TangentSpace(metric="riemann"),
                                 LogisticRegression(C=self.C, max_iter=2000))
        raise ValueError(f"kind must be one of {list(CLASSIC)}, got {self.kind!r}")

    def fit(self, X, y):
        """Fit on trials ``X`` (n, C, T) and labels ``y``; returns self."""
        arr, y_idx = self._fit_checks(X, y)
        import mne

        with mne.utils.use_log_level("error"):
            self.pipeline_ = self._pipeline().fit(arr.astype(np.float64), y_idx)
        return self

    def predict_proba(self, X):
        """Class probabilities (n, n_classes)."""
        arr = self._predict_checks(X)
        import mne

        with mne.utils.use_log_level("error"):
            return self.pipeline_.predict_proba(arr.astype(np.float64))


def _build_module(arch: str, attention, n_chans, n_classes, n_times, sfreq, kwargs):
    from .eeg_basenet import BaseNet
    from .eeg_nets import EEGNet, ShallowConvNet

    kwargs = dict(kwargs or {})
    if arch == "basenet":
        return BaseNet(n_chans, n_classes, n_times, sfreq=sfreq, attention=attention, **kwargs)
    if attention not in (None, "none"):
        raise ValueError(f"attention modules plug into basenet only, not {arch!r}")
    cls = {"eegnet": EEGNet, "shallow": ShallowConvNet}.get(arch)
    if cls is None:
        raise ValueError(f"arch must be one of {list(TORCH_ARCHS)}, got {arch!r}")
    return cls(n_chans, n_classes, n_times, sfreq=sfreq, **kwargs)


class TorchEEGClassifier(_EEGBase):
    """A torch EEG net (BaseNet [+ attention], EEGNet, ShallowConvNet) as a scikit-learn classifier.

    Parameters
    ----------
    arch : {"basenet", "eegnet", "shallow"}
    attention : str, optional
        Attention module for ``basenet``.
    sfreq : float, optional
        Sampling rate, passed to the net (BaseNet rescales its kernels from 250 Hz).
    epochs, batch_size : int
    lr, weight_decay : float
        Adam settings (the paper: lr 1e-3, no weight decay).
    warmup_epochs : int
        Linear warmup epochs before the cosine decay.
    min_steps : int, optional
        A floor on the optimizer steps: with few training trials an epoch is a step or two, so
        ``epochs`` is raised to ``ceil(min_steps / steps per epoch)`` (and ``warmup_epochs`` in
        proportion) when that is more. ``None``: ``epochs`` as given.
    val_fraction : float, optional
        Hold out this stratified fraction of the *training* trials for early stopping.
    patience : int, optional
        Early-stopping patience in epochs (needs ``val_fraction``).
    random_state : int
        Seeds the weights, batch order and dropout.
    device : {"auto", "cpu", "cuda"}
    module_kwargs : dict, optional
        Architecture settings passed to the net (kernel sizes, reduction rate...).

    Attributes
    ----------
    module_ : torch.nn.Module
    history_ : list of dict
    classes_, ch_names_, n_chans_, n_times_
    """

    def __init__(self, arch: str = "basenet", attention: str | None = None, sfreq: float | None = None,
                 epochs: int = 60, batch_size: int = 64, lr: float = 1e-3, weight_decay: float = 0.0,
                 warmup_epochs: int = 5, val_fraction: float | None = None, patience: int | None = None,
                 random_state: int = 0, device: str = "auto", module_kwargs: dict | None = None,
                 min_steps: int | None = None):
        self.arch, self.attention, self.sfreq, self.min_steps = arch, attention, sfreq, min_steps
        self.epochs, self.batch_size, self.lr, self.weight_decay = epochs, batch_size, lr, weight_decay
        self.warmup_epochs, self.val_fraction, self.patience = warmup_epochs, val_fraction, patience
        self.random_state, self.device, self.module_kwargs = random_state, device, module_kwargs

    def _split(self, y_idx):
        from sklearn.model_selection import StratifiedShuffleSplit

        n_val = int(round(self.val_fraction * len(y_idx)))
        counts = np.bincount(y_idx, minlength=len(self.classes_))
        if n_val < len(self.classes_) or counts.min() < 2:
            raise ValueError(
                f"val_fraction={self.val_fraction}: {len(y_idx)} training trials (fewest per class: "
                f"{counts.min()}) are too few for a stratified validation split over "
                f"{len(self.classes_)} classes"
            )
        sss = StratifiedShuffleSplit(n_splits=1, test_size=n_val, random_state=self.random_state)
        return next(sss.split(np.zeros(len(y_idx)), y_idx))

    def fit(self, X, y):
        """Train on trials ``X`` (n, C, T) and labels ``y``; returns self."""
        import torch
        import torch.nn.functional as F

        from ..train import fit_torch
        from ..utils import resolve_device

        arr, y_idx = self._fit_checks(X, y)
        torch.manual_seed(self.random_state)
        self.module_ = _build_module(self.arch, self.attention, self.n_chans_, len(self.classes_),
                                     self.n_times_, self.sfreq, self.module_kwargs)
        val = None
        tr = np.arange(len(arr))
        if self.val_fraction:
            tr, va = self._split(y_idx)
            val = (arr[va], y_idx[va])
        bs = self.batch_size
        if len(tr) % bs == 1 and bs > 2:
            bs -= 1  # never a one-trial last batch (batch norm over a single trial)
        epochs, warmup = self.epochs, self.warmup_epochs
        if self.min_steps:
            per_epoch = -(-len(tr) // bs)
            epochs = max(epochs, -(-int(self.min_steps) // per_epoch))
            warmup = int(round(warmup * epochs / self.epochs))
        self.n_epochs_ = epochs

        def acc(pred, target):
            return float(np.mean(pred.argmax(1) == target))

        res = fit_torch(
            self.module_, (arr[tr], y_idx[tr]), loss_fn=F.cross_entropy, val=val,
            val_score=acc if val is not None else None, optimizer="adam", lr=self.lr,
            weight_decay=self.weight_decay, batch_size=bs, max_epochs=epochs,
            patience=self.patience if val is not None else None, warmup_epochs=warmup,
            schedule="cosine", seed=self.random_state, device=resolve_device(self.device), progress=False,
        )
        self.module_ = res.module.cpu().eval()
        self.history_ = res.history
        self.best_epoch_ = res.best_epoch
        return self

    def predict_proba(self, X):
        """Softmax class probabilities (n, n_classes)."""
        import torch

        from ..train import predict_torch

        arr = self._predict_checks(X)
        logits = predict_torch(self.module_, (arr,), batch_size=256, device=self.device)
        return torch.softmax(torch.as_tensor(logits), 1).numpy()


def _classic(kind: str):
    # ``_settings``: the nets' training settings, checked by make_eeg_estimator, unused here
    def factory(*, random_state: int = 0, **_settings):
        return ClassicEEGClassifier(kind=kind, random_state=random_state)
    return factory


def _torch(arch: str, attention: str | None = None):
    def factory(*, random_state: int = 0, sfreq: float | None = None, epochs: int = 60, batch_size: int = 64,
                lr: float = 1e-3, warmup_epochs: int = 5, val_fraction: float | None = None,
                patience: int | None = None, device: str = "auto", module_kwargs: dict | None = None,
                min_steps: int | None = None):
        return TorchEEGClassifier(arch=arch, attention=attention, sfreq=sfreq, epochs=epochs, min_steps=min_steps,
                                  batch_size=batch_size, lr=lr, warmup_epochs=warmup_epochs,
                                  val_fraction=val_fraction, patience=patience, random_state=random_state,
                                  device=device, module_kwargs=dict((module_kwargs or {}).get(arch) or {}) or None)
    return factory


def _decoders() -> Registry:
    """Every EEG decoder name: the torch nets (BaseNet, BaseNet + each attention module of
    :data:`~neuroattn.models.eeg_attention.ATTENTION`, EEGNet, ShallowConvNet) and the classic
    pipelines. ``produces``: the channel maps the evaluation stores (``importance``, ``pattern``;
    ``attention`` for the gated nets); ``deterministic``: fitted once, whatever the seeds."""
    from .eeg_attention import ATTENTION

    reg = Registry("EEG decoder")
    maps = ("importance", "pattern")
    reg.register("basenet", _torch("basenet"), config_section="eeg_models.nets.basenet", produces=maps,
                 arch="basenet", deterministic=False)
    for att in ATTENTION:
        reg.register(f"basenet_{att}", _torch("basenet", att), config_section="eeg_models.nets.basenet",
                     produces=maps + ("attention",), arch="basenet", deterministic=False)
    for arch in ("eegnet", "shallow"):
        reg.register(arch, _torch(arch), config_section=f"eeg_models.nets.{arch}", produces=maps, arch=arch,
                     deterministic=False)
    for kind in CLASSIC:
        reg.register(kind, _classic(kind), produces=maps, arch=kind, deterministic=True)
    return reg


_REGISTRY: Registry | None = None


def __getattr__(name):  # the registry imports torch (attention modules): built on first use
    global _REGISTRY
    if name == "EEG_DECODERS":
        if _REGISTRY is None:
            _REGISTRY = _decoders()
        return _REGISTRY
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_eeg_estimator(name: str, **settings):
    """Estimator for leaderboard model ``name`` (a name of :data:`EEG_DECODERS`, see the module
    docstring).

    ``settings``: ``random_state`` and, for the torch nets, the training settings of
    :class:`TorchEEGClassifier` (``sfreq``, ``epochs``, ``min_steps``, ``batch_size``, ``lr``,
    ``warmup_epochs``, ``val_fraction``, ``patience``, ``device``) and ``module_kwargs``, which maps an architecture
    (``basenet``, ``eegnet``, ``shallow``) to its settings (e.g. ``{"basenet": {"reduction": 8}}``).
    The classic pipelines are deterministic and ignore the training settings.

    Raises
    ------
    ValueError
        For an unknown name or attention module, listing the valid ones.
    TypeError
        For an unknown setting (named, with the allowed ones).
    """
    reg = __getattr__("EEG_DECODERS")
    if name not in reg:
        arch, _, att = name.partition("_")
        if arch == "basenet" and att:
            from .eeg_attention import ATTENTION

            raise ValueError(f"model {name!r}: unknown attention {att!r}; choose from {sorted(ATTENTION.names())}")
        raise ValueError(f"unknown EEG model {name!r}; choose from {reg.names()}")
    if reg[name].meta["deterministic"]:  # the classic pipelines take the nets' settings and ignore them
        unknown = sorted(set(settings) - set(inspect.signature(_torch("basenet")).parameters))
        if unknown:
            raise TypeError(f"EEG decoder {name!r}: unknown parameter(s) {unknown}")
        return reg[name].factory(**settings)
    return reg.build(name, **settings)
