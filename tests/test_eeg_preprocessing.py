"""EEG preprocessing: epochs from BIDS, planted class effect, readers, standardiser, alignment, bad input."""
import logging
import runpy
import shutil
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from neuroattn.data.eeg import (
    ChannelStandardizer,
    euclidean_alignment,
    list_subjects,
    load_epochs,
    preprocess_subject,
    write_epochs,
)
from neuroattn.data.simulate_eeg import CHANNELS, simulate_eeg_dataset

mne = pytest.importorskip("mne")
mne_bids = pytest.importorskip("mne_bids")

ROOT = Path(__file__).resolve().parent.parent
CLASSES = ["left_hand", "right_hand", "feet", "tongue"]
TASK = "motorimagery"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return simulate_eeg_dataset(
        tmp_path_factory.mktemp("eegsim") / "eeg", n_subjects=2, n_sessions=2, n_runs=1,
        trials_per_class_per_run=10, sfreq=125.0, seed=0,
    )


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """One subject, one session, one short run: for bad-input copies."""
    return simulate_eeg_dataset(
        tmp_path_factory.mktemp("eegsmall") / "eeg", n_subjects=1, n_sessions=1, n_runs=1,
        trials_per_class_per_run=2, sfreq=125.0, seed=1,
    )


@pytest.fixture(scope="module")
def epochs01(dataset):
    return preprocess_subject(dataset, "01", {"events": CLASSES})


def _copy(src, tmp_path):
    dst = tmp_path / "eeg"
    shutil.copytree(src, dst)
    return dst


def _only(root, pattern):
    (path,) = sorted(Path(root).rglob(pattern))
    return path


# ------------------------------------------------------------------ outputs and values
def test_epochs_shapes_labels_sessions(dataset, epochs01):
    epochs, table = epochs01
    assert list_subjects(dataset) == ["01", "02"]
    # 4 s at 125 Hz from the cue: 500 samples, first at the cue
    assert epochs.get_data().shape[1:] == (22, 500)
    assert epochs.times[0] == 0.0 and np.isclose(epochs.times[-1], 4.0 - 1 / 125)
    assert epochs.ch_names == list(CHANNELS)
    assert epochs.event_id == {c: i + 1 for i, c in enumerate(CLASSES)}
    assert len(table) == 2 * 40 and sorted(table["session"].unique()) == ["01", "02"]
    assert (table["run"] == "01").all()
    # kept rows of the table are the epochs' metadata, in order
    kept = table[table["kept"]].reset_index(drop=True)
    assert len(kept) == len(epochs)
    assert (kept["label"].to_numpy() == epochs.metadata["label"].to_numpy()).all()
    assert (epochs.events[:, 2] == kept["label"].map(epochs.event_id).to_numpy()).all()
    # onsets match the events.tsv of the session
    ev = pd.read_csv(_only(dataset, "sub-01_ses-02_*_events.tsv"), sep="\t")
    np.testing.assert_allclose(table[table.session == "02"]["onset"], ev["onset"])
    # band-pass 0.5-40 Hz removed the 50 Hz line noise and the offset
    psd = epochs.compute_psd(fmin=1, fmax=62, verbose=False)
    p = psd.get_data().mean(axis=(0, 1))
    f = psd.freqs
    assert p[np.abs(f - 50) < 1].mean() < 1e-3 * p[(f > 8) & (f < 30)].mean()


def test_amplitude_rejection_drops_planted_artifacts(dataset, epochs01):
    """The simulator plants electrode pops (1.5 mV steps); exactly those trials exceed 800 uV."""
    _, table = epochs01
    truth = pd.concat(
        pd.read_csv(p, sep="\t") for p in sorted((dataset / "derivatives/truth/sub-01").glob("*_trials.tsv"))
    )
    assert (~table["kept"]).sum() == truth["artifact"].sum() > 0
    assert (table["kept"].to_numpy() == ~truth["artifact"].to_numpy()).all()
    assert all(r != "n/a" for r in table.loc[~table["kept"], "drop_reason"])
    # without a threshold nothing is dropped
    epochs, table = preprocess_subject(dataset, "01", {"reject_uv": None})
    assert table["kept"].all() and len(epochs) == 80


def test_class_effect_recoverable_c3_c4_band_power(dataset, epochs01):
    """Log 8-30 Hz power at C4 minus C3 separates left from right hand trials (AUC >= 0.8)."""
    aucs = []
    for sub in ("01", "02"):
        epochs = epochs01[0] if sub == "01" else preprocess_subject(dataset, sub, {})[0]
        psd = epochs.compute_psd(fmin=8.0, fmax=30.0, picks=["C3", "C4"], verbose=False).get_data()
        lp = np.log(psd.mean(axis=-1))
        lab = epochs.metadata["label"].to_numpy()
        m = np.isin(lab, ["left_hand", "right_hand"])
        # right-hand imagery desynchronises C3: C4 - C3 is larger on right-hand trials
        aucs.append(roc_auc_score(lab[m] == "right_hand", lp[m, 1] - lp[m, 0]))
    assert min(aucs) >= 0.8, aucs


def test_write_and_load_epochs_roundtrip(tmp_path, epochs01):
    epochs, table = epochs01
    epo = tmp_path / "sub-01" / "eeg" / f"sub-01_task-{TASK}_epo.fif"
    tsv = tmp_path / "sub-01" / "eeg" / f"sub-01_task-{TASK}_desc-epochs.tsv"
    write_epochs(epochs, table, epo, tsv)
    assert sorted(p.name for p in epo.parent.iterdir()) == sorted([epo.name, tsv.name])  # no temp files
    data = load_epochs(epo)
    assert data.X.dtype == np.float32 and data.X.shape == (len(epochs), 22, 500)
    np.testing.assert_allclose(data.X, epochs.get_data(), rtol=1e-5, atol=1e-12)
    assert data.classes == CLASSES and data.subject == "01" and data.sfreq == 125.0
    kept = table[table["kept"]]
    assert [data.classes[i] for i in data.y] == kept["label"].tolist()
    assert data.sessions.tolist() == kept["session"].tolist() and set(data.runs) == {"01"}
    assert data.ch_names == list(CHANNELS) and len(data) == len(epochs)
    sub = data.subset(data.sessions == "02")
    assert len(sub) == (kept["session"] == "02").sum() and set(sub.sessions) == {"02"}
    back = pd.read_csv(tsv, sep="\t", dtype={"session": str, "run": str, "subject": str})
    assert back["kept"].tolist() == table["kept"].tolist()
    with pytest.raises(FileNotFoundError, match="nothing_epo.fif"):
        load_epochs(tmp_path / "nothing_epo.fif")


def test_resample_notch_window_options(small):
    epochs, _ = preprocess_subject(
        small, "01", {"resample": 100.0, "notch": 50.0, "h_freq": 30.0, "tmin": 0.5, "tmax": 2.5}
    )
    assert epochs.info["sfreq"] == 100.0
    assert epochs.get_data().shape[-1] == 200 and np.isclose(epochs.times[0], 0.5)


def test_other_layout_and_format_bdf_without_sessions(tmp_path, small):
    """Any BIDS layout: no session entity, no run entity, BDF format."""
    raw = mne_bids.read_raw_bids(
        mne_bids.BIDSPath(subject="01", session="01", task=TASK, run="01", datatype="eeg", root=small), verbose=False
    )
    raw.load_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mne_bids.write_raw_bids(
            raw, mne_bids.BIDSPath(subject="A1", task=TASK, datatype="eeg", root=tmp_path / "bdf"),
            format="BDF", allow_preload=True, overwrite=True, verbose=False,
        )
    epochs, table = preprocess_subject(tmp_path / "bdf", "A1", {})
    assert len(table) == 8 and set(table["session"]) == {"n/a"} and set(table["run"]) == {"n/a"}
    assert epochs.get_data().shape == (table["kept"].sum(), 22, 500)
    # same epochs as from the original EDF layout (formats differ only by quantisation)
    ref, ref_table = preprocess_subject(small, "01", {})
    assert table["kept"].tolist() == ref_table["kept"].tolist()
    np.testing.assert_allclose(epochs.get_data(), ref.get_data(), atol=0.05e-6)


# ------------------------------------------------------------------ bad input
class _Named(dict):
    """A stand-in for snakemake's named input/output/params/wildcards."""

    __getattr__ = dict.__getitem__


def _rule(root, tmp_path, subject="01"):
    out = tmp_path / "out"
    smk = SimpleNamespace(  # named entries, as snakemake's Namedlist gives them
        input=_Named(),
        wildcards=_Named(subject=subject),
        params=_Named(bids_root=str(root), eeg={"task": TASK, "events": CLASSES}),
        output=_Named(
            epochs=str(out / f"sub-{subject}_task-{TASK}_epo.fif"),
            table=str(out / f"sub-{subject}_task-{TASK}_desc-epochs.tsv"),
        ),
        log=[str(tmp_path / "log" / "eeg.log")],
        threads=1,
    )
    runpy.run_path(str(ROOT / "rules/scripts/eeg_epochs.py"), init_globals={"snakemake": smk})
    return out


def test_rule_script_writes_both_outputs(small, tmp_path):
    out = _rule(small, tmp_path)
    assert sorted(p.name for p in out.iterdir()) == [f"sub-01_task-{TASK}_desc-epochs.tsv", f"sub-01_task-{TASK}_epo.fif"]
    assert "dropped" in (tmp_path / "log" / "eeg.log").read_text()


def _truncate(root):
    edf = _only(root, "*_eeg.edf")
    edf.write_bytes(edf.read_bytes()[: edf.stat().st_size // 2])
    return edf.name, "truncated"


def _corrupt(root):
    edf = _only(root, "*_eeg.edf")
    edf.write_bytes(b"\x00garbage" * 300)
    return edf.name, "cannot read EEG recording"


def _event_past_end(root):
    ev = _only(root, "*_events.tsv")
    df = pd.read_csv(ev, sep="\t")
    row = df.iloc[[0]].assign(onset=5000.0, sample=5000 * 125)
    pd.concat([df, row]).to_csv(ev, sep="\t", index=False)
    return ev.name, "past the end"


def _epoch_past_end(root):
    """Onset inside the recording, but its 4-s window runs past the end."""
    ev = _only(root, "*_events.tsv")
    df = pd.read_csv(ev, sep="\t")
    dur = mne_bids.read_raw_bids(
        mne_bids.BIDSPath(subject="01", session="01", task=TASK, run="01", datatype="eeg", root=root), verbose=False
    ).times[-1]
    df.loc[df.index[-1], ["onset", "sample"]] = [round(dur - 1.0, 3), int(round((dur - 1.0) * 125))]
    df.to_csv(ev, sep="\t", index=False)
    return ev.name, "past the end"


def _missing_class(root):
    ev = _only(root, "*_events.tsv")
    df = pd.read_csv(ev, sep="\t")
    df[df.trial_type != "tongue"].to_csv(ev, sep="\t", index=False)
    return ev.name, r"\['tongue'\].*absent"


def _nan_samples(root):
    """A BrainVision (float32) recording with NaN samples."""
    shutil.rmtree(root)
    simulate_eeg_dataset(root, n_subjects=1, n_sessions=1, n_runs=1, trials_per_class_per_run=2, sfreq=125.0,
                         seed=1, format="brainvision")
    eeg = _only(root, "*_eeg.eeg")
    b = bytearray(eeg.read_bytes())
    b[4 * 22 * 100 : 4 * 22 * 110] = np.full(22 * 10, np.nan, "<f4").tobytes()
    eeg.write_bytes(bytes(b))
    return "_eeg.vhdr", "NaN"


@pytest.mark.parametrize(
    "damage", [_truncate, _corrupt, _event_past_end, _epoch_past_end, _missing_class, _nan_samples],
    ids=["truncated", "corrupt", "event_past_end", "epoch_past_end", "missing_class", "nan"],
)
def test_bad_input_names_file_and_leaves_no_output(small, tmp_path, damage):
    root = _copy(small, tmp_path)
    fname, problem = damage(root)
    with pytest.raises(ValueError, match=problem) as err:
        _rule(root, tmp_path)
    assert fname in str(err.value)
    out = tmp_path / "out"
    assert not out.exists() or not any(out.iterdir())


def test_unknown_trial_types_are_ignored_with_a_log_line(small, tmp_path, caplog):
    root = _copy(small, tmp_path)
    ev = _only(root, "*_events.tsv")
    df = pd.read_csv(ev, sep="\t")
    extra = df.iloc[:2].assign(onset=[1.0, 2.0], duration=0.5, trial_type="rest", sample=[125, 250])
    pd.concat([extra, df]).to_csv(ev, sep="\t", index=False)
    with caplog.at_level(logging.INFO, logger="neuroattn"):
        epochs, table = preprocess_subject(root, "01", {"events": CLASSES})
    assert len(table) == 8 and "rest" not in set(table["label"])
    assert any("ignoring event type" in r.getMessage() and "rest" in r.getMessage() for r in caplog.records)
    # and a config class never seen in the data is an error naming the events file
    with pytest.raises(ValueError, match=r"'jump'.*_events.tsv"):
        preprocess_subject(root, "01", {"events": CLASSES + ["jump"]})


def test_config_mapping_from_trial_type_to_label(small, tmp_path):
    """eeg.events as label -> trial_type value(s), e.g. BCI IV 2a's numeric codes."""
    root = _copy(small, tmp_path)
    ev = _only(root, "*_events.tsv")
    df = pd.read_csv(ev, sep="\t")
    codes = {"left_hand": "769", "right_hand": "770", "feet": "771", "tongue": "772"}
    df.assign(trial_type=df["trial_type"].map(codes)).to_csv(ev, sep="\t", index=False)
    mapping = {"tongue": ["772"], "feet": "771", "left_hand": ["769", "left"], "right_hand": 770}
    epochs, table = preprocess_subject(root, "01", {"events": mapping})
    assert epochs.event_id == {"tongue": 1, "feet": 2, "left_hand": 3, "right_hand": 4}
    assert table["label"].tolist() == df["trial_type"].tolist()
    with pytest.raises(ValueError, match="'771'.*both"):
        preprocess_subject(root, "01", {"events": {"feet": "771", "tongue": ["772", "771"]}})


def test_no_recordings_for_subject_or_task(small):
    with pytest.raises(FileNotFoundError, match="sub-07"):
        preprocess_subject(small, "07", {})
    with pytest.raises(FileNotFoundError, match="'rest'"):
        preprocess_subject(small, "01", {"task": "rest"})


# ------------------------------------------------------------------ standardiser and alignment
def test_channel_standardizer_uses_training_statistics_only(rng):
    X_train = rng.normal(3.0, 2.0, (20, 4, 50)) * np.array([1, 2, 3, 4])[None, :, None]
    X_test = rng.normal(-5.0, 9.0, (10, 4, 50))
    st = ChannelStandardizer().fit(X_train)
    mean = X_train.transpose(1, 0, 2).reshape(4, -1).mean(axis=1)
    sd = X_train.transpose(1, 0, 2).reshape(4, -1).std(axis=1)
    np.testing.assert_allclose(st.mean_, mean)
    np.testing.assert_allclose(st.scale_, sd)
    Z = st.transform(X_test)
    np.testing.assert_allclose(Z, (X_test - mean[None, :, None]) / sd[None, :, None])
    np.testing.assert_allclose(st.inverse_transform(Z), X_test)
    Zt = st.transform(X_train)
    np.testing.assert_allclose(Zt.mean(axis=(0, 2)), 0, atol=1e-12)
    np.testing.assert_allclose(Zt.std(axis=(0, 2)), 1)
    assert st.transform(X_test.astype(np.float32)).dtype == np.float32
    c = clone(st)
    assert not hasattr(c, "mean_") and c.get_params() == {"eps": 1e-20}
    with pytest.raises(ValueError, match="channels"):
        st.transform(X_test[:, :3])
    with pytest.raises(ValueError, match="n_epochs, n_channels, n_times"):
        ChannelStandardizer().fit(X_train[0])


def test_euclidean_alignment_whitens_each_subject(rng):
    C, T = 5, 200
    A = rng.normal(size=(C, C))
    B = rng.normal(size=(C, C)) * 10
    X = np.concatenate([np.einsum("cd,ndt->nct", A, rng.normal(size=(30, C, T))),
                        np.einsum("cd,ndt->nct", B, rng.normal(size=(20, C, T)))]).astype(np.float32)
    groups = np.array(["s1"] * 30 + ["s2"] * 20)
    Xa = euclidean_alignment(X, groups)
    assert Xa.shape == X.shape and Xa.dtype == np.float32
    for g in ("s1", "s2"):
        m = groups == g
        R = np.einsum("nct,ndt->cd", Xa[m].astype(float), Xa[m].astype(float)) / (m.sum() * T)
        np.testing.assert_allclose(R, np.eye(C), atol=1e-3)
    # each subject's alignment depends on its own trials only
    np.testing.assert_allclose(euclidean_alignment(X[groups == "s2"]), Xa[groups == "s2"], rtol=1e-4, atol=1e-5)
    # the reference is the inverse square root: R^-1/2 applied to one trial, by hand
    R = np.einsum("nct,ndt->cd", X[:30].astype(float), X[:30].astype(float)) / (30 * T)
    w, V = np.linalg.eigh(R)
    np.testing.assert_allclose(Xa[0], (V @ np.diag(w ** -0.5) @ V.T) @ X[0], rtol=1e-3, atol=1e-4)
    with pytest.raises(ValueError, match="groups"):
        euclidean_alignment(X, groups[:3])


def test_preprocess_settings_from_config_yaml_and_unknown_keys_refused():
    from neuroattn.config import section_defaults
    from neuroattn.data.eeg import preprocess_settings

    assert preprocess_settings({}) == section_defaults("eeg")   # config.yaml is the one source
    assert preprocess_settings({"resample": None})["resample"] is None
    with pytest.raises(KeyError, match="unknown key"):
        preprocess_settings({"resampel": 100.0})
