"""NSD adapter on a miniature release: expdesign .mat, session betas (HDF5 + NIfTI), ROI volumes, brick."""
import h5py
import nibabel as nib
import numpy as np
import pytest
from scipy.io import savemat

from neuroattn.data.formats import nsd

SHAPE = (5, 6, 4)          # X, Y, Z of the functional grid
N_COLS = 30                # columns of subjectim (10,000 in NSD)
N_BRICK = 40               # images in the brick (73,000 in NSD)
AFFINE = np.diag([1.8, 1.8, 1.8, 1.0])


def _write_release(root, rng, n_sessions=2, subject=1):
    """Write a tiny NSD tree; returns what was planted."""
    T = nsd.TRIALS_PER_SESSION
    master = rng.integers(0, N_COLS, n_sessions * T)                   # 0-based columns
    subjectim = np.stack([rng.permutation(N_BRICK)[:N_COLS] for _ in range(8)])  # 0-based 73k
    shared = np.arange(5)
    d = nsd.expdesign_path(root)
    d.parent.mkdir(parents=True)
    savemat(d, {"masterordering": (master + 1)[None, :].astype(np.float64),
                "subjectim": (subjectim + 1).astype(np.float64), "sharedix": (shared + 1)[None, :].astype(np.float64)})
    # ROIs: prf-visualrois labels 1 (V1v) and 4 (V2d); floc-faces label 2 (FFA-1) overlapping one V1v voxel
    roi = -np.ones(SHAPE, np.int16)
    roi[:, :, 1:3] = 0
    roi[0:2, 0:2, 1] = 1
    roi[3:5, 3:5, 2] = 4
    faces = np.where(roi >= 0, 0, -1).astype(np.int16)
    faces[1, 1, 1] = 2  # overlaps V1v: keeps V1v
    faces[2, 4, 2] = 2
    rdir = nsd.roi_dir(root, subject)
    rdir.mkdir(parents=True)
    nib.save(nib.Nifti1Image(roi, AFFINE), rdir / "prf-visualrois.nii.gz")
    nib.save(nib.Nifti1Image(faces, AFFINE), rdir / "floc-faces.nii.gz")
    lh = np.zeros(SHAPE, np.int16)
    lh[:3] = 1
    rh = np.zeros(SHAPE, np.int16)
    rh[3:] = 1
    nib.save(nib.Nifti1Image(lh * (roi > 0), AFFINE), rdir / "lh.prf-visualrois.nii.gz")
    nib.save(nib.Nifti1Image(rh * (roi > 0), AFFINE), rdir / "rh.prf-visualrois.nii.gz")
    (rdir / "floc-faces.mgz.ctab").write_text("0 Unknown 0 0 0 0\n1 OFA 1 1 1 0\n2 FFA-1 2 2 2 0\n")
    # betas: image pattern (signal in V1v voxels) + noise, int16 x 300
    pattern = rng.normal(size=(N_BRICK,) + SHAPE)
    signal = (roi == 1)[None]
    bdir = nsd.betas_dir(root, subject)
    bdir.mkdir(parents=True)
    written = []
    for ses in range(1, n_sessions + 1):
        im = subjectim[subject - 1, master[(ses - 1) * T:ses * T]]
        b = 2.0 * pattern[im] * signal + rng.normal(size=(T,) + SHAPE) + 0.5 * ses  # session offset
        q = np.round(b * nsd.BETA_SCALE).astype(np.int16)                            # (T, X, Y, Z)
        written.append(q)
        if ses == 1:
            with h5py.File(bdir / "betas_session01.hdf5", "w") as f:
                f["betas"] = np.ascontiguousarray(q.transpose(0, 3, 2, 1))  # released order (T, Z, Y, X)
        else:
            nib.save(nib.Nifti1Image(np.ascontiguousarray(q.transpose(1, 2, 3, 0)), AFFINE),
                     bdir / f"betas_session{ses:02d}.nii.gz")
    brick = rng.integers(0, 256, size=(N_BRICK, 8, 8, 3), dtype=np.uint8)
    sp = nsd.stimuli_path(root)
    sp.parent.mkdir(parents=True)
    with h5py.File(sp, "w") as f:
        f["imgBrick"] = brick
    return dict(master=master, subjectim=subjectim, written=written, brick=brick, roi=roi, faces=faces)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("nsd")
    planted = _write_release(root, np.random.default_rng(0))
    return root, planted


@pytest.fixture(scope="module")
def loaded(release):
    root, _ = release
    return nsd.load_subject(root, "subj01", rois=["prf-visualrois", "floc-faces"])


def test_voxels_labels_and_hemispheres(loaded, release):
    betas, _, _ = loaded
    _, planted = release
    roi = planted["roi"]
    want = {tuple(v) for v in np.argwhere((roi > 0) | (planted["faces"] > 0))}
    assert {tuple(v) for v in betas.voxel_ijk} == want
    lab = dict(zip(map(tuple, betas.voxel_ijk), betas.voxel_roi))
    assert lab[(0, 0, 1)] == "V1v" and lab[(4, 4, 2)] == "V2d"
    assert lab[(1, 1, 1)] == "V1v"            # overlap: the first volume wins
    assert lab[(2, 4, 2)] == "FFA-1"          # from the .mgz.ctab
    hemi = dict(zip(map(tuple, betas.voxel_ijk), betas.voxel_hemi))
    assert hemi[(0, 0, 1)] == "lh" and hemi[(4, 4, 2)] == "rh" and hemi[(2, 4, 2)] == ""
    assert betas.shape == SHAPE and np.allclose(betas.affine, AFFINE)


def test_trial_images_follow_expdesign(loaded, release):
    betas, trials, _ = loaded
    _, planted = release
    T = nsd.TRIALS_PER_SESSION
    idx = planted["subjectim"][0, planted["master"]]
    assert list(betas.trial_image) == [f"nsd-{i + 1:05d}.png" for i in idx]
    assert list(betas.trial_session[[0, T - 1, T, 2 * T - 1]]) == ["01", "01", "02", "02"]
    assert (trials["index73k"].to_numpy() == idx).all()
    assert (trials["shared"].to_numpy() == (idx < 5)).all()
    assert betas.n_repeats.sum() == 2 * T


def test_values_are_sessionwise_zscores_of_written_betas(loaded, release):
    betas, _, _ = loaded
    _, planted = release
    T = nsd.TRIALS_PER_SESSION
    for v in (0, len(betas.voxel_ijk) - 1):
        i, j, k = betas.voxel_ijk[v]
        for s in range(2):
            raw = planted["written"][s][:, i, j, k] / 300.0
            ref = (raw - raw.mean()) / raw.std()
            assert np.allclose(betas.trial_betas[s * T:(s + 1) * T, v], ref, atol=1e-5)


def test_ncsnr_higher_in_signal_voxels(loaded):
    betas, _, _ = loaded
    v1 = betas.voxel_roi == "V1v"
    assert np.all(np.isfinite(betas.ncsnr))
    assert np.median(betas.ncsnr[v1]) > 1.0 > np.median(betas.ncsnr[~v1]) + 0.5


def test_preprocess_subject_tables(release, tmp_path):
    from neuroattn.data.fmri import write_subject
    from neuroattn.data.betas import Betas

    root, _ = release
    res = nsd.preprocess_subject(root, "01", {"rois": ["prf-visualrois"], "sessions": [1]})
    assert len(res.trials) == nsd.TRIALS_PER_SESSION and set(res.voxels.roi) == {"V1v", "V2d"}
    assert ((res.voxels.noise_ceiling >= 0) & (res.voxels.noise_ceiling <= 1)).all()
    paths = [tmp_path / n for n in ("b.h5", "t.tsv", "v.tsv", "p.json")]
    write_subject(res, *paths)
    back = Betas.read(paths[0])
    assert np.allclose(back.trial_betas, res.betas.trial_betas) and back.subject == "01"
    with pytest.raises(KeyError, match="unknown key"):
        nsd.preprocess_subject(root, "01", {"roi": ["prf-visualrois"]})


def test_stimuli_written_from_brick(loaded, release, tmp_path):
    from PIL import Image

    betas, _, _ = loaded
    root, planted = release
    paths = nsd.write_stimuli(nsd.stimuli_path(root), betas.images[:3], tmp_path / "stimuli")
    for p in paths:
        idx = int(p.stem.split("-")[1]) - 1
        assert np.array_equal(np.asarray(Image.open(p)), planted["brick"][idx])


def test_hdf5_in_xyz_order_reads_the_same(release, tmp_path):
    _, planted = release
    q = planted["written"][0]
    with h5py.File(tmp_path / "x.hdf5", "w") as f:
        f["betas"] = q
    ijk = np.array([[0, 0, 1], [4, 5, 3]])
    got = nsd.read_session_betas(tmp_path / "x.hdf5", ijk, SHAPE)
    assert np.allclose(got[:, 1], q[:, 4, 5, 3] / 300.0)


def test_missing_session_file_is_named(release):
    root, _ = release
    with pytest.raises(FileNotFoundError, match=r"betas_session03\.hdf5"):
        nsd.load_subject(root, 1, sessions=[1, 3])


def test_stimulus_index_outside_brick(release, tmp_path):
    root, _ = release
    with pytest.raises(ValueError, match=r"nsd_stimuli\.hdf5.*outside imgBrick of 40 images"):
        nsd.write_stimuli(nsd.stimuli_path(root), ["nsd-00041.png"], tmp_path / "s")


def test_wrong_grid_and_bad_subject(release, tmp_path):
    _, planted = release
    with h5py.File(tmp_path / "b.hdf5", "w") as f:
        f["betas"] = np.zeros((3, 2, 2, 2), np.int16)
    with pytest.raises(ValueError, match=r"b\.hdf5.*does not match the ROI grid"):
        nsd.read_session_betas(tmp_path / "b.hdf5", np.zeros((1, 3), int), SHAPE)
    with pytest.raises(ValueError, match="1..8"):
        nsd.subject_index("subj09")


def test_routing_encoder_runs_one_step(loaded):
    from neuroattn.models import RoutingEncoder

    betas, _, _ = loaded
    rng = np.random.default_rng(1)
    X = rng.normal(size=(len(betas.images), 3, 3, 8)).astype(np.float32)
    enc = RoutingEncoder(d_model=16, n_heads=2, dim_feedforward=16, max_epochs=1, batch_size=8,
                         val_fraction=0.0, device="cpu").fit(X, betas.betas, voxel_roi=betas.voxel_roi,
                                                             voxel_hemi=betas.voxel_hemi)
    assert set(enc.query_names_) == {"V1v.lh", "V2d.rh", "FFA-1"}
    assert enc.predict(X).shape == betas.betas.shape


def test_format_dispatch_writes_shown_images_only(release, tmp_path):
    from neuroattn.data import formats

    root, planted = release
    out = formats.write_stimuli("nsd", root, ["01"], tmp_path / "stim", {"sessions": [1], "rois": ["x"]})
    shown = np.unique(planted["subjectim"][0, planted["master"][:nsd.TRIALS_PER_SESSION]])
    assert sorted(p.name for p in out) == [f"nsd-{i + 1:05d}.png" for i in shown]
    res = formats.fmri_subject("nsd", root, "01", "nsd", adapter={"rois": ["prf-visualrois"], "sessions": [2]})
    assert set(res.betas.trial_session) == {"02"} and res.betas.task == "nsd"
