"""EEGMMIDB adapter on miniature EDF runs (exported with MNE/edfio) with T0/T1/T2 annotations."""
import mne
import numpy as np
import pytest

from neuroattn.data.formats import eegmmidb as mm

SFREQ = 160.0
EDF_CH = ["Fc5.", "C3..", "Cz..", "C4..", "Fp1.", "Afz.", "Pz..", "Oz.."]
STD_CH = ["FC5", "C3", "Cz", "C4", "Fp1", "AFz", "Pz", "Oz"]


def _write_run(root, subject, run, codes, rng):
    n = int(np.ceil(len(codes) * 4.2 + 2) * SFREQ)  # whole EDF data records
    info = mne.create_info(EDF_CH, SFREQ, "eeg")
    raw = mne.io.RawArray(rng.normal(0, 10e-6, (len(EDF_CH), n)), info, verbose=False)
    onsets = 1.0 + 4.2 * np.arange(len(codes))
    raw.set_annotations(mne.Annotations(onsets, [4.1] * len(codes), codes))
    path = mm.run_path(root, subject, run)
    path.parent.mkdir(parents=True, exist_ok=True)
    mne.export.export_raw(path, raw, fmt="edf", overwrite=True, verbose=False)
    return raw.get_data(), onsets


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("mmidb")
    rng = np.random.default_rng(0)
    codes = {4: ["T0", "T1", "T0", "T2", "T0", "T1", "T0", "T2"], 6: ["T0", "T2", "T0", "T1", "T0", "T2", "T0", "T1"]}
    written = {r: _write_run(root, 1, r, c, rng) for r, c in codes.items()}
    return root, codes, written


CFG = {"events": ["left_hand", "right_hand", "hands", "feet"], "l_freq": None, "h_freq": None, "resample": None,
       "tmin": 0.0, "tmax": 4.0, "reject_uv": None}


def test_labels_per_run_type_and_channels(dataset, tmp_path):
    from neuroattn.data.eeg import load_epochs, write_epochs

    root, codes, written = dataset
    epochs, table = mm.preprocess_subject(root, "S001", CFG, runs=[4, 6])
    assert list(table.label) == ["left_hand", "right_hand", "left_hand", "right_hand", "feet", "hands", "feet", "hands"]
    assert list(table.run) == ["04"] * 4 + ["06"] * 4 and set(table.session) == {"01"}
    write_epochs(epochs, table, tmp_path / "sub-001_epo.fif", tmp_path / "t.tsv")
    data = load_epochs(tmp_path / "sub-001_epo.fif")
    assert data.ch_names == STD_CH and data.sfreq == SFREQ
    assert data.X.shape == (8, len(STD_CH), int(4 * SFREQ))
    assert list(data.y) == [0, 1, 0, 1, 3, 2, 3, 2] and data.classes == CFG["events"]
    # values survive the EDF roundtrip (EDF is 16-bit: compare to the quantisation step)
    x, onsets = written[4]
    s = int(round(onsets[1] * SFREQ))
    step = (x.max() - x.min()) / 65535 * 2
    assert np.abs(data.X[0, 1] - x[1, s:s + int(4 * SFREQ)]).max() < step


def test_rest_class_and_basenet_step(dataset):
    import torch

    from neuroattn.models import BaseNet

    root, _, _ = dataset
    epochs, table = mm.preprocess_subject(root, 1, {**CFG, "events": ["rest", "left_hand", "right_hand"]}, runs=[4])
    assert list(table.label) == ["rest", "left_hand", "rest", "right_hand", "rest", "left_hand", "rest", "right_hand"]
    X = torch.tensor(epochs.get_data(copy=False) * 1e5, dtype=torch.float32)
    net = BaseNet(n_chans=X.shape[1], n_outputs=3, n_times=X.shape[2], sfreq=SFREQ)
    loss = torch.nn.functional.cross_entropy(net(X), torch.tensor(epochs.events[:, 2] - 1))
    loss.backward()
    assert torch.isfinite(loss)


def test_bad_input(dataset, tmp_path):
    root, _, _ = dataset
    with pytest.raises(FileNotFoundError, match=r"S001R08\.edf"):
        mm.preprocess_subject(root, 1, CFG, runs=[4, 6, 8])
    with pytest.raises(ValueError, match=r"\['feet'\] do not occur in EEGMMIDB runs \[4\]"):
        mm.preprocess_subject(root, 1, {**CFG, "events": ["left_hand", "feet"]}, runs=[4])
    _write_run(tmp_path, 2, 4, ["T0", "T0"], np.random.default_rng(1))
    with pytest.raises(ValueError, match=r"S002R04\.edf: no T1/T2 annotation"):
        mm.preprocess_subject(tmp_path, 2, {**CFG, "events": ["left_hand", "right_hand"]}, runs=[4])
