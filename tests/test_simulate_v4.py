"""The simulator's optional V4-like region (simulate.fmri.v4_region): tuned to object shape whatever
the object's orientation (and not to colour or pixels), opt-in, and present in the written truth."""
import h5py
import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from neuroattn.data.simulate import simulate_fmri_dataset
from neuroattn.data.simulate_brain import (SHAPE_SPACE, V4_ROI, VoxelTuning, brain_mask, image_drive,
                                           place_rois, shape_descriptors, shape_drive, voxel_tuning)
from neuroattn.data.simulate_params import params_from_config
from neuroattn.data.stimuli import CATEGORIES, Stimuli, _draw_shape


def _one_object_stimuli(objects, size=48):
    """Images of one object each: (category, rotation, hue) per image, drawn with the simulator's
    own shape drawing; ``visible`` from the drawn masks (1: nothing hides it)."""
    images, masks, rows, obj = [], [], [], []
    for i, (cat, rot, hue) in enumerate(objects):
        m = Image.new("L", (size, size), 0)
        _draw_shape(ImageDraw.Draw(m), cat, size / 2, size / 2, size * 0.3, rot, 255)
        mask = np.asarray(m) > 0
        img = np.zeros((size, size, 3), np.uint8)
        img[mask] = 255
        name = f"img{i:04d}.png"
        images.append(img)
        masks.append(mask)
        rows.append({"stim_file": name, "category": cat, "n_objects": 1})
        obj.append({"stim_file": name, "object": 0, "category": cat, "x": 0.5, "y": 0.5, "size": 0.3 + 0.01 * i,
                    "rotation": rot, "hue": hue, "r": 255, "g": 255, "b": 255, "visible": float(mask.any())})
    return Stimuli(images=np.stack(images), table=pd.DataFrame(rows), objects=pd.DataFrame(obj),
                   masks=np.stack(masks), categories=CATEGORIES)


def _v4_and_cat_tuning(space):
    """Two V4-like voxels (preferring star, disk) and one cat_star voxel (hue-tuned)."""
    V = 3
    return VoxelTuning(
        ijk=np.zeros((V, 3), np.int32), roi=np.array([V4_ROI, V4_ROI, "cat_star"]), hemi=np.array(["lh"] * V),
        rf_center=np.full((V, 2), np.nan), rf_sigma=np.full(V, np.nan), category=np.array(["", "", "star"]),
        hue=np.array([np.nan, np.nan, 0.0]), w_col=np.array([0.0, 0.0, 0.6]), w_size=np.zeros(V),
        reliability=np.full(V, 0.5), scale=np.ones(V),
        shape_pref=np.stack([space[CATEGORIES.index("star")], space[CATEGORIES.index("disk")],
                             np.full(space.shape[1], np.nan)]),
        shape_width=np.array([0.4, 0.4, np.nan]))


def test_v4_drive_invariant_to_orientation_and_colour_but_shape_tuned():
    space = shape_descriptors(CATEGORIES)
    # star at 0 / 17 / 53 degrees, red and green; a square at two orientations; a disk
    objects = [("star", 0.0, 0.0), ("star", 17.0, 0.0), ("star", 53.0, 0.33), ("square", 0.0, 0.0),
               ("square", 30.0, 0.0), ("disk", 0.0, 0.0)]
    stim = _one_object_stimuli(objects)
    # the drawn images differ (the rotation is real), the drive of the V4-like voxels does not
    assert (stim.images[0] != stim.images[1]).any() and (stim.images[3] != stim.images[4]).any()
    tun = _v4_and_cat_tuning(space)
    raw = shape_drive(stim, tun.shape_pref[:2], tun.shape_width[:2])
    np.testing.assert_allclose(raw[0], raw[1])
    np.testing.assert_allclose(raw[0], raw[2])   # another orientation and another colour
    np.testing.assert_allclose(raw[3], raw[4])
    # shape tuning: the star voxel prefers stars to squares to disks; the disk voxel the reverse
    assert raw[0, 0] > raw[3, 0] > raw[5, 0]
    assert raw[5, 1] > raw[3, 1] > raw[0, 1]
    # z-scored drive (what the voxels get): same invariance, while a cat_ voxel follows colour
    z = image_drive(stim, np.zeros((len(objects), 24, 24)), tun)
    np.testing.assert_allclose(z[0, :2], z[2, :2], atol=1e-12)
    assert abs(z[0, 2] - z[2, 2]) > 0.5


def test_v4_drive_invariant_when_every_object_is_turned():
    """On the simulator's own stimuli: new orientations (and hues, positions) for every object leave
    the V4-like drive unchanged; a different shape changes it."""
    from neuroattn.data.stimuli import draw_stimuli

    stim = draw_stimuli(30, 48, seed=1)
    rng = np.random.default_rng(0)
    space = shape_descriptors(stim.categories)
    pref = space[rng.integers(0, len(space), 8)] + rng.normal(0, 0.1, (8, space.shape[1]))
    width = rng.uniform(0.3, 0.6, 8)
    base = shape_drive(stim, pref, width)
    turned = stim.objects.copy()
    turned["rotation"] = rng.uniform(0, 360, len(turned))
    turned["hue"], turned["x"] = rng.random(len(turned)), rng.random(len(turned))
    again = shape_drive(Stimuli(stim.images, stim.table, turned, stim.masks, stim.categories), pref, width)
    np.testing.assert_array_equal(base, again)
    swapped = stim.objects.copy()
    swapped["category"] = np.roll(swapped["category"].to_numpy(), 1)
    changed = shape_drive(Stimuli(stim.images, stim.table, swapped, stim.masks, stim.categories), pref, width)
    assert np.abs(changed - base).max() > 0.1


def test_shape_space_is_rotation_invariant_descriptors():
    assert set(SHAPE_SPACE) == set(CATEGORIES)
    d = shape_descriptors(CATEGORIES)
    assert d.shape == (6, 4) and len({tuple(r) for r in d}) == 6   # every shape distinct
    np.testing.assert_array_equal(shape_descriptors(["disk", "blob"]), np.eye(2))  # unknown: one-hot


def test_v4_region_is_opt_in():
    mask = brain_mask(10.0)
    labels, names, _ = place_rois(mask, np.random.default_rng(0), CATEGORIES)
    assert V4_ROI not in names
    labels4, names4, hemi4 = place_rois(mask, np.random.default_rng(0), CATEGORIES, v4_region=True)
    assert names4 == names + [V4_ROI] and (labels4 == len(names4)).sum() >= 6
    tun = voxel_tuning(labels4, names4, hemi4, mask.affine, np.random.default_rng(1), categories=CATEGORIES)
    v4 = tun.roi == V4_ROI
    assert np.isfinite(tun.shape_pref[v4]).all() and np.isnan(tun.shape_pref[~v4]).all()
    assert (tun.category[v4] == "").all() and np.isnan(tun.rf_sigma[v4]).all()
    with pytest.raises(ValueError, match="categories"):
        voxel_tuning(labels4, names4, hemi4, mask.affine, np.random.default_rng(1))
    assert params_from_config({"fmri": {"v4_region": True}}, task="vision", seed=0).v4_region is True
    assert params_from_config({}, task="vision", seed=0).v4_region is False
    with pytest.raises(TypeError, match="v4_region"):
        params_from_config({"fmri": {"v4_region": "yes"}}, task="vision", seed=0)


def test_simulated_dataset_with_v4_region(tmp_path):
    kw = dict(n_subjects=1, n_images=30, image_size=48, n_shared=6, n_repeats_shared=2, n_train_per_subject=20,
              n_runs=1, voxel_size=10.0, seed=2)
    out = simulate_fmri_dataset(tmp_path / "v4", v4_region=True, **kw)
    assert out["01"]["rois"][V4_ROI] >= 6
    with h5py.File(tmp_path / "v4/derivatives/truth/sub-01/sub-01_desc-truth.h5") as f:
        roi = f["voxel_roi"][:].astype(str)
        pref = f["voxel_shape_pref"][:]
        assert np.isfinite(pref[roi == V4_ROI]).all() and V4_ROI in f["roi_routing"]
    dseg = (tmp_path / "v4/derivatives/rois/sub-01/anat/sub-01_desc-rois_dseg.tsv").read_text()
    assert V4_ROI in dseg
    off = simulate_fmri_dataset(tmp_path / "off", **kw)
    assert V4_ROI not in off["01"]["rois"]
    assert "v4_region" not in (tmp_path / "off/README").read_text()
    with h5py.File(tmp_path / "off/derivatives/truth/sub-01/sub-01_desc-truth.h5") as f:
        assert "voxel_shape_pref" not in f
