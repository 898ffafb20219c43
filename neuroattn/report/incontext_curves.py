"""Group-page section of cross-subject decoding: top-1 / top-5 against the context size k for the
in-context decoder, ridge on the same k images (``ridge_context``) and anatomical alignment
(``aligned_ridge``, which uses no context: one flat line), with chance."""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import figures
from .html import fig_to_uri, table

#: the methods of the section, in legend order
METHODS = ("incontext", "ridge_context", "aligned_ridge")


def decoding_by_k(lb: pd.DataFrame) -> pd.DataFrame:
    """Per-subject top-1 / top-5 rows of the three methods with ``method`` and ``k`` columns.

    ``aligned_ridge`` (no context) is repeated at every k of the context methods. Empty when the
    leaderboard has no in-context rows.
    """
    d = lb[lb.metric.isin(["top1", "top5"])]
    ctx = d[d.model.str.match(r"^(incontext|ridge_context)_k\d+$")]
    if not len(ctx):
        return pd.DataFrame(columns=["subject", "method", "k", "metric", "value", "n"])
    ctx = ctx.assign(method=ctx.model.str.replace(r"_k\d+$", "", regex=True),
                     k=ctx.model.str.extract(r"_k(\d+)$")[0].astype(int))
    al = d[d.model == "aligned_ridge"]
    ks = sorted(ctx.k.unique())
    al = pd.concat([al.assign(method="aligned_ridge", k=k) for k in ks]) if len(al) else al
    return pd.concat([ctx, al], ignore_index=True)[["subject", "method", "k", "metric", "value", "n"]]


def incontext_curves_section(lb: pd.DataFrame) -> dict | None:
    """The section: a curve per metric (mean ± SEM over held-out subjects, chance line) and a table
    of mean and SD over subjects per method and k; None without in-context rows."""
    d = decoding_by_k(lb)
    if not len(d):
        return None
    figs, rows = [], []
    ks = sorted(d.k.unique())
    for metric in ("top1", "top5"):
        dm = d[d.metric == metric]
        if not len(dm):
            continue
        ys = {}
        for method in [m for m in METHODS if m in set(dm.method)]:
            agg = dm[dm.method == method].groupby("k")["value"].agg(["mean", "sem", "std", "count"]).reindex(ks)
            ys[method] = (agg["mean"].to_numpy(), agg["sem"].fillna(0).to_numpy())
            for k, r in agg.iterrows():
                rows.append({"metric": metric, "method": method, "k": k, "mean": r["mean"], "sd": r["std"],
                             "subjects": int(r["count"]) if np.isfinite(r["count"]) else 0})
        n = pd.to_numeric(dm["n"], errors="coerce").dropna()
        chance = (1 if metric == "top1" else 5) / float(n.iloc[0]) if len(n) else None
        figs.append({"uri": fig_to_uri(figures.curve(ks, ys, "context images k", metric,
                                                     f"held-out subject {metric}", chance)),
                     "caption": f"{metric} identification among {int(n.iloc[0]) if len(n) else '?'} test images "
                                "vs context size k, mean ± SEM over held-out subjects; aligned_ridge uses no "
                                "context (flat); dashed: chance"})
    return {"title": "Cross-subject decoding vs context size", "figures": figs,
            "table": table(pd.DataFrame(rows))}
