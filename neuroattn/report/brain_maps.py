"""Subject page section: each encoder's voxelwise prediction accuracy on the bold reference (nilearn)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from . import figures
from .html import fig_to_uri

__all__ = ["brain_map_section", "map_label"]


def map_label(path) -> str:
    """``model (layer)`` from a ``..._layer-<l>_model-<m>_stat-r_statmap.nii.gz`` name (else the file name)."""
    name = Path(path).name
    # model names hold underscores (ridge_grid): a name runs to the next entity (_stat-, _desc-)
    m, la = re.search(r"_model-(.+?)_(?:stat|desc)-", name), re.search(r"_layer-(.+?)_model-", name)
    return f"{m.group(1)} ({la.group(1)})" if m and la else name


def brain_map_section(subject: str, map_paths, boldref=None) -> dict:
    """One ``plot_stat_map`` per encoder, all on one symmetric colour scale (the largest |r|)."""
    import nibabel as nib

    imgs = [nib.load(str(p)) for p in map_paths]
    peak = max((float(np.nanmax(np.abs(np.asarray(i.dataobj)))) for i in imgs), default=0.0)
    vmax = max(peak, 0.05)
    bg = str(boldref) if boldref and Path(boldref).is_file() else None
    bg_txt = "the mean of the subject's first bold run" if bg else "no background"
    figs = []
    for p, img in zip(map_paths, imgs):
        data = np.asarray(img.dataobj)
        scored = data != 0
        med = float(np.median(data[scored])) if scored.any() else float("nan")
        fig = figures.brain_map(img, bg, f"sub-{subject} {map_label(p)}: r", vmax=vmax)
        figs.append({"uri": fig_to_uri(fig),
                     "caption": f"{map_label(p)}: voxelwise Pearson r between predicted and observed test-image "
                                f"betas ({int(scored.sum())} voxels, median {med:.3f}); colour bar ±{vmax:.2f} "
                                f"(shared by every map); drawn on {bg_txt}; unscored voxels are transparent"})
    return {"title": "Voxelwise prediction accuracy",
            "text": "Each encoder's held-out accuracy per voxel (nilearn plot_stat_map): red voxels are predicted "
                    "well, blue anti-correlated. The maps are results/sub-*/scores/*_stat-r_statmap.nii.gz "
                    "(rule voxel_maps) for other viewers.",
            "figures": figs}
