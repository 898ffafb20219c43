"""The leaderboard's tidy long format (design.md section 4): one row per score.

Every scoring step writes its rows with :func:`write_scores`; the ``leaderboard`` rule gathers them
with :func:`gather`, which fills the columns a job cannot know (backbone / layer / protocol from the
file names, the config's backbones) and adds the pooled ``subject = group`` rows. Rows are sorted
and floats written with fixed precision so that two runs of the same configuration give
byte-identical files.

Columns (:data:`COLUMNS`)
-------------------------
subject
    Subject label without ``sub-`` (read back as a string: ``01`` stays ``01``), or ``group``:
    mean over subjects (:func:`pooled_rows`), or a quantity of no subject (a backbone's accuracy).
modality
    ``fmri`` or ``eeg``.
model
    The full model name, unique per row group (unchanged: ``incontext_k50``, ``smallcnn_layer3``,
    ``basenet_se``); the next five columns split it.
family, backbone, layer, k, protocol
    What ``model`` packs: the method (``routing``, ``ridge_grid``, ``incontext``, ``ridge_context``,
    ``aligned_ridge``, ``basenet``, ...; ``layer`` for a backbone layer's linear / similarity score,
    ``committed`` for each region on its committed layer, ``backbone`` for a backbone's own
    accuracy), the feature backbone and layer, the context size ``k`` (in-context rows) and the
    EEG ``protocol`` (``within``, ``within_session``, ``loso``; EEG rows keep it in ``target`` too).
target
    ROI, region, ``all`` (all voxels), EEG protocol, or a backbone's test condition.
metric, value
    :data:`METRICS`.
ceiling
    On the metric's own scale: ``1`` for the normalised metrics (:data:`NORMALISED`, already divided
    by the noise ceiling); ``pearson_r``: the median over the units of sqrt(noise ceiling); RSA /
    CKA / SSM: the split-half ceiling; empty where none is defined.
chance
    The value expected without information: ``top1`` 1/n_candidates, ``top5`` 5/n_candidates,
    ``kappa`` 0, EEG ``accuracy`` 1/n_classes; empty where undefined.
error
    ``pearson_r`` of a layer / committed model: bootstrap SE over stimuli; ``top1``/``top5``: SE
    over the test images; EEG ``accuracy``/``kappa``: SD over seeds (empty with one seed);
    ``group`` rows: SEM over subjects; empty elsewhere.
n, n_kind
    What the value is computed over, and what ``n`` counts (:data:`N_KIND`).
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .utils import atomic_path

BASE_COLUMNS = ["subject", "modality", "model", "target", "metric", "value", "ceiling", "error", "n"]
COLUMNS = ["subject", "modality", "model", "family", "backbone", "layer", "k", "protocol", "target", "metric",
           "value", "ceiling", "chance", "error", "n", "n_kind"]
METRICS = {
    "pearson_r", "noise_normalized_r2", "ceiled_ev", "rsa_spearman", "cka", "ssm",
    "top1", "top5", "accuracy", "kappa", "cosine",
}
NORMALISED = {"noise_normalized_r2", "ceiled_ev"}
MODALITIES = {"fmri", "eeg"}
N_KIND = {"pearson_r": "voxels", "noise_normalized_r2": "voxels", "ceiled_ev": "voxels",
          "rsa_spearman": "stimuli", "cka": "stimuli", "ssm": "stimuli", "top1": "candidates",
          "top5": "candidates", "cosine": "images", "kappa": "trials"}
STR_COLUMNS = ["subject", "modality", "model", "family", "backbone", "layer", "protocol", "target", "metric", "n_kind"]
GROUP = "group"
FLOAT_FORMAT = "%.6g"
_SORT = ["modality", "subject", "model", "target", "metric"]


def _num(x):
    if x is None:
        return None
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def n_kind(metric: str, modality: str) -> str:
    """What ``n`` counts for ``metric`` (``accuracy``: EEG trials or fMRI-backbone images)."""
    if metric == "accuracy":
        return "trials" if modality == "eeg" else "images"
    return N_KIND.get(metric, "")


def chance_level(metric: str, n=None, n_classes=None):
    """Chance value of ``metric``: top-k k/n (n candidates), kappa 0, accuracy 1/n_classes; else None."""
    n = _num(n)
    if metric in ("top1", "top5") and n:
        return min(1.0, int(metric[3:]) / n)
    if metric == "kappa":
        return 0.0
    if metric == "accuracy" and _num(n_classes):
        return 1.0 / float(n_classes)
    return None


def split_model(model: str, modality: str, target: str = "", backbones: Sequence[str] = ()) -> dict:
    """Split a packed model name into ``family, backbone, layer, k, protocol``.

    ``backbones`` are the config's backbone names (they may hold underscores: ``crossvit_joint``);
    without them a ``<backbone>_<layer>`` name is split at its last underscore.

    Examples: ``incontext_k50`` -> family incontext, k 50; ``smallcnn_layer3`` -> family layer,
    backbone smallcnn, layer layer3; ``smallcnn_committed`` -> family committed; EEG ``basenet``
    (target ``loso``) -> family basenet, protocol loso.
    """
    out = {"family": model, "backbone": None, "layer": None, "k": None, "protocol": None}
    if modality == "eeg":
        out["protocol"] = target
        return out
    m = re.fullmatch(r"(.+)_k(\d+)", model)
    if m:
        out.update(family=m.group(1), k=int(m.group(2)))
        return out
    if model in backbones:
        out.update(family="backbone", backbone=model)
        return out
    for b in sorted(backbones, key=len, reverse=True):
        if model.startswith(b + "_"):
            rest = model[len(b) + 1:]
            out.update(backbone=b, family="committed" if rest == "committed" else "layer",
                       layer=None if rest == "committed" else rest)
            return out
    if not backbones:
        m = re.fullmatch(r"(.+)_(committed|layer\d+|block\d+|stage\d+)", model)
        if m:
            out.update(backbone=m.group(1), family="committed" if m.group(2) == "committed" else "layer",
                       layer=None if m.group(2) == "committed" else m.group(2))
    return out


def score_row(subject, modality, model, target, metric, value, ceiling=None, error=None, n=None, *,
              chance=None, n_classes=None, backbone=None, layer=None, backbones: Sequence[str] = ()) -> dict:
    """Build one leaderboard row (:data:`COLUMNS`), checking the modality and metric names.

    Parameters
    ----------
    subject : str
        Subject label without ``sub-``, or ``"group"`` for pooled rows.
    modality : {"fmri", "eeg"}
    model, target, metric : str
        ``target`` is an ROI, region, layer, protocol or ``"all"``; ``model`` is split by
        :func:`split_model`.
    value : float
    ceiling : float, optional
        On the metric's scale; ignored for :data:`NORMALISED` metrics (their ceiling is 1).
    error : float, optional
    n : int, optional
        Number of units, stimuli, trials or candidates behind the value (:func:`n_kind`).
    chance, n_classes : float / int, optional
        Chance level, or the number of classes it follows from (:func:`chance_level`).
    backbone, layer : str, optional
        Feature backbone / layer when the name does not carry them.
    backbones : names used to split ``model``.
    """
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {sorted(MODALITIES)}, got {modality!r}")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {sorted(METRICS)}, got {metric!r}")
    if str(subject).startswith("sub-"):
        raise ValueError(f"subject {subject!r}: write the label without 'sub-'")
    parts = split_model(str(model), modality, str(target), backbones)
    parts["backbone"] = parts["backbone"] or backbone
    parts["layer"] = parts["layer"] or layer
    ceil = 1.0 if metric in NORMALISED else _num(ceiling)
    ch = _num(chance) if chance is not None else chance_level(metric, n, n_classes)
    return {
        "subject": str(subject), "modality": modality, "model": str(model), **parts, "target": str(target),
        "metric": metric, "value": float(value), "ceiling": ceil, "chance": ch, "error": _num(error),
        "n": None if n is None else int(n), "n_kind": n_kind(metric, modality),
    }


def row_from_score(subject, modality, model, target, metric, score, **kw) -> dict:
    """:func:`score_row` from a :class:`neuroattn.metrics.Score` (``n`` from ``score.meta["n"]``)."""
    return score_row(subject, modality, model, target, metric, score.value, ceiling=score.ceiling,
                     error=score.error, n=score.meta.get("n"), **kw)


def rows_from_scores(subject, modality, scores, **kw) -> list[dict]:
    """Leaderboard rows from ``(model, target, metric, Score)`` tuples (as metrics return them)."""
    return [row_from_score(subject, modality, model, target, metric, sc, **kw) for model, target, metric, sc in scores]


def _frame(rows: Iterable[Mapping] | pd.DataFrame) -> pd.DataFrame:
    df = pd.DataFrame(list(rows) if not isinstance(rows, pd.DataFrame) else rows)
    for c in COLUMNS:
        if c not in df.columns:
            df[c] = None
    df = df[COLUMNS].copy()
    df["n"] = pd.array(df["n"], dtype="Int64") if len(df) else df["n"].astype("Int64")
    df["k"] = pd.array(df["k"], dtype="Int64") if len(df) else df["k"].astype("Int64")
    for c in ("value", "ceiling", "chance", "error"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    return df.sort_values(_SORT, kind="mergesort").reset_index(drop=True)


def write_scores(path: str | Path, rows: Iterable[Mapping] | pd.DataFrame) -> pd.DataFrame:
    """Write leaderboard rows to a TSV atomically; returns the sorted frame."""
    df = _frame(rows)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep="\t", index=False, float_format=FLOAT_FORMAT, na_rep="")
    return df


def _complete(df: pd.DataFrame, backbones: Sequence[str] = (), path=None, features=None) -> pd.DataFrame:
    """Fill the columns a job could not know (rebuilt by :func:`score_row`): backbone and layer
    from the file name's ``backbone-<b>_layer-<l>`` entities or ``features`` (family ->
    (backbone, layer))."""
    ents = dict(re.findall(r"(backbone|layer)-(.+?)(?=_(?:layer|model|desc|protocol)-|_scores|\.tsv$)",
                           Path(path).name)) if path else {}
    rows = []
    for r in df.to_dict("records"):
        fam = split_model(str(r["model"]), r["modality"], str(r["target"]), backbones)["family"]
        b, lay = (features or {}).get(fam, (None, None))
        ents_r = {"backbone": ents.get("backbone", b), "layer": ents.get("layer", lay)}
        new = score_row(r["subject"], r["modality"], r["model"], r["target"], r["metric"], r["value"],
                        ceiling=r.get("ceiling"), error=r.get("error"), n=_num(r.get("n")),
                        chance=_num(r.get("chance")), backbones=backbones,
                        backbone=r.get("backbone") if isinstance(r.get("backbone"), str) else ents_r["backbone"],
                        layer=r.get("layer") if isinstance(r.get("layer"), str) else ents_r["layer"])
        rows.append(new)
    return _frame(rows)


def _read(path) -> pd.DataFrame:
    df = pd.read_csv(path, sep="\t", dtype={c: str for c in STR_COLUMNS}, keep_default_na=False,
                     na_values={c: [""] for c in ("value", "ceiling", "chance", "error", "n", "k")})
    missing = [c for c in BASE_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing leaderboard column(s) {missing}")
    for c in STR_COLUMNS:
        if c in df.columns:
            df[c] = df[c].replace("", None)
    return df


def read_scores(path: str | Path, backbones: Sequence[str] = ()) -> pd.DataFrame:
    """Read a scores TSV (string labels: subject ``01`` stays ``01``), checking its columns; the
    error names the file. A file missing the columns added later gets them filled."""
    df = _read(path)
    if [c for c in COLUMNS if c not in df.columns] or backbones:
        return _complete(df, backbones, path)
    return _frame(df)


def pooled_rows(df: pd.DataFrame) -> pd.DataFrame:
    """``subject = group`` rows: per (modality, model, target, metric) the mean over subjects of
    value, ceiling and chance, ``error`` the SEM over subjects, ``n`` the number of subjects
    (``n_kind`` ``subjects``). Only where at least two subjects have the row; rows that already
    have subject ``group`` are not pooled."""
    subj = df[df.subject != GROUP]
    out = []
    for _, g in subj.groupby(["modality", "model", "target", "metric"], sort=True):
        if g.subject.nunique() < 2:
            continue
        first = g.iloc[0].to_dict()
        v = g.value.to_numpy(float)
        out.append({**first, "subject": GROUP, "value": float(np.mean(v)),
                    "ceiling": g.ceiling.mean() if g.ceiling.notna().any() else None,
                    "chance": g.chance.mean() if g.chance.notna().any() else None,
                    "error": float(np.std(v, ddof=1) / np.sqrt(len(v))), "n": int(g.subject.nunique()),
                    "n_kind": "subjects"})
    return _frame(out)


def gather(paths: Iterable[str | Path], out: str | Path, backbones: Sequence[str] = (),
           features: Mapping | None = None) -> pd.DataFrame:
    """Concatenate score TSVs into the leaderboard at ``out`` plus the pooled rows (:func:`pooled_rows`);
    sorted, byte-stable. ``backbones``: the config's backbone names (to split model names);
    ``features``: family -> (backbone, layer) for rows whose file name does not say them."""
    frames = [_complete(_read(p), backbones, p, features) for p in paths]
    df = _frame(pd.concat(frames, ignore_index=True)) if frames else _frame([])
    pooled = pooled_rows(df)
    have = set(map(tuple, df[df.subject == GROUP][["modality", "model", "target", "metric"]].to_numpy()))
    pooled = pooled[[tuple(r) not in have for r in pooled[["modality", "model", "target", "metric"]].to_numpy()]]
    return write_scores(out, pd.concat([df, pooled], ignore_index=True) if len(pooled) else df)
