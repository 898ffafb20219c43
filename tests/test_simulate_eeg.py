"""Simulated motor-imagery EEG BIDS dataset: layout, determinism, planted class effects, validator."""
import json
import runpy
import shutil
import subprocess
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from neuroattn.data.simulate_eeg import CHANNELS, simulate_eeg_dataset

mne = pytest.importorskip("mne")
mne_bids = pytest.importorskip("mne_bids")

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(n_subjects=2, n_sessions=2, n_runs=1, trials_per_class_per_run=8, sfreq=125.0, seed=3)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return simulate_eeg_dataset(tmp_path_factory.mktemp("sim") / "eeg", **TINY)


def _read(root, sub, ses, run="01"):
    bp = mne_bids.BIDSPath(subject=sub, session=ses, task="motorimagery", run=run, datatype="eeg", root=root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mne_bids.read_raw_bids(bp, verbose=False)


def test_layout_channels_and_events(dataset):
    edfs = sorted(dataset.rglob("*_eeg.edf"))
    assert [p.name for p in edfs] == [
        f"sub-{s}_ses-{k}_task-motorimagery_run-01_eeg.edf" for s in ("01", "02") for k in ("01", "02")
    ]
    for edf in edfs:
        stem = str(edf)[: -len("_eeg.edf")]
        ch = pd.read_csv(stem + "_channels.tsv", sep="\t")
        assert ch["name"].tolist() == list(CHANNELS)
        assert set(ch["type"]) == {"EEG"}
        ev = pd.read_csv(stem + "_events.tsv", sep="\t")
        assert ev["trial_type"].value_counts().to_dict() == {c: 8 for c in ("left_hand", "right_hand", "feet", "tongue")}
        assert np.allclose(ev["duration"], 4.0)
        side = json.loads(Path(stem + "_eeg.json").read_text())
        assert side["SamplingFrequency"] == 125.0 and side["PowerLineFrequency"] == 50.0
    raw = _read(dataset, "01", "02")
    assert raw.info["sfreq"] == 125.0 and raw.ch_names == list(CHANNELS)
    # onsets in events.tsv match the truth table, and every trial ends inside the recording
    truth = pd.read_csv(dataset / "derivatives/truth/sub-01/sub-01_ses-02_task-motorimagery_run-01_trials.tsv", sep="\t")
    ev = pd.read_csv(str(edfs[1])[: -len("_eeg.edf")] + "_events.tsv", sep="\t")
    np.testing.assert_allclose(ev["onset"], truth["onset"], atol=1e-3)
    assert (ev["trial_type"] == truth["trial_type"]).all()
    assert truth["onset"].max() + 4.0 < raw.times[-1]
    # scalp amplitudes in a physiological range (volts): tens of microvolts
    rms = raw.get_data().std(axis=1)
    assert np.median(rms) > 3e-6 and np.median(rms) < 60e-6


def test_ground_truth_files(dataset):
    truth = json.loads((dataset / "derivatives/truth/truth.json").read_text())
    assert truth["classes"] == ["left_hand", "right_hand", "feet", "tongue"]
    for sub in ("01", "02"):
        disc = truth["subjects"][sub]["discriminative_channels"]
        # the forward model puts each hand area's lead field over its contralateral electrode
        assert "C4" in disc["left_hand"] and "C3" in disc["right_hand"]
        assert not {"C3", "C5", "CP3"} & set(disc["left_hand"])
        assert "Cz" in disc["feet"]
        sessions = truth["subjects"][sub]["sessions"]
        assert set(sessions) == {"01", "02"}
        # session-to-session shifts: cap displacement, channel gains, mu frequency
        assert np.abs(sessions["01"]["cap_shift_m"]).max() == 0 < np.abs(sessions["02"]["cap_shift_m"]).max()
        assert sessions["01"]["channel_gain"] != sessions["02"]["channel_gain"]
        assert sessions["01"]["mu_freq"] != sessions["02"]["mu_freq"]
    src = pd.read_csv(dataset / "derivatives/truth/sources.tsv", sep="\t", dtype={"subject": str, "session": str})
    assert len(src) == 2 * 2 * 6
    # subject-to-subject variation of source positions and rhythms
    a = src[(src.subject == "01") & (src.source == "hand_left")].iloc[0]
    b = src[(src.subject == "02") & (src.source == "hand_left")].iloc[0]
    assert np.hypot(a.x - b.x, a.y - b.y) > 1e-4 and a.mu_freq != b.mu_freq
    assert a.x < 0  # left hemisphere in MNE head coordinates (+x = right)


def test_planted_erd_over_contralateral_sensorimotor_cortex(dataset):
    """Mu/beta power at C3 drops on right-hand trials and at C4 on left-hand trials."""
    diffs = []
    for sub in ("01", "02"):
        for ses in ("01", "02"):
            raw = _read(dataset, sub, ses).load_data().filter(8.0, 30.0, verbose=False)
            ev, eid = mne.events_from_annotations(raw, verbose=False)
            ep = mne.Epochs(raw, ev, eid, 0.5, 4.0 - 1 / 125, baseline=None, preload=True, verbose=False)
            lp = np.log((ep.get_data(picks=["C3", "C4"]) ** 2).mean(-1))
            y = ep.events[:, 2]
            left, right = y == eid["left_hand"], y == eid["right_hand"]
            diffs.append([lp[right, 0].mean() - lp[left, 0].mean(), lp[left, 1].mean() - lp[right, 1].mean()])
    diffs = np.array(diffs)  # both columns: power at the contralateral channel is lower
    assert (diffs.mean(axis=0) < -0.2).all(), diffs


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    kw = dict(TINY, n_subjects=1, n_sessions=1, trials_per_class_per_run=2)
    a = simulate_eeg_dataset(tmp_path / "a", **kw)
    b = simulate_eeg_dataset(tmp_path / "b", **kw)
    c = simulate_eeg_dataset(tmp_path / "c", **dict(kw, seed=4))
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    edf = next(a.rglob("*_eeg.edf")).relative_to(a)
    assert (a / edf).read_bytes() != (c / edf).read_bytes()
    # a subject's parameters do not depend on the dataset's size
    d = simulate_eeg_dataset(tmp_path / "d", **dict(kw, n_subjects=2))
    ta = json.loads((a / "derivatives/truth/truth.json").read_text())["subjects"]["01"]
    td = json.loads((d / "derivatives/truth/truth.json").read_text())["subjects"]["01"]
    assert ta == td


def test_brainvision_and_class_subset(tmp_path):
    root = simulate_eeg_dataset(
        tmp_path / "bv", **dict(TINY, n_subjects=1, n_sessions=1, trials_per_class_per_run=3),
        format="brainvision", classes=["left_hand", "right_hand"],
    )
    assert len(list(root.rglob("*_eeg.vhdr"))) == 1 and not list(root.rglob("*.edf"))
    raw = _read(root, "01", "01")
    assert sorted(set(raw.annotations.description)) == ["left_hand", "right_hand"]
    assert len(raw.annotations) == 6


def test_config_mapping_writes_mapped_trial_types(tmp_path):
    from neuroattn.data.simulate_eeg import simulate_from_config

    sim = {"n_subjects": 1, "n_sessions": 1, "n_runs": 1, "trials_per_class_per_run": 2, "sfreq": 125.0}
    root = simulate_from_config(
        tmp_path / "m", sim, task="mi", events={"left_hand": ["769", "left"], "feet": "771"}, seed=0
    )
    ev = pd.read_csv(next(root.rglob("*_events.tsv")), sep="\t", dtype={"trial_type": str})
    assert sorted(ev["trial_type"].unique()) == ["769", "771"]
    with pytest.raises(KeyError, match="colour"):
        simulate_from_config(tmp_path / "n", {**sim, "colour": 1}, task="mi", events=["feet", "tongue"], seed=0)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="cannot simulate event types.*'jump'"):
        simulate_eeg_dataset(tmp_path / "x", classes=["left_hand", "jump"])
    with pytest.raises(ValueError, match="format"):
        simulate_eeg_dataset(tmp_path / "x", format="gdf")
    other = tmp_path / "mine"
    other.mkdir()
    (other / "precious.txt").write_text("keep")
    with pytest.raises(ValueError, match="refusing to overwrite"):
        simulate_eeg_dataset(other, n_subjects=1, n_sessions=1, n_runs=1, trials_per_class_per_run=1)
    assert (other / "precious.txt").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no temporary folders left


def test_rule_script(tmp_path):
    out = tmp_path / "simulated" / "eeg" / "dataset_description.json"
    class Named(dict):  # a stand-in for snakemake's named input/output/params/wildcards
        __getattr__ = dict.__getitem__

    smk = SimpleNamespace(
        input=Named(),
        output=Named(dataset_description=str(out)),
        wildcards=Named(),
        log=[str(tmp_path / "log.txt")],
        threads=1,
        params=Named(
            sim={"n_subjects": 1, "n_sessions": 1, "n_runs": 1, "trials_per_class_per_run": 2, "sfreq": 125.0, "format": "edf"},
            task="motorimagery",
            events=["left_hand", "right_hand", "feet", "tongue"],
            seed=0,
        ),
    )
    runpy.run_path(str(ROOT / "rules/scripts/simulate_eeg.py"), init_globals={"snakemake": smk})
    assert out.exists() and len(list(out.parent.rglob("*_eeg.edf"))) == 1
    assert "done" in (tmp_path / "log.txt").read_text()


def _validator():
    exe = ROOT / "node_modules/.bin/bids-validator"
    if not exe.exists() or shutil.which("node") is None:
        pytest.skip("bids-validator not installed (run `npm install --no-audit --no-fund` at the repository root)")
    return exe


def test_official_bids_validator_zero_errors(dataset):
    exe = _validator()
    proc = subprocess.run([str(exe), str(dataset), "--json"], capture_output=True, text=True, timeout=300)
    report = json.loads(proc.stdout)
    errors = [(e["key"], e.get("reason")) for e in report["issues"]["errors"]]
    assert errors == [], errors
    assert proc.returncode == 0


def test_simulate_from_full_config_summary(tmp_path):
    from neuroattn.data.simulate_eeg import simulate_eeg_from_config

    cfg = {
        "seed": 5,
        "simulate": {"eeg": {"n_subjects": 1, "n_sessions": 2, "n_runs": 1, "trials_per_class_per_run": 2,
                             "sfreq": 125.0, "format": "edf"}},
        "eeg": {"task": "motorimagery", "events": ["left_hand", "right_hand", "feet", "tongue"]},
    }
    summary = simulate_eeg_from_config(tmp_path / "eeg", cfg)
    assert summary["subjects"] == ["01"] and summary["n_recordings"] == 2 and summary["n_trials"] == 16
    assert (tmp_path / "eeg" / "dataset_description.json").exists()


def _cue_locked_shift(root):
    """Contralateral minus ipsilateral C3/C4 potential 0.3-1.5 s after the cue (uV), hand trials."""
    raw = _read(root, "01", "01").load_data().filter(None, 4.0, verbose=False)
    ev, eid = mne.events_from_annotations(raw, verbose=False)
    ep = mne.Epochs(raw, ev, eid, -0.5, 1.5, baseline=(-0.5, -0.3), preload=True, verbose=False)
    x = ep.get_data(picks=["C3", "C4"], tmin=0.3, tmax=1.5).mean(-1)
    y = ep.events[:, 2]
    left, right = y == eid["left_hand"], y == eid["right_hand"]
    return 1e6 * 0.5 * ((x[left, 1] - x[left, 0]).mean() + (x[right, 0] - x[right, 1]).mean())


def test_movement_related_potential_contralateral_and_only_change(tmp_path):
    """simulate.eeg.mrcp: a slow negative shift over the contralateral hand area after the cue.
    It draws no random numbers: the same seed without it differs by the potential alone, and the
    cue-locked contralateral shift is more negative with it than without."""
    kw = {**TINY, "n_subjects": 1, "n_sessions": 1}
    on = simulate_eeg_dataset(tmp_path / "on", **kw, mrcp=1.0)
    off = simulate_eeg_dataset(tmp_path / "off", **kw, mrcp=0.0)
    a, b = _read(on, "01", "01").load_data(), _read(off, "01", "01").load_data()
    diff = a.get_data() - b.get_data()
    assert np.abs(diff).max() > 1e-6  # it adds something ...
    ev = pd.read_csv(next((on / "sub-01" / "ses-01" / "eeg").glob("*_events.tsv")), sep="\t")
    t = a.times
    far = np.ones(len(t), bool)  # ... and nothing more than 3 s after every cue
    for o in ev["onset"]:
        far &= ~((t > o - 0.6) & (t < o + 2.6))
    assert np.abs(diff[:, far]).max() < 1e-7
    shift_on, shift_off = _cue_locked_shift(on), _cue_locked_shift(off)
    assert shift_on - shift_off < -2.0, (shift_on, shift_off)


def test_channel_count_and_session_shift(tmp_path):
    """simulate.eeg.n_channels picks a 10-10 cap of that size (the class electrodes kept);
    session_shift 0 leaves the sessions' channel gains alike, larger shifts them more, and the
    default (1) draws exactly what it did before the option existed."""
    from neuroattn.data.simulate_eeg_signal import _session_params, montage_channels

    assert montage_channels(22) == tuple(CHANNELS)
    for n in (5, 16, 32, 64):
        ch = montage_channels(n)
        assert len(ch) == len(set(ch)) == n and {"C3", "C4", "Cz"} <= set(ch)
    assert {"C5", "C6"} <= set(montage_channels(16))
    with pytest.raises(ValueError, match="n_channels must be 5-64"):
        montage_channels(65)
    kw = {**TINY, "n_subjects": 1, "n_runs": 1, "trials_per_class_per_run": 2, "n_channels": 32}
    root = simulate_eeg_dataset(tmp_path / "c32", **kw, format="brainvision")
    raw = _read(root, "01", "02")
    assert raw.ch_names == list(montage_channels(32))
    truth = json.loads((root / "derivatives" / "truth" / "truth.json").read_text())
    assert truth["channels"] == list(montage_channels(32))
    spread = [np.std(np.log(_session_params(3, 1, 1, CHANNELS, s)["channel_gain"])) for s in (0.0, 1.0, 4.0)]
    assert spread[0] == 0.0 and 0.02 < spread[1] < 0.1 and spread[2] == pytest.approx(4 * spread[1])
    a, b = _session_params(3, 1, 1, CHANNELS, 0.0), _session_params(3, 1, 1, CHANNELS, 1.0)
    assert np.all(a["cap_shift"] == 0) and a["mu_shift"] == 0 and a["bg_scale"] == 1.0
    old = np.random.default_rng([3, 3, 1, 1])  # the draws of the default before session_shift
    assert np.array_equal(b["cap_shift"], old.normal(0, 0.003, 3))
    assert np.array_equal(b["channel_gain"], np.exp(old.normal(0, 0.05, len(CHANNELS))))
