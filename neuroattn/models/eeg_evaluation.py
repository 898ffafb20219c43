"""Evaluation protocols for the EEG decoders on arrays (splits, fitting, scoring); the stage
:func:`neuroattn.stages.eeg.eeg_model` reads the epochs and writes the scores and predictions.

Protocols
---------
``within``
    Within-subject, cross-session (BCI IV 2a T/E): train on the subject's first session (sessions
    in sorted order), test on the second. Optional Euclidean alignment of each session on its own
    mean covariance (unsupervised re-centring, which undoes session-to-session shifts; the test
    session's reference uses its unlabelled trials only).
``within_session``
    Stratified k-fold cross-validation inside each session (MOABB's WithinSession), alignment and
    standardisation fitted per training fold, scored per session and averaged
    (:mod:`~neuroattn.models.eeg_within_session`).
``loso``
    Leave one subject out: train on every other subject's trials (all sessions), test on all of
    the held-out subject's trials. Optional Euclidean alignment, per subject and session, of
    each recording's trials (for the test subject, its unlabelled test trials; nothing of it
    reaches training).

Every model sees the same data: per-channel standardisation fitted on the training trials only
(:class:`~neuroattn.models.eeg_preprocess.ChannelStandardizer`); no model selection on test data (early stopping,
when configured, uses a validation split of the training trials). Several seeds give mean +- sd.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from .eeg_estimators import check_channels, make_eeg_estimator

__all__ = [
    "ModelResult", "check_class_coverage", "evaluate_models", "loso_data", "run_protocol",
    "within_split", "PROTOCOLS",
]

log = logging.getLogger("neuroattn.models.eeg_evaluation")
PROTOCOLS = ("within", "within_session", "loso")


@dataclass
class ModelResult:
    """One model's test-set outcome over seeds."""

    name: str
    y_true: np.ndarray  # (n,) class indices
    y_pred: np.ndarray  # (n_seeds, n)
    proba: np.ndarray  # (n_seeds, n, n_classes)
    accuracy: np.ndarray  # (n_seeds,)
    kappa: np.ndarray  # (n_seeds,)
    confusion: np.ndarray  # (n_seeds, n_classes, n_classes)
    deterministic: bool
    fit_seconds: float
    importance: dict = field(default_factory=dict)


def check_class_coverage(y: np.ndarray, classes, where: str) -> None:
    """Raise ``ValueError`` naming the classes of ``classes`` absent from labels ``y`` (indices)."""
    present = set(np.unique(np.asarray(y)).tolist())
    missing = [c for i, c in enumerate(classes) if i not in present]
    if missing:
        raise ValueError(f"{where}: no trials of class(es) {missing}; every class is needed to train and test")


def within_split(data) -> tuple[np.ndarray, np.ndarray, str, str]:
    """Indices of (train, test) trials: first vs second session of ``data`` (an ``EEGData``).

    Raises
    ------
    ValueError
        Fewer than two sessions, or a class missing from either session (named).
    """
    sessions = sorted(set(np.asarray(data.sessions).tolist()))
    if len(sessions) < 2:
        raise ValueError(f"sub-{data.subject}: protocol 'within' needs two sessions, found {sessions}")
    if len(sessions) > 2:
        log.warning("sub-%s: %d sessions; training on %s, testing on %s", data.subject, len(sessions),
                    sessions[0], sessions[1])
    s = np.asarray(data.sessions)
    train, test = np.flatnonzero(s == sessions[0]), np.flatnonzero(s == sessions[1])
    check_class_coverage(data.y[train], data.classes, f"sub-{data.subject} session {sessions[0]} (train)")
    check_class_coverage(data.y[test], data.classes, f"sub-{data.subject} session {sessions[1]} (test)")
    return train, test, sessions[0], sessions[1]


def loso_data(datas: dict, test_subject: str, align: bool = True):
    """Training and test arrays of leave-one-subject-out for ``test_subject``.

    Parameters
    ----------
    datas : dict subject -> EEGData
    test_subject : str
    align : bool
        Euclidean alignment of each subject's trials (its own reference covariance).

    Returns
    -------
    X_train, y_train, X_test, y_test : arrays; and the list of training subjects.
    """
    if test_subject not in datas:
        raise KeyError(f"loso: test subject {test_subject!r} not among the loaded subjects {sorted(datas)}")
    if len(datas) < 2:
        raise ValueError(f"loso needs at least two subjects (one to test, others to train), got {sorted(datas)}")
    ref = datas[test_subject]
    train_subjects = [s for s in sorted(datas) if s != test_subject]
    for s in train_subjects:
        d = datas[s]
        check_channels(ref.ch_names, d.ch_names, f"loso: sub-{s} vs sub-{test_subject}")
        if list(d.classes) != list(ref.classes):
            raise ValueError(f"loso: sub-{s} classes {list(d.classes)} differ from sub-{test_subject}'s "
                             f"{list(ref.classes)}")
        if d.X.shape[2] != ref.X.shape[2] or float(d.sfreq) != float(ref.sfreq):
            raise ValueError(f"loso: sub-{s} epochs ({d.X.shape[2]} samples at {d.sfreq} Hz) differ from "
                             f"sub-{test_subject}'s ({ref.X.shape[2]} samples at {ref.sfreq} Hz)")

    def prep(d):
        if not align:
            return d.X
        from .eeg_preprocess import euclidean_alignment

        return euclidean_alignment(d.X, groups=d.sessions)  # each session on its own reference

    X_train = np.concatenate([prep(datas[s]) for s in train_subjects]).astype(np.float32)
    y_train = np.concatenate([datas[s].y for s in train_subjects])
    check_class_coverage(y_train, ref.classes, f"loso: training subjects {train_subjects}")
    check_class_coverage(ref.y, ref.classes, f"loso: sub-{test_subject} (test)")
    return X_train, y_train, prep(ref).astype(np.float32), ref.y, train_subjects


def _standardize(X_train, X_test):
    from .eeg_preprocess import ChannelStandardizer

    std = ChannelStandardizer().fit(X_train)
    return std.transform(X_train).astype(np.float32), std.transform(X_test).astype(np.float32), std


def _alignment_maps(X, groups, align: bool) -> np.ndarray:
    """Per-trial (C, C) Euclidean-alignment matrices of ``X`` (identity without alignment)."""
    n, c = X.shape[:2]
    maps = np.broadcast_to(np.eye(c), (n, c, c)).copy()
    if align:
        from .eeg_preprocess import alignment_matrix

        for g in np.unique(groups):
            maps[groups == g] = alignment_matrix(X[groups == g])
    return maps


def evaluate_models(X_train, y_train, X_test, y_test, models, *, seeds=(0,), settings=None,
                    sfreq=None, importance=True, raw=None, epoch_tmin=0.0) -> list[ModelResult]:
    """Fit every model on the training trials, predict the test trials, score, explain.

    Parameters
    ----------
    X_train, X_test : arrays (n, C, T), already standardised
    y_train, y_test : class indices
    models : list of str
        Leaderboard model names (see :func:`~neuroattn.models.eeg_estimators.make_eeg_estimator`).
    seeds : sequence of int
        One fit per seed for the nets; the classic pipelines are deterministic and fitted once.
    settings : dict, optional
        Keyword arguments of ``make_eeg_estimator`` (epochs, batch_size, lr, warmup_epochs,
        val_fraction, patience, device, module_kwargs).
    sfreq : float, optional
    importance : bool
        Compute channel importance per class on the test trials (first seed's model).
    raw : (X_raw, M), optional
        Electrode-space test trials and the per-trial map to the model input, so that importance
        is per electrode (see :func:`neuroattn.models.eeg_interpret.channel_importance`). With
        ``importance`` and ``sfreq`` it also gives each model's activation pattern in 8-30 Hz
        power (:func:`~neuroattn.models.eeg_interpret.power_pattern` of the first seed's
        probabilities), stored under ``importance["pattern"]``.
    epoch_tmin : float
        Time of the epochs' first sample relative to the cue (config ``eeg.tmin``), for the
        pattern's power window (0.5 s after the cue to the end).
    """
    from sklearn.metrics import confusion_matrix

    from .eeg_estimators import EEG_DECODERS

    from ..metrics import accuracy, cohen_kappa
    from .eeg_interpret import band_log_power, channel_importance, pattern_from_power

    settings = dict(settings or {})
    n_classes = int(max(np.max(y_train), np.max(y_test)) + 1)
    labels = np.arange(n_classes)
    results, power = [], None
    for name in models:
        t0 = time.perf_counter()
        deterministic = bool(EEG_DECODERS[name].meta["deterministic"]) if name in EEG_DECODERS else False
        preds, probas, imp = [], [], {}
        for i, seed in enumerate(seeds[:1] if deterministic else seeds):
            est = make_eeg_estimator(name, random_state=int(seed), sfreq=sfreq, **settings).fit(X_train, y_train)
            proba = np.zeros((len(y_test), n_classes), dtype=np.float32)
            proba[:, est.classes_] = est.predict_proba(X_test)
            probas.append(proba)
            preds.append(proba.argmax(1))
            if importance and i == 0:
                imp = channel_importance(est, X_test, y_test, X_train, raw=raw)
                if raw is not None and sfreq:
                    try:
                        if power is None:  # the test trials' band power: the same for every model
                            power = band_log_power(raw[0], sfreq, epoch_tmin=epoch_tmin)
                        imp["pattern"] = pattern_from_power(proba, power)
                    except ValueError as exc:  # e.g. epochs too short for the window: importance stays
                        log.warning("%s: no activation pattern (%s)", name, exc)
        preds, probas = np.stack(preds), np.stack(probas)
        acc = np.array([accuracy(y_test, p).value for p in preds])
        kap = np.array([cohen_kappa(y_test, p).value for p in preds])
        conf = np.stack([confusion_matrix(y_test, p, labels=labels) for p in preds])
        dt = time.perf_counter() - t0
        log.info("%s: accuracy %.3f (kappa %.3f) in %.1f s", name, acc.mean(), kap.mean(), dt)
        results.append(ModelResult(name, np.asarray(y_test), preds, probas, acc, kap, conf, deterministic, dt, imp))
    return results


def run_protocol(protocol: str, datas: dict, subject: str, models, *, seeds=(0,), settings=None,
                 align: bool = True, importance: bool = True, epoch_tmin: float = 0.0, n_folds: int = 5,
                 fold_seed: int = 0):
    """Run ``protocol`` for ``subject`` on loaded ``EEGData`` (dict subject -> data).

    ``epoch_tmin``: time of the epochs' first sample relative to the cue (see
    :func:`evaluate_models`). ``n_folds`` / ``fold_seed``: folds per session and their shuffling
    seed (``within_session`` only; it stores no channel maps).

    Returns
    -------
    results : list of ModelResult
    meta : dict
        subject, protocol, classes, ch_names, sfreq, n_train, n_test, train (what was trained on).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if subject not in datas:
        raise KeyError(f"subject {subject!r} not among the loaded subjects {sorted(datas)}")
    ref = datas[subject]
    if protocol == "within_session":
        from .eeg_within_session import run_within_session

        return run_within_session(ref, models, seeds=tuple(seeds), settings=settings, align=align,
                                  n_folds=n_folds, fold_seed=fold_seed)
    if protocol == "within":
        tr, te, s_tr, s_te = within_split(ref)
        X_train, y_train, X_test, y_test = ref.X[tr], ref.y[tr], ref.X[te], ref.y[te]
        if align:  # each session re-centred on its own (unlabelled) mean covariance
            from .eeg_preprocess import euclidean_alignment

            X_train, X_test = euclidean_alignment(X_train), euclidean_alignment(X_test)
        trained_on = f"sub-{subject} session {s_tr}; tested on session {s_te}" + (
            " (Euclidean-aligned per session)" if align else "")
        raw_test, test_sessions = ref.X[te], ref.sessions[te]
    else:
        X_train, y_train, X_test, y_test, subs = loso_data(datas, subject, align=align)
        trained_on = "subjects " + ",".join(subs) + (" (Euclidean-aligned)" if align else "")
        raw_test, test_sessions = ref.X, ref.sessions
    X_train, X_test, std = _standardize(X_train, X_test)
    raw = None
    if importance:  # model input = diag(1/scale) A_session x_raw - mean/scale
        maps = _alignment_maps(np.asarray(raw_test, np.float64), np.asarray(test_sessions), align)
        raw = (np.asarray(raw_test, np.float64), maps / np.asarray(std.scale_)[None, :, None])
    results = evaluate_models(X_train, y_train, X_test, y_test, models, seeds=tuple(seeds),
                              settings=settings, sfreq=float(ref.sfreq), importance=importance, raw=raw,
                              epoch_tmin=epoch_tmin)
    meta = {"subject": subject, "protocol": protocol, "classes": list(ref.classes),
            "ch_names": list(ref.ch_names), "sfreq": float(ref.sfreq), "n_train": int(len(y_train)),
            "n_test": int(len(y_test)), "train": trained_on, "seeds": [int(s) for s in seeds]}
    return results, meta
