"""Stages of ``rules/eeg.smk`` and ``rules/eeg_models.smk``: one subject's EEG epochs, the EEG
decoders' scores and predictions per protocol, and the check of their channel maps against the
simulated truth.

File formats
------------
``*_epo.fif`` / ``*_desc-epochs.tsv``
    :func:`neuroattn.data.eeg.write_epochs` (read back with :func:`~neuroattn.data.eeg.load_epochs`).
``*_scores.tsv``
    Leaderboard rows (:func:`result_rows`, :func:`neuroattn.leaderboard.write_scores`).
``*_pred.h5``
    :func:`write_results_h5`.
``*_desc-truthcheck.tsv``
    :data:`neuroattn.metrics.eeg_truth.TRUTH_COLUMNS` (:func:`truth_check`).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from ..utils import atomic_path, derive_seed
from . import register

__all__ = ["eeg_epochs", "eeg_model", "eeg_truth", "read_truth_channels", "result_rows", "truth_check",
           "write_results_h5"]

log = logging.getLogger("neuroattn.stages.eeg")
#: Keys of ``eeg_models`` passed to the estimators as they are (when set).
_FIT_KEYS = ("batch_size", "lr", "warmup_epochs", "val_fraction", "patience", "min_steps")


@register("eeg_epochs")
def eeg_epochs(epochs: str, table: str, bids_root: str, eeg: dict, subject: str, format: str = "bids",
               adapter: dict | None = None, dataset=None) -> None:
    """One subject's EEG recordings (BIDS, or a released layout: BCI IV 2a GDF, EEGMMIDB EDF,
    MOABB; :mod:`neuroattn.data.formats`) -> filtered, labelled epochs and their table.

    Parameters
    ----------
    epochs, table : str
        Outputs: ``*_epo.fif`` and ``*_desc-epochs.tsv``.
    bids_root : str
        The dataset root.
    eeg : dict
        The config's ``eeg`` section (without ``bids_root``/``subjects``).
    subject : str
    format : str
        ``eeg.format`` (default plain BIDS).
    adapter : dict, optional
        ``eeg.adapter``.
    dataset : optional
        The root's marker file (a rule input for the dependency only; not read).
    """
    from ..data import formats
    from ..data.eeg import write_epochs

    cfg, adapter = dict(eeg), dict(adapter or {})
    log.info("sub-%s: preprocessing EEG (%s format) from %s with %s", subject, format, bids_root, cfg)
    ep, tab = formats.eeg_subject(format, bids_root, subject, cfg, adapter)
    write_epochs(ep, tab, epochs, table)
    dropped = int((~tab["kept"]).sum()) if "kept" in tab else 0
    log.info("wrote %s (%d epochs, %d dropped)", epochs, len(ep), dropped)


def protocol_settings(cfg: dict, protocol: str, seed: int, device: str) -> tuple[list, list, dict]:
    """The models, seeds and estimator settings of ``protocol`` from the ``eeg_models`` section.

    ``within`` and ``within_session`` use ``models`` / ``epochs``; ``loso`` uses ``loso_models`` / ``loso_epochs`` when set; seeds are
    :func:`~neuroattn.utils.derive_seed` of the config's ``seed`` and each of ``cfg["seeds"]``.
    """
    within = protocol != "loso"
    models = list(cfg["models"] if within else (cfg.get("loso_models") or cfg["models"]))
    settings = {k: cfg[k] for k in _FIT_KEYS if cfg.get(k) is not None}
    settings.update(epochs=cfg["epochs"] if within else cfg.get("loso_epochs") or cfg["epochs"],
                    device=device, module_kwargs=cfg.get("nets") or None)
    seeds = [derive_seed(seed, s) for s in cfg["seeds"]]
    return models, seeds, settings


@register("eeg_model")
def eeg_model(epochs, scores: str, pred: str, cfg: dict, align: bool, epoch_tmin: float, seed: int,
              device: str, subject: str, protocol: str) -> None:
    """Fit and score every configured EEG model for one subject under one protocol.

    Parameters
    ----------
    epochs : list of str
        ``*_epo.fif`` of the subject (``within``) or of every subject (``loso``).
    scores, pred : str
        Outputs: leaderboard rows (TSV) and predictions / maps (:func:`write_results_h5`).
    cfg : dict
        The config's ``eeg_models`` section.
    align : bool
        ``eeg.euclidean_alignment``.
    epoch_tmin : float
        ``eeg.tmin`` (time of the epochs' first sample relative to the cue).
    seed : int
        The config's ``seed``.
    device : str
        The config's ``device``.
    subject, protocol : str
        Wildcards; ``protocol`` is ``within``, ``within_session`` or ``loso``
        (:data:`neuroattn.models.eeg_evaluation.PROTOCOLS`).
    """
    from ..data.eeg import load_epochs
    from ..leaderboard import write_scores
    from ..models.eeg_evaluation import run_protocol

    datas = {}
    for path in [epochs] if isinstance(epochs, str) else list(epochs):
        d = load_epochs(path)
        datas[str(d.subject)] = d
    models, seeds, settings = protocol_settings(cfg, protocol, seed, device)
    log.info("sub-%s %s: %s, seeds %s, settings %s", subject, protocol, models, seeds, settings)
    results, meta = run_protocol(protocol, datas, subject, models, seeds=seeds, settings=settings,
                                 align=bool(align), importance=bool(cfg.get("importance", True)),
                                 epoch_tmin=float(epoch_tmin), n_folds=int(cfg.get("within_session_folds") or 5),
                                 fold_seed=derive_seed(seed, 0))
    write_results_h5(pred, results, meta)
    write_scores(scores, result_rows(results, subject, protocol, n_classes=len(meta["classes"])))
    log.info("wrote %s and %s", scores, Path(pred).name)


def result_rows(results, subject: str, protocol: str, n_classes: int | None = None) -> list[dict]:
    """Leaderboard rows: accuracy and kappa per model, mean (value) and sd (error) over seeds;
    ``n_classes`` gives the accuracy's chance level (1/n_classes)."""
    from ..leaderboard import score_row

    rows = []
    for r in results:
        for metric, vals in (("accuracy", r.accuracy), ("kappa", r.kappa)):
            err = float(np.std(vals, ddof=1)) if len(vals) > 1 else None
            rows.append(score_row(subject, "eeg", r.name, protocol, metric, float(np.mean(vals)),
                                  error=err, n=len(r.y_true), n_classes=n_classes))
    return rows


def write_results_h5(path, results, meta: dict) -> None:
    """Predictions, confusion matrices and channel importance per model, for the report.

    Layout: root datasets ``classes`` and ``ch_names`` (strings); root attrs ``subject``,
    ``protocol``, ``classes`` / ``ch_names`` / ``seeds`` (JSON), ``sfreq``, ``n_train``,
    ``n_test``, ``train``; one group per model with ``y_true`` (n,), ``y_pred`` (n_seeds, n),
    ``proba`` (n_seeds, n, K), ``accuracy``/``kappa`` (n_seeds,), ``confusion`` (K, K; rows true,
    columns predicted, summed over seeds), ``confusion_per_seed`` (n_seeds, K, K), ``importance``
    (K, C; attr ``method``), and where available ``gradient_x_input`` (K, C), ``attention``
    (K, F) (attention gates over the net's feature maps) and ``pattern`` (K, C; correlation of
    the first seed's class evidence with each electrode's 8-30 Hz log power over test trials,
    negative = power decrease, see :func:`~neuroattn.models.eeg_interpret.power_pattern`).
    """
    import h5py

    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for k, v in meta.items():
                f.attrs[k] = json.dumps(v) if isinstance(v, (list, dict)) else v
            f.create_dataset("classes", data=np.array(meta["classes"], dtype=object), dtype=h5py.string_dtype())
            f.create_dataset("ch_names", data=np.array(meta["ch_names"], dtype=object), dtype=h5py.string_dtype())
            for r in results:
                g = f.create_group(r.name)
                g.attrs["fit_seconds"] = r.fit_seconds
                g.attrs["deterministic"] = r.deterministic
                for key in ("y_true", "y_pred", "proba", "accuracy", "kappa"):
                    g.create_dataset(key, data=getattr(r, key))
                g.create_dataset("confusion", data=r.confusion.sum(0))
                g.create_dataset("confusion_per_seed", data=r.confusion)
                imp = r.importance
                if imp:
                    d = g.create_dataset("importance", data=imp["importance"])
                    d.attrs["method"] = imp["method"]
                    for key in ("gradient_x_input", "attention", "pattern"):
                        if imp.get(key) is not None:
                            g.create_dataset(key, data=imp[key])


def read_truth_channels(truth_path, subject: str) -> dict:
    """Class -> discriminative channel names of ``subject`` from the simulator's ``truth.json``.

    Raises
    ------
    FileNotFoundError, ValueError, KeyError
        Missing or unreadable file, subject absent, or no ``discriminative_channels`` (named).
    """
    truth_path = Path(truth_path)
    if not truth_path.is_file():
        raise FileNotFoundError(f"{truth_path}: truth file not found")
    try:
        truth = json.loads(truth_path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{truth_path}: not valid JSON ({exc})") from exc
    subjects = truth.get("subjects")
    if not isinstance(subjects, dict) or str(subject) not in subjects:
        have = sorted(subjects) if isinstance(subjects, dict) else subjects
        raise KeyError(f"{truth_path}: no subject {subject!r} under 'subjects' (has {have})")
    disc = subjects[str(subject)].get("discriminative_channels")
    if not isinstance(disc, dict) or not disc:
        raise KeyError(f"{truth_path}: subjects.{subject} has no 'discriminative_channels' mapping")
    return {str(k): list(v) for k, v in disc.items()}


def truth_check(pred_paths, truth_channels: dict):
    """One row per protocol x model x map (``pattern``, ``importance``) x class of the
    ``*_pred.h5`` files of one subject (one per protocol).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`~neuroattn.metrics.eeg_truth.TRUTH_COLUMNS`
        (:func:`~neuroattn.metrics.eeg_truth.model_truth_check`); ``method`` is the importance
        method, or ``power_pattern``. A model without a stored map has no rows for it.
    """
    import h5py
    import pandas as pd

    from ..metrics.eeg_truth import TRUTH_COLUMNS, model_truth_check
    from ..models.eeg_interpret import erd_map

    frames = []
    for p in pred_paths:
        with h5py.File(p, "r") as f:
            protocol = str(f.attrs.get("protocol", Path(p).stem))
            subject = str(f.attrs.get("subject", ""))
            classes = list(f["classes"].asstr()[()])
            ch_names = list(f["ch_names"].asstr()[()])
            for model in f:
                g = f[model]
                if not isinstance(g, h5py.Group):
                    continue
                pattern = g["pattern"][()] if "pattern" in g else None
                importance = g["importance"][()] if "importance" in g else None
                method = str(g["importance"].attrs.get("method", "")) if importance is not None else ""
                if pattern is None and importance is None:
                    log.warning("%s: model %s has no channel map", p, model)
                try:
                    checked = model_truth_check(None if pattern is None else erd_map(pattern), importance, method, ch_names, classes, truth_channels)
                except (KeyError, ValueError) as exc:
                    raise type(exc)(f"{p}: {model}/{exc.args[0] if exc.args else exc}") from exc
                for name, meth, a in checked:
                    frames.append(a.assign(subject=subject, protocol=protocol, model=model, map=name, method=meth))
    if not frames:
        return pd.DataFrame(columns=TRUTH_COLUMNS)
    return pd.concat(frames, ignore_index=True)[TRUTH_COLUMNS]


@register("eeg_truth")
def eeg_truth(preds, table: str, truth: str, subject: str, dataset=None) -> None:
    """Score one subject's EEG channel maps (activation pattern, importance) against the
    simulated truth.

    Parameters
    ----------
    preds : list of str
        The subject's ``*_pred.h5`` (one per protocol).
    table : str
        Output ``*_desc-truthcheck.tsv``.
    truth : str
        The simulator's ``derivatives/truth/truth.json``.
    subject : str
    dataset : optional
        The simulated dataset's marker (a rule input for the dependency only; not read).
    """
    from ..metrics.eeg_truth import summarise_truth_check

    channels = read_truth_channels(truth, subject)
    log.info("sub-%s truth channels: %s", subject, channels)
    df = truth_check([preds] if isinstance(preds, str) else list(preds), channels)
    log.info("peak on a truth channel / mass ratio (1 = chance):\n%s",
             summarise_truth_check(df).to_string(index=False))
    with atomic_path(table) as tmp:
        df.to_csv(tmp, sep="\t", index=False)
