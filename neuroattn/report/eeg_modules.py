"""Attention modules against plain BaseNet on the group page: paired differences over subjects.

A single seed's accuracy moves by several points from seed to seed and from subject to subject,
so "BaseNet+SE 0.76 vs BaseNet 0.86" says little by itself. Here each module is compared with
plain BaseNet on the *same* subjects, protocol by protocol: per subject the difference of the two
accuracies (each the mean over the run's seeds, so the pairs are over subjects and, through those
means, over seeds), then the mean difference, its SD and SEM over subjects and a paired t-test's
95 % interval. A difference "exceeds its spread" when that interval excludes 0.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["module_differences", "module_section"]

PLAIN = "basenet"
COLUMNS = ["protocol", "module", "subjects", "seeds", "plain", "with module", "mean diff", "SD", "SEM",
           "95% CI", "seed SD", "exceeds spread"]


def _t975(df: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.975, df))


def module_differences(lb: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    """Paired module-minus-plain differences of ``metric`` per protocol (:data:`COLUMNS`).

    Parameters
    ----------
    lb : DataFrame
        Leaderboard rows (:func:`neuroattn.leaderboard.read_scores`); EEG rows of ``basenet`` and
        ``basenet_<module>`` with per-subject values (``value``: mean over seeds, ``error``: SD over
        seeds, empty for one seed) are used; pooled rows (subject ``group``) are ignored.
    metric : str

    Returns
    -------
    DataFrame
        One row per protocol and module found with plain BaseNet on at least two common subjects.
        ``seed SD``: the mean over subjects of the module's SD over seeds (empty for one seed);
        ``seeds`` is 1 or ">1" (the leaderboard keeps the spread, not the count).
    """
    d = lb[(lb.modality == "eeg") & (lb.metric == metric) & (lb.subject.astype(str) != "group")]
    d = d[d.model.astype(str).str.match(rf"^{PLAIN}(_[a-z0-9]+)?$")]
    rows = []
    for protocol, g in d.groupby("target", sort=True):
        wide = g.pivot_table(index="subject", columns="model", values="value", aggfunc="mean")
        spread = g.pivot_table(index="subject", columns="model", values="error", aggfunc="mean")
        if PLAIN not in wide:
            continue
        for model in sorted(c for c in wide.columns if c != PLAIN):
            pair = wide[[PLAIN, model]].dropna()
            n = len(pair)
            if n < 2:
                continue
            diff = (pair[model] - pair[PLAIN]).to_numpy(float)
            mean, sd = float(diff.mean()), float(diff.std(ddof=1))
            sem = sd / np.sqrt(n)
            half = _t975(n - 1) * sem
            seed_sd = spread[model].dropna() if model in spread else pd.Series(dtype=float)
            rows.append({
                "protocol": protocol, "module": model.split("_", 1)[1], "subjects": n,
                "seeds": ">1" if len(seed_sd) else "1",
                "plain": round(float(pair[PLAIN].mean()), 3), "with module": round(float(pair[model].mean()), 3),
                "mean diff": round(mean, 3), "SD": round(sd, 3), "SEM": round(sem, 3),
                "95% CI": f"[{mean - half:+.3f}, {mean + half:+.3f}]",
                "seed SD": round(float(seed_sd.mean()), 3) if len(seed_sd) else None,
                "exceeds spread": ("yes: better" if mean - half > 0 else "yes: worse") if abs(mean) > half else "no",
            })
    return pd.DataFrame(rows, columns=COLUMNS)


def module_section(lb: pd.DataFrame) -> dict | None:
    """Group page section: every attention module vs plain BaseNet (None without such rows)."""
    from .html import table

    df = module_differences(lb)
    if not len(df):
        return None
    n_exceed = int((df["exceeds spread"] != "no").sum())
    text = (
        "Each attention module against plain BaseNet on the same subjects, per protocol: mean over subjects "
        "of the per-subject accuracy difference (module minus plain; each accuracy the mean over the run's "
        "seeds, so pairs are over subjects and seeds), its SD and SEM over subjects, and the paired t "
        "interval (95 %). 'exceeds spread' = the interval excludes 0. 'seed SD': the module's SD over seeds "
        f"(mean over subjects; empty for one seed). {n_exceed} of {len(df)} differences exceed their spread. "
        "Several seeds: config/eeg_seeds.yaml.")
    return {"title": "EEG: attention modules vs plain BaseNet (paired over subjects)", "text": text,
            "table": table(df)}
