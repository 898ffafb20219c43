"""Group-page section of the backbone (training-regime) comparison: per region the committed layer
and its ceiled explained variance for every compared backbone, their clean / rotated / PGD held-out
accuracy, and one figure of both (rule ``backbone_comparison``; config/crossvit.yaml compares the
four CrossViT regimes of Berrios & Deza 2022 beside the small CNN)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..data.roi_kinds import ROI_KINDS  # noqa: E402
from .figures import _colours  # noqa: E402
from .html import fig_to_uri, table  # noqa: E402

__all__ = ["comparison_tables", "comparison_figure", "backbone_comparison_section", "joint_vs_standard"]

ACCURACIES = ("clean", "rotated", "pgd")


def _read(paths) -> pd.DataFrame:
    frames = [pd.read_csv(p, sep="\t", keep_default_na=True) for p in paths]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _roi_order(df: pd.DataFrame) -> list:
    """ROIs grouped by kind in hierarchy order, each kind's mean row after its ROIs."""
    rank = {k: i for i, k in enumerate(ROI_KINDS)}
    rois = df[["roi", "kind"]].drop_duplicates()
    rois = rois.assign(is_mean=rois.roi.str.endswith("(mean)"), r=rois.kind.map(rank).fillna(len(rank)))
    return rois.sort_values(["r", "is_mean", "roi"]).roi.tolist()


def _cell(ev, sd, layer) -> str:
    if not np.isfinite(ev):
        return ""
    txt = f"{ev:.3f}" + (f" ± {sd:.3f}" if np.isfinite(sd) else "")
    return txt + (f" ({layer})" if isinstance(layer, str) and layer else "")


def comparison_tables(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The two tables of the section from a ``backbone_comparison.tsv``.

    Returns
    -------
    regions : DataFrame
        One row per ROI (and ROI-kind mean), one column per backbone (table order):
        ``ceiled EV ± sd over subjects (committed layer)``.
    accuracy : DataFrame
        One row per backbone: held-out ``clean``, ``rotated``, ``pgd`` accuracy (NaN if untrained).
    """
    backbones = list(dict.fromkeys(df.backbone))
    rows = []
    for roi in _roi_order(df):
        r = df[df.roi == roi]
        row = {"region": roi, "kind": r.kind.iloc[0]}
        for b in backbones:
            g = r[r.backbone == b]
            row[b] = _cell(float(g.ceiled_ev.iloc[0]), float(g.ceiled_ev_sd.iloc[0]), g.committed_layer.iloc[0]) if len(g) else ""
        rows.append(row)
    acc = []
    for b in backbones:
        g = df[df.backbone == b].iloc[0]
        acc.append({"backbone": b, **{k: float(g.get(f"accuracy_{k}", np.nan)) for k in ACCURACIES}})
    return pd.DataFrame(rows), pd.DataFrame(acc)


def joint_vs_standard(df: pd.DataFrame, kind: str = "V4-like") -> list[str]:
    """Sentences comparing each ``<arch>_joint`` with its ``<arch>_standard`` on ``kind``'s mean row
    (the planted finding: joint training scores higher) and on PGD / rotated accuracy."""
    out = []
    mean = df[df.roi == f"{kind} (mean)"].set_index("backbone")
    for b in dict.fromkeys(df.backbone):
        if not b.endswith("_joint"):
            continue
        s = b[: -len("_joint")] + "_standard"
        if b not in mean.index or s not in mean.index:
            continue
        j, st = mean.loc[b], mean.loc[s]
        higher = j.ceiled_ev > st.ceiled_ev
        out.append(f"{kind} region: {b} {j.ceiled_ev:.3f} vs {s} {st.ceiled_ev:.3f} ceiled EV: joint training "
                   + ("scores HIGHER than standard training (the planted finding)." if higher
                      else "does NOT score higher than standard training here."))
        for k in ("rotated", "pgd"):
            a, c = j.get(f"accuracy_{k}", np.nan), st.get(f"accuracy_{k}", np.nan)
            if np.isfinite(a) and np.isfinite(c):  # the numbers, not a verdict: a few hundred images at most
                out.append(f"{k} accuracy {a:.2f} (joint) vs {c:.2f} (standard): joint "
                           + ("higher" if a > c else "NOT higher") + ".")
    return out


def comparison_figure(df: pd.DataFrame):
    """Left: ceiled EV per ROI kind (mean over its ROIs, error bars sd over subjects), one bar per
    backbone. Right: held-out clean / rotated / PGD accuracy per backbone."""
    backbones = list(dict.fromkeys(df.backbone))
    colours = _colours(backbones)
    kinds = [k for k in ROI_KINDS if f"{k} (mean)" in set(df.roi)]
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.6), gridspec_kw={"width_ratios": [max(1, len(kinds)), 1.6]})
    width = 0.8 / max(1, len(backbones))
    for i, b in enumerate(backbones):
        g = df[df.backbone == b].set_index("roi")
        ev = [float(g.ceiled_ev.get(f"{k} (mean)", np.nan)) for k in kinds]
        sd = np.nan_to_num([float(g.ceiled_ev_sd.get(f"{k} (mean)", np.nan)) for k in kinds])
        axes[0].bar(np.arange(len(kinds)) + (i - (len(backbones) - 1) / 2) * width, ev, width, yerr=sd,
                    color=colours[b], label=b, capsize=2)
        first = df[df.backbone == b].iloc[0]
        acc = [float(first.get(f"accuracy_{k}", np.nan)) for k in ACCURACIES]
        axes[1].bar(np.arange(len(ACCURACIES)) + (i - (len(backbones) - 1) / 2) * width, acc, width,
                    color=colours[b], label=b)
    axes[0].set_xticks(range(len(kinds)), kinds)
    axes[0].set_ylabel("ceiled EV (committed layer)")
    axes[0].set_title("per ROI kind: mean over its ROIs")
    axes[1].set_xticks(range(len(ACCURACIES)), ACCURACIES)
    axes[1].set_ylabel("held-out accuracy")
    axes[1].set_ylim(0, 1)
    axes[1].set_title("robustness")
    axes[1].legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    return fig


def backbone_comparison_section(paths) -> dict | None:
    """The group-page section of the ``backbone_comparison`` tables ``paths`` (None without any)."""
    df = _read(paths)
    if df.empty:
        return None
    regions, acc = comparison_tables(df)
    text = ("Backbones (the same architecture trained under different regimes: standard, rotation = random "
            "quarter turns, adversarial = PGD, joint = both) compared Brain-Score style: per region, the layer "
            "each one commits to (chosen on the public images) and its ceiled explained variance on the held-out "
            "images (PLS predictivity over the noise ceiling; mean ± sd over subjects; '<kind> (mean)': each "
            "subject's mean over the kind's ROIs). Accuracy: the backbone's own held-out images, clean, rotated "
            "by 90/180/270 degrees and PGD-attacked. ")
    text += " ".join(joint_vs_standard(df))
    return {"title": "Backbone training regimes", "text": text,
            "tables": [{"title": "Per region: ceiled EV ± sd (committed layer)", "table": table(regions)},
                       {"title": "Held-out accuracy", "table": table(acc, float_format="{:.2f}")}],
            "figures": [{"uri": fig_to_uri(comparison_figure(df)),
                         "caption": "Left: ceiled EV of the committed layer per ROI kind (error bars: sd over "
                                    "subjects). Right: held-out accuracy on clean, rotated and PGD images."}]}
