"""Individual anatomies of the simulated fMRI subjects (simulate.fmri.anatomy): subjects differ in ROI
positions, sizes and map orientations, the dataset stays BIDS-shaped and its truth consistent."""
import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from neuroattn.data.simulate import simulate_fmri_dataset
from neuroattn.data.simulate_brain import brain_mask, place_rois, voxel_tuning
from neuroattn.data.stimuli import CATEGORIES

TINY = dict(n_subjects=3, n_images=40, image_size=32, n_shared=8, n_repeats_shared=1, n_train_per_subject=16,
            n_repeats_train=1, voxel_size=8.0, tr=2.0, n_runs=1, snr=1.0, task="vision", seed=5)


def _anatomies(anatomy, n=4):
    mask = brain_mask(6.0)
    out = []
    for s in range(n):
        rng = np.random.default_rng(100 + s)
        labels, names, hemi = place_rois(mask, rng, CATEGORIES, anatomy=anatomy)
        out.append(voxel_tuning(labels, names, hemi, mask.affine, rng, categories=CATEGORIES, anatomy=anatomy))
    return out


def _alignment(a, b):
    """At the grid positions both subjects have: fraction with the same ROI, and for same-ROI retinotopic
    voxels the median distance between their RF centres."""
    index = {tuple(x): i for i, x in enumerate(a.ijk)}
    pairs = np.array([(index[tuple(x)], j) for j, x in enumerate(b.ijk) if tuple(x) in index])
    pa, pb = pairs.T
    same = a.roi[pa] == b.roi[pb]
    ret = same & np.char.startswith(a.roi[pa], "ret_")
    return same.mean(), np.median(np.linalg.norm(a.rf_center[pa[ret]] - b.rf_center[pb[ret]], axis=1))


@pytest.fixture(scope="module")
def both():
    return {k: _anatomies(k) for k in ("shared", "individual")}


def test_individual_subjects_are_not_voxel_aligned(both):
    al = {k: np.array([_alignment(t[0], t[j]) for j in range(1, 4)]) for k, t in both.items()}
    # nearly aligned subjects: most grid positions hold the same ROI and a nearby RF
    assert al["shared"][:, 0].min() > 0.75
    # individual anatomy: voxel i of one subject is often another ROI in the next, and RFs are further apart
    assert al["individual"][:, 0].max() < 0.65
    assert al["individual"][:, 1].mean() > 1.3 * al["shared"][:, 1].mean()


def test_individual_roi_sizes_differ_more(both):
    def spread(tuns, roi):
        counts = np.array([[(t.roi == n).sum() for n in roi] for t in tuns], float)
        return np.mean(counts.std(0) / counts.mean(0))
    roi = sorted(set(both["shared"][0].roi))
    assert spread(both["individual"], roi) > 1.5 * spread(both["shared"], roi)


def test_anatomy_is_validated(tmp_path):
    with pytest.raises(ValueError, match=r"simulate.fmri.anatomy.*\['individual', 'shared'\].*'mni'"):
        simulate_fmri_dataset(tmp_path / "x", **{**TINY, "anatomy": "mni"})


def test_dataset_subjects_differ_and_truth_matches_rois(tmp_path):
    root = tmp_path / "fmri"
    summary = simulate_fmri_dataset(root, **TINY)  # the default anatomy: individual
    counts = pd.DataFrame({s: summary[s]["rois"] for s in summary["subjects"]})
    assert (counts.nunique(axis=1) > 1).sum() >= len(counts) - 1  # voxel counts differ for (almost) every ROI
    ijk = {}
    for s in summary["subjects"]:
        with h5py.File(root / "derivatives" / "truth" / f"sub-{s}" / f"sub-{s}_desc-truth.h5") as f:
            ijk[s], roi = f["voxel_ijk"][()], f["voxel_roi"][()].astype(str)
        anat = root / "derivatives" / "rois" / f"sub-{s}" / "anat"
        dseg = np.asarray(nib.load(anat / f"sub-{s}_desc-rois_dseg.nii.gz").dataobj)
        names = pd.read_csv(anat / f"sub-{s}_desc-rois_dseg.tsv", sep="\t").set_index("index").name
        # the truth's voxels are exactly the dseg's labelled voxels, with the same ROI names
        assert (dseg > 0).sum() == len(ijk[s])
        assert (names.loc[dseg[tuple(ijk[s].T)]].to_numpy() == roi).all()
        assert set(roi) == set(names)
    a, b = (set(map(tuple, ijk[s])) for s in summary["subjects"][:2])
    assert len(a & b) < 0.8 * min(len(a), len(b))
