"""Simulated anatomy and tuning: ROIs in a coarse MNI mask, each voxel's receptive field or object
tuning, the noise-free drive of every voxel by every image, and the true routing maps
(see :mod:`neuroattn.data.simulate` for the generative model)."""
from __future__ import annotations

from dataclasses import dataclass

import nibabel as nib
import numpy as np
import pandas as pd

from .stimuli import Stimuli, block_mean

#: seed points (right hemisphere, MNI mm; mirrored on the left) and RF sigma of retinotopic ROIs
RET_SEEDS = {"V1": ((8, -98, 2), 0.06), "V2": ((16, -92, -12), 0.09), "V3": ((28, -90, 10), 0.13)}
CAT_SEEDS = ((40, -54, -20), (28, -42, -10), (46, -76, -4), (50, -62, 10), (34, -66, -16), (22, -80, -16))
#: the optional mid-level, V4-like region (``simulate.fmri.v4_region``): its name and seed point,
#: lateral to V3 on the ventral occipital surface
V4_ROI = "shape_V4"
V4_SEED = (36, -86, -2)
#: rotation-invariant shape descriptors of the stimulus categories (roundness, corners / 12,
#: concavity, hole): what V4-like voxels are tuned to, never orientation, colour or pixels
SHAPE_SPACE = {"disk": (1.0, 0.0, 0.0, 0.0), "ring": (1.0, 0.0, 0.0, 1.0), "square": (0.3, 4 / 12, 0.0, 0.0),
               "triangle": (0.0, 3 / 12, 0.0, 0.0), "star": (0.0, 10 / 12, 1.0, 0.0),
               "cross": (0.0, 12 / 12, 0.6, 0.0)}
#: volume of one ROI per hemisphere (mm^3) -> ~50 voxels per ROI and hemisphere at 6 mm
ROI_VOLUME = 10_000.0
#: ``anatomy="individual"``: extra per-subject shift of every ROI seed (sd, mm, per axis), range of
#: the ROI volume factor (``"shared"``: 0.8-1.2) and of the rotation of the retinotopic maps' axes
#: (radians) relative to the template: so that voxel i of one subject is not voxel i of another
INDIVIDUAL_SEED_SD = 8.0
INDIVIDUAL_VOLUME = (0.5, 1.6)
INDIVIDUAL_MAP_ROTATION = np.pi / 3
#: contrast-energy grid on which receptive fields integrate
ENERGY_GRID = 24


# anatomy
def brain_mask(voxel_size: float) -> nib.Nifti1Image:
    """nilearn's bundled MNI152 brain mask resampled to ``voxel_size`` mm, cropped to the brain."""
    from nilearn.datasets import load_mni152_brain_mask
    from nilearn.image import resample_img

    mni = load_mni152_brain_mask(resolution=2)
    img = resample_img(mni, target_affine=np.diag([voxel_size] * 3), interpolation="nearest",
                       force_resample=True, copy_header=True)
    data = np.asarray(img.dataobj) > 0
    idx = np.argwhere(data)
    lo, hi = np.maximum(idx.min(0) - 1, 0), np.minimum(idx.max(0) + 2, data.shape)
    crop = data[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    affine = img.affine.copy()
    affine[:3, 3] = nib.affines.apply_affine(img.affine, lo)
    return nib.Nifti1Image(crop.astype(np.uint8), affine)


def _ijk_to_mm(affine, ijk):
    return nib.affines.apply_affine(affine, ijk)


def shape_descriptors(categories) -> np.ndarray:
    """(n_categories, d) rotation-invariant shape descriptors (:data:`SHAPE_SPACE`); categories
    outside it get one-hot descriptors (every category equally far from the others)."""
    categories = list(categories)
    if all(c in SHAPE_SPACE for c in categories):
        return np.array([SHAPE_SPACE[c] for c in categories], float)
    return np.eye(len(categories))


def place_rois(mask: nib.Nifti1Image, rng: np.random.Generator, categories,
               v4_region: bool = False, anatomy: str = "shared") -> tuple[np.ndarray, list[str], np.ndarray]:
    """Subject-specific ROIs in ``mask`` (plus :data:`V4_ROI` last when ``v4_region``).

    ``anatomy="shared"``: seeds jittered by 3 mm, volumes by 0.8-1.2 (subjects nearly aligned).
    ``"individual"``: every seed also shifted by :data:`INDIVIDUAL_SEED_SD` mm per axis and volumes
    drawn in :data:`INDIVIDUAL_VOLUME`, per subject and hemisphere.

    Returns
    -------
    labels : ndarray (x, y, z) int16, 0 = none, k = ``names[k - 1]``
    names : list of str
    hemi : ndarray (x, y, z) int8, -1 left, +1 right, 0 none
    """
    data = np.asarray(mask.dataobj) > 0
    ijk = np.argwhere(data)
    xyz = _ijk_to_mm(mask.affine, ijk)
    vs = float(np.abs(np.diag(mask.affine)[:3]).mean())
    names = [f"ret_{k}" for k in RET_SEEDS] + [f"cat_{c}" for c in categories]
    seeds_r = [np.array(s, float) for s, _ in RET_SEEDS.values()] + [np.array(CAT_SEEDS[i % len(CAT_SEEDS)], float)
                                                                     for i in range(len(categories))]
    for i in range(len(CAT_SEEDS), len(categories)):  # more categories than seeds: shift the extras
        seeds_r[len(RET_SEEDS) + i] += np.array([6.0, 8.0, 6.0]) * (i // len(CAT_SEEDS))
    if v4_region:  # appended last: without it every draw below is as before
        names.append(V4_ROI)
        seeds_r.append(np.array(V4_SEED, float))
    labels = np.zeros(data.shape, np.int16)
    hemi = np.zeros(data.shape, np.int8)
    for side in (-1, 1):
        seeds = np.array([s * np.array([side, 1, 1]) for s in seeds_r]) + rng.normal(0, 3.0, size=(len(names), 3))
        if anatomy == "individual":
            seeds = seeds + rng.normal(0, INDIVIDUAL_SEED_SD, size=seeds.shape)
        vol = INDIVIDUAL_VOLUME if anatomy == "individual" else (0.8, 1.2)
        in_hemi = (xyz[:, 0] * side > 0) & (xyz[:, 1] < -30) & (xyz[:, 2] < 30)
        cand, cxyz = ijk[in_hemi], xyz[in_hemi]
        d = np.linalg.norm(cxyz[:, None, :] - seeds[None], axis=2)
        cell = d.argmin(1)
        for k in range(len(names)):
            n_vox = max(3, int(round(ROI_VOLUME * rng.uniform(*vol) / vs**3)))
            members = np.flatnonzero(cell == k)
            members = members[np.argsort(d[members, k], kind="stable")][:n_vox]
            labels[tuple(cand[members].T)] = k + 1
            hemi[tuple(cand[members].T)] = side
    return labels, names, hemi


# --------------------------------------------------------------------------------------------
# tuning and drive
@dataclass
class VoxelTuning:
    ijk: np.ndarray
    roi: np.ndarray
    hemi: np.ndarray
    rf_center: np.ndarray
    rf_sigma: np.ndarray
    category: np.ndarray
    hue: np.ndarray
    w_col: np.ndarray
    w_size: np.ndarray
    reliability: np.ndarray
    scale: np.ndarray
    shape_pref: np.ndarray | None = None   # (V, d) preferred point in shape space (V4_ROI voxels; NaN elsewhere)
    shape_width: np.ndarray | None = None  # (V,) tuning width in shape space


def _rank(v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Ranks of ``v`` scaled to (0, 1), ties broken at random."""
    r = np.argsort(np.argsort(v + rng.normal(0, 1e-3, len(v)), kind="stable"), kind="stable")
    return (r + 0.5) / len(v)


def voxel_tuning(labels, names, hemi, affine, rng, categories=None, anatomy: str = "shared") -> VoxelTuning:
    """Draw every ROI voxel's tuning (RF for ``ret_*``, object features for ``cat_*``, a preferred
    shape for :data:`V4_ROI`, which needs ``categories``) and reliability.

    With ``anatomy="individual"`` each retinotopic map's axes (polar angle along inferior-superior,
    eccentricity along posterior-anterior) are rotated in the sagittal plane by a per-subject angle
    in +-:data:`INDIVIDUAL_MAP_ROTATION`."""
    ijk = np.argwhere(labels > 0)
    lab = labels[tuple(ijk.T)]
    order = np.lexsort((ijk[:, 2], ijk[:, 1], ijk[:, 0], lab))
    ijk, lab = ijk[order], lab[order]
    V = len(ijk)
    roi = np.array([names[k - 1] for k in lab], dtype=object)
    side = hemi[tuple(ijk.T)]
    xyz = _ijk_to_mm(affine, ijk)
    rf_center = np.full((V, 2), np.nan)
    rf_sigma = np.full(V, np.nan)
    category = np.array([""] * V, dtype=object)
    hue = np.full(V, np.nan)
    w_col = np.zeros(V)
    w_size = np.zeros(V)
    ret_sigma = {f"ret_{k}": s for k, (_, s) in RET_SEEDS.items()}
    shape_pref = shape_width = None
    if V4_ROI in names:
        if categories is None:
            raise ValueError(f"voxel_tuning: the {V4_ROI} region needs the stimulus categories")
        space = shape_descriptors(categories)
        shape_pref, shape_width = np.full((V, space.shape[1]), np.nan), np.full(V, np.nan)
    for name in names:
        for sd in (-1, 1):
            sel = np.flatnonzero((roi == name) & (side == sd))
            if not len(sel):
                continue
            if name in ret_sigma:
                ap, si = xyz[sel, 1], xyz[sel, 2]
                if anatomy == "individual":  # this subject's map sits rotated on its cortex
                    th = rng.uniform(-INDIVIDUAL_MAP_ROTATION, INDIVIDUAL_MAP_ROTATION)
                    ap, si = np.cos(th) * ap - np.sin(th) * si, np.sin(th) * ap + np.cos(th) * si
                angle = (_rank(si, rng) - 0.5) * np.pi * 0.9            # superior -> lower field (y down)
                ecc = 0.06 + 0.36 * (1 - _rank(ap, rng))                # posterior (small y) -> foveal
                x = 0.5 - sd * ecc * np.cos(angle)                 # left hemisphere -> right field
                y = 0.5 + ecc * np.sin(angle)
                c = np.stack([x, y], 1) + rng.normal(0, 0.03, (len(sel), 2))
                rf_center[sel] = np.clip(c, 0.03, 0.97)
                rf_sigma[sel] = ret_sigma[name] * rng.uniform(0.8, 1.25, len(sel))
            elif name == V4_ROI:  # graded tuning around a random category's shape, any orientation
                pref = space[rng.integers(0, len(space), len(sel))]
                shape_pref[sel] = pref + rng.normal(0, 0.1, pref.shape)
                shape_width[sel] = rng.uniform(0.3, 0.6, len(sel))
            else:
                category[sel] = name[len("cat_"):]
                hue[sel] = rng.random(len(sel))
                w_col[sel] = rng.uniform(0.2, 0.7, len(sel))
                w_size[sel] = rng.uniform(-0.3, 0.7, len(sel))
    reliability = rng.uniform(0.1, 0.9, V)
    scale = rng.uniform(1.5, 2.5, V)
    return VoxelTuning(ijk=ijk.astype(np.int32), roi=roi.astype(str), hemi=np.where(side < 0, "lh", "rh"),
                       rf_center=rf_center, rf_sigma=rf_sigma, category=category.astype(str), hue=hue,
                       w_col=w_col, w_size=w_size, reliability=reliability, scale=scale,
                       shape_pref=shape_pref, shape_width=shape_width)


def gaussian_rfs(center: np.ndarray, sigma: np.ndarray, size: int) -> np.ndarray:
    """(n, size, size) Gaussian receptive fields on a size x size pixel grid, each summing to 1."""
    g = (np.arange(size) + 0.5) / size
    gx = np.exp(-0.5 * ((g[None, :] - center[:, :1]) / sigma[:, None]) ** 2)
    gy = np.exp(-0.5 * ((g[None, :] - center[:, 1:]) / sigma[:, None]) ** 2)
    rf = gy[:, :, None] * gx[:, None, :]
    return rf / rf.sum((1, 2), keepdims=True)


def image_drive(stim: Stimuli, energy: np.ndarray, tun: VoxelTuning) -> np.ndarray:
    """Noise-free drive of every voxel by every image, z-scored over images: (n_images, V)."""
    n_img, V = len(stim.table), len(tun.roi)
    drive = np.zeros((n_img, V))
    ret = np.flatnonzero(~np.isnan(tun.rf_sigma))
    if len(ret):
        rf = gaussian_rfs(tun.rf_center[ret], tun.rf_sigma[ret], energy.shape[1]).reshape(len(ret), -1)
        drive[:, ret] = np.sqrt(np.maximum(energy.reshape(n_img, -1) @ rf.T, 0))
    cat = np.flatnonzero(tun.category != "")
    if len(cat):
        obj = stim.objects
        img_index = pd.Index(stim.table.stim_file).get_indexer(obj.stim_file)
        zsize = ((obj["size"] - obj["size"].mean()) / obj["size"].std()).to_numpy()
        same = obj.category.to_numpy()[:, None] == tun.category[cat][None, :]         # (n_obj, n_cat)
        f = 1 + tun.w_col[cat] * np.cos(2 * np.pi * (obj.hue.to_numpy()[:, None] - tun.hue[cat]))
        f = f + tun.w_size[cat] * zsize[:, None]
        contrib = obj.visible.to_numpy()[:, None] * np.where(same, f, 0.1)
        acc = np.zeros((n_img, len(cat)))
        np.add.at(acc, img_index, contrib)
        drive[:, cat] = acc
    if tun.shape_pref is not None and (tun.roi == V4_ROI).any():
        drive[:, tun.roi == V4_ROI] = shape_drive(stim, tun.shape_pref[tun.roi == V4_ROI],
                                                  tun.shape_width[tun.roi == V4_ROI])
    sd = drive.std(0)
    sd[sd == 0] = 1
    return (drive - drive.mean(0)) / sd


def shape_drive(stim: Stimuli, pref: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Drive of V4-like voxels (preferred shape ``pref`` (v, d), tuning width ``width`` (v,)) by every
    image, before z-scoring: ``sum_o visible_o * exp(-|s(c_o) - pref|^2 / (2 width^2))`` over the
    image's objects, ``s`` the rotation-invariant descriptor of the object's category
    (:func:`shape_descriptors`). Orientation, position, colour, size and pixels do not enter."""
    obj = stim.objects
    space = shape_descriptors(stim.categories)
    cat_index = pd.Index(list(stim.categories)).get_indexer(obj.category)
    d2 = ((space[cat_index][:, None, :] - pref[None]) ** 2).sum(-1)            # (n_obj, v)
    contrib = obj.visible.to_numpy()[:, None] * np.exp(-0.5 * d2 / width[None] ** 2)
    img_index = pd.Index(stim.table.stim_file).get_indexer(obj.stim_file)
    acc = np.zeros((len(stim.table), len(pref)))
    np.add.at(acc, img_index, contrib)
    return acc


def image_routing(stim: Stimuli, images: np.ndarray, categories, grid: int = ENERGY_GRID) -> dict[str, np.ndarray]:
    """Per-image routing of each category ROI: its category's visible object pixels, (n, grid, grid).

    Each map sums to 1 where the image holds an object of the category and is all zeros otherwise.
    """
    obj = stim.objects
    size = stim.images.shape[1]
    row = pd.Index(images).get_indexer(obj.stim_file)
    out = {}
    for c in categories:
        sel = np.flatnonzero((row >= 0) & (obj.category.to_numpy() == c))
        maps = np.zeros((len(images), size, size))
        np.add.at(maps, row[sel], stim.masks[sel].astype(np.float64))
        maps = block_mean(maps, (1, grid / size, grid / size))
        tot = maps.sum((1, 2), keepdims=True)
        out[f"cat_{c}"] = np.divide(maps, tot, out=np.zeros_like(maps), where=tot > 0).astype(np.float32)
    return out


def roi_routing(stim: Stimuli, images: np.ndarray, tun: VoxelTuning) -> dict[str, np.ndarray]:
    """True routing map per ROI at image resolution, averaged over ``images``, each summing to 1."""
    size = stim.images.shape[1]
    out = {}
    sel_img = set(images)
    obj = stim.objects
    keep = obj.stim_file.isin(sel_img).to_numpy()
    for name in dict.fromkeys(tun.roi):
        vox = np.flatnonzero(tun.roi == name)
        if name.startswith("ret_"):
            m = gaussian_rfs(tun.rf_center[vox], tun.rf_sigma[vox], size).mean(0)
        elif name == V4_ROI:  # every object, whatever its category
            rows = np.flatnonzero(keep)
            m = stim.masks[rows].sum(0).astype(np.float64) if len(rows) else np.ones((size, size))
        else:
            c = name[len("cat_"):]
            rows = np.flatnonzero(keep & (obj.category.to_numpy() == c))
            m = stim.masks[rows].sum(0).astype(np.float64) if len(rows) else np.ones((size, size))
        out[name] = (m / m.sum()).astype(np.float32)
    return out
