"""Protocol ``within_session`` (MOABB's WithinSessionEvaluation): stratified k-fold
cross-validation inside each session of one subject, scored per session and averaged.

Every fold fits its own Euclidean alignment (reference covariance of the training fold's trials,
applied to the fold's training and test trials) and its own per-channel standardisation (training
fold only), so no statistic of a test trial reaches the model. Each trial is tested exactly once
(in its session's fold); a model's accuracy and kappa per seed are the mean over sessions of the
session's out-of-fold score.
"""
from __future__ import annotations

import logging

import numpy as np

__all__ = ["run_within_session", "within_session_folds"]

log = logging.getLogger("neuroattn.models.eeg_within_session")


def within_session_folds(data, n_folds: int = 5, seed: int = 0) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(session, train indices, test indices) of stratified ``n_folds``-fold CV in each session.

    Parameters
    ----------
    data : EEGData
    n_folds : int
        Folds per session (``eeg_models.within_session_folds``), at least 2.
    seed : int
        Shuffling seed of the folds.

    Raises
    ------
    ValueError
        A session with fewer trials of a class than folds (names the session, the class and the
        counts), or ``n_folds`` < 2.
    """
    from sklearn.model_selection import StratifiedKFold

    n_folds = int(n_folds)
    if n_folds < 2:
        raise ValueError(f"config key eeg_models.within_session_folds: needs at least 2 folds, got {n_folds}")
    sessions = np.asarray(data.sessions)
    out = []
    for ses in sorted(set(sessions.tolist())):
        idx = np.flatnonzero(sessions == ses)
        y = np.asarray(data.y)[idx]
        counts = {c: int((y == i).sum()) for i, c in enumerate(data.classes)}
        short = {c: n for c, n in counts.items() if n < n_folds}
        if short:
            raise ValueError(
                f"sub-{data.subject} session {ses}: protocol 'within_session' with {n_folds} folds needs at least "
                f"{n_folds} trials of every class; class(es) {sorted(short)} have {short} (all counts {counts}); "
                "lower eeg_models.within_session_folds or use protocol 'within'")
        skf = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=int(seed))
        for tr, te in skf.split(idx, y):
            out.append((ses, idx[tr], idx[te]))
    return out


def _prepare(X_train, X_test, align: bool):
    """Alignment (training fold's reference) and standardisation fitted on the training fold."""
    from .eeg_preprocess import ChannelStandardizer, alignment_matrix

    X_train, X_test = np.asarray(X_train, np.float64), np.asarray(X_test, np.float64)
    if align:
        W = alignment_matrix(X_train)
        X_train = np.einsum("cd,ndt->nct", W, X_train)
        X_test = np.einsum("cd,ndt->nct", W, X_test)
    std = ChannelStandardizer().fit(X_train)
    return std.transform(X_train).astype(np.float32), std.transform(X_test).astype(np.float32)


def run_within_session(data, models, *, seeds=(0,), settings=None, align: bool = True, n_folds: int = 5,
                       fold_seed: int = 0):
    """Run ``within_session`` for one subject's ``EEGData``.

    Returns
    -------
    results : list of ModelResult
        One per model; ``y_true``/``y_pred``/``proba`` in the subject's trial order (every trial
        predicted once, by the fold that held it out); ``accuracy``/``kappa`` per seed = mean over
        sessions; no channel maps (``importance`` empty).
    meta : dict
        As :func:`~neuroattn.models.eeg_evaluation.run_protocol`'s, plus ``n_folds`` and the
        per-session scores ``session_accuracy`` ({model: {session: [per seed]}}).
    """
    from ..metrics import accuracy, cohen_kappa
    from .eeg_evaluation import ModelResult, evaluate_models
    from sklearn.metrics import confusion_matrix

    folds = within_session_folds(data, n_folds, fold_seed)
    n, K = len(data.y), len(data.classes)
    n_seeds = len(seeds)
    per_model = {m: {"pred": np.full((n_seeds, n), -1), "proba": np.zeros((n_seeds, n, K), np.float32),
                     "seconds": 0.0, "det": False} for m in models}
    for k, (ses, tr, te) in enumerate(folds):
        X_train, X_test = _prepare(data.X[tr], data.X[te], align)
        log.info("sub-%s session %s fold %d/%d: %d train, %d test trials", data.subject, ses, k % int(n_folds) + 1,
                 int(n_folds), len(tr), len(te))
        res = evaluate_models(X_train, data.y[tr], X_test, data.y[te], models, seeds=tuple(seeds),
                              settings=settings, sfreq=float(data.sfreq), importance=False)
        for r in res:
            slot = per_model[r.name]
            reps = n_seeds if len(r.y_pred) == 1 else 1  # deterministic: one fit stands for every seed
            slot["pred"][:, te] = np.repeat(r.y_pred, reps, axis=0)[:n_seeds]
            slot["proba"][:, te] = np.repeat(r.proba, reps, axis=0)[:n_seeds, :, :K]
            slot["seconds"] += r.fit_seconds
            slot["det"] = r.deterministic
    sessions = np.asarray(data.sessions)
    y = np.asarray(data.y)
    results, session_acc = [], {}
    for m in models:
        slot = per_model[m]
        preds = slot["pred"][:1] if slot["det"] else slot["pred"]
        probas = slot["proba"][:1] if slot["det"] else slot["proba"]
        if (preds < 0).any():
            raise RuntimeError(f"within_session: model {m} left trials unpredicted")
        acc_s = {s: [accuracy(y[sessions == s], p[sessions == s]).value for p in preds] for s in sorted(set(sessions))}
        kap_s = {s: [cohen_kappa(y[sessions == s], p[sessions == s]).value for p in preds] for s in sorted(set(sessions))}
        acc = np.mean([acc_s[s] for s in acc_s], axis=0)
        kap = np.mean([kap_s[s] for s in kap_s], axis=0)
        conf = np.stack([confusion_matrix(y, p, labels=np.arange(K)) for p in preds])
        session_acc[m] = {s: [float(v) for v in acc_s[s]] for s in acc_s}
        log.info("%s within_session: accuracy %.3f (sessions %s)", m, acc.mean(),
                 {s: round(float(np.mean(v)), 3) for s, v in acc_s.items()})
        results.append(ModelResult(m, y, preds, probas, acc, kap, conf, slot["det"], slot["seconds"], {}))
    n_test = len(folds[0][2]) if folds else 0
    meta = {"subject": str(data.subject), "protocol": "within_session", "classes": list(data.classes),
            "ch_names": list(data.ch_names), "sfreq": float(data.sfreq),
            "n_train": int(np.mean([len(f[1]) for f in folds])), "n_test": int(n_test),
            "train": f"sub-{data.subject}: {n_folds}-fold stratified CV within each session "
                     f"{sorted(set(sessions.tolist()))}" + (" (Euclidean alignment fitted per training fold)" if align else ""),
            "seeds": [int(s) for s in seeds], "n_folds": int(n_folds), "session_accuracy": session_acc}
    return results, meta
