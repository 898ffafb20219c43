"""Group-page sections of the similarity rule: region-to-layer commitment by SSM beside PLS, and
the SSM subsampling curves (Shi, Shea-Brown & Buice 2019)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import figures
from .html import fig_to_uri, table

SIMILARITY_DESC = "desc-similarity_layers"
SSM_CURVES_DESC = "desc-ssmsubsampling_curves"


def _subject(path) -> str:
    return Path(path).name.split("_")[0].removeprefix("sub-")


def _read(paths) -> pd.DataFrame:
    frames = [pd.read_csv(p, sep="\t").assign(subject=_subject(p)) for p in paths]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _ordered(com: pd.DataFrame) -> bool:
    ret = com.depth[com.roi.str.startswith("ret_")]
    cat = com.depth[com.roi.str.startswith("cat_")]
    return bool(len(ret) and len(cat) and ret.max() < cat.min())


def ssm_commitment_section(pls_tables, similarity_tables):
    """ROI x subject -> committed layer by PLS (rule layer_commitment) and by SSM (rule
    similarity), and per subject whether every ``ret_*`` ROI commits earlier than every ``cat_*``.

    Returns a list of two sections (the table, and SSM values with ceilings), or None."""
    sim = _read(similarity_tables)
    if sim.empty:
        return None
    ssm = sim[(sim.metric == "ssm") & (sim.committed.astype(str) == "True")]
    pls = _read(pls_tables)
    pls = pls[pls.committed.astype(str) == "True"] if not pls.empty else pls
    cells = {}
    for (s, roi), g in ssm.groupby(["subject", "roi"]):
        p = pls[(pls.subject == s) & (pls.roi == roi)].layer if not pls.empty else pd.Series(dtype=str)
        win = g.win_fraction.iloc[0] if "win_fraction" in g else np.nan
        cells[(roi, s)] = f"{p.iloc[0] if len(p) else '-'} / {g.layer.iloc[0]}" + (f" ({win:.0%})" if win == win else "")
    subjects = sorted(ssm.subject.unique())
    rows = [{"roi": roi, **{f"sub-{s}": cells.get((roi, s), "") for s in subjects}}
            for roi in sorted(ssm.roi.unique())]
    checks = {"ssm": {s: _ordered(g) for s, g in ssm.groupby("subject")}}
    if not pls.empty:
        checks["pls"] = {s: _ordered(g) for s, g in pls.groupby("subject")}
    for name, ch in checks.items():
        rows.append({"roi": f"ret_* before cat_* ({name.upper()})", **{f"sub-{s}": str(ch.get(s, "")) for s in subjects}})
    n_ok = sum(checks["ssm"].values())
    vals = (ssm.groupby("roi")[["value", "ceiling"]].mean().reset_index()
            .rename(columns={"value": "SSM at committed layer", "ceiling": "split-half ceiling"}))
    text = ("Region-to-layer commitment: cells are 'PLS layer / SSM layer'. PLS: the best layer by cross-validated "
            "predictivity on the training images. SSM (similarity of similarity matrices, Shi et al. 2019): the "
            "layer whose RSM (kind: scoring.similarity.rsm of the config) "
            "best matches the ROI's RSM (Spearman) on the repeated test images; the same data give the value and "
            "its split-half ceiling, so the SSM choice is descriptive (no held-out images); in brackets, how often "
            "that layer wins over random 80% subsets of the images. "
            f"SSM orders every retinotopic ROI before every category ROI in {n_ok} of {len(checks['ssm'])} subjects.")
    return [{"title": "Layer commitment: PLS vs SSM", "text": text, "table": table(pd.DataFrame(rows))},
            {"title": "SSM at the committed layer", "text": "Mean over subjects of the SSM at each ROI's SSM layer "
             "and its split-half ceiling (random halves of the test-image repetitions, Spearman-Brown corrected, "
             "square-rooted).", "table": table(vals)}]


def ssm_subsampling_section(tables):
    """SSM vs number of voxels and of test images, per ROI at its SSM layer (means over subjects
    at each of the curve's sizes), and where each curve flattens (from where it stays >= 95% of the
    full-size value)."""
    df = _read(tables)
    if df.empty:
        return None
    figs = []
    for axis, g in df.groupby("axis"):
        g = g.assign(step=g.groupby(["subject", "roi"]).cumcount())
        agg = g.groupby(["roi", "step"]).agg(size=("size", "mean"), mean=("mean", "mean"),
                                            sd=("mean", "std")).reset_index()
        curves = {roi: (h["size"].to_numpy(), h["mean"].to_numpy(), np.nan_to_num(h["sd"].to_numpy()))
                  for roi, h in agg.groupby("roi")}
        fig = figures.curve_by_label(curves, f"number of {'voxels' if axis == 'units' else 'test images'}",
                                     "SSM (Spearman of RSMs)", f"SSM vs {axis}")
        figs.append({"uri": fig_to_uri(fig), "caption": f"SSM subsampling over {axis}: each ROI at its SSM layer; "
                     "scoring.similarity.subsampling_draws random subsets per size, mean over subjects ± SD over subjects"})
    flat = df.groupby(["roi", "axis", "subject"]).agg(flattens_at=("flattens_at", "first"),
                                                      full=("size", "max")).reset_index()
    summ = (flat.groupby(["roi", "axis"]).agg(flattens_at=("flattens_at", "median"), full_size=("full", "median"))
            .reset_index())
    summ["fraction of full"] = summ.flattens_at / summ.full_size
    text = ("Subsampling (Shi et al. 2019's robustness analysis) of SSM: 'flattens_at' is the smallest size from "
            "which the mean SSM stays at or above 95% of the full-size value (median over subjects; NaN where the "
            "full-size SSM is not positive). A curve that flattens well before the full size says the ROI has enough voxels / images.")
    return {"title": "SSM: enough voxels and images?", "text": text, "figures": figs, "table": table(summ)}
