"""Real recordings (MNE's public test data, tests/data/real-eeg/PROVENANCE.md) through the
project's BIDS path: written with mne-bids, read by neuroattn.data.eeg, epoched on their own
annotations (eeg.events: auto) and, where they hold enough cues of two classes, decoded."""
import shutil
from pathlib import Path

import numpy as np
import pytest

mne = pytest.importorskip("mne")
mne_bids = pytest.importorskip("mne_bids")

DATA = Path(__file__).parent / "data" / "real-eeg"


def to_bids(raw, root, subject="01", task="real", events=None, event_id=None):
    from mne_bids import BIDSPath, write_raw_bids

    bp = BIDSPath(subject=subject, task=task, datatype="eeg", root=root)
    write_raw_bids(raw, bp, events=events, event_id=event_id, overwrite=True, verbose=False)
    return bp


def settings(**kw):
    cfg = {"task": "auto", "events": "auto", "l_freq": 1.0, "h_freq": 40.0, "notch": None, "resample": None,
           "tmin": 0.0, "reject_uv": None}
    cfg.update(kw)
    return cfg


def n_annotations(raw, keep=None):
    d = [x for x in raw.annotations.description if keep is None or x in keep]
    return len(d), sorted(set(d))


def test_eeglab_set_read_epoched_and_decoded_square_vs_rt(tmp_path):
    """EEGLAB's sample recording: 80 `square` and 74 `rt` cues, 32 channels at 128 Hz."""
    from neuroattn.data.eeg import EEGData, preprocess_subject
    from neuroattn.models.eeg_evaluation import run_protocol

    raw = mne.io.read_raw_eeglab(DATA / "test_raw.set", verbose=False)
    n, types = n_annotations(raw)
    assert (n, types) == (154, ["rt", "square"])
    to_bids(raw, tmp_path)
    epochs, table = preprocess_subject(tmp_path, "01", settings(tmax=0.3))
    assert len(table) == n and len(epochs) == n and table["kept"].all()
    assert sorted(epochs.event_id) == ["rt", "square"] and len(epochs.ch_names) == 32
    assert (table["label"] == "square").sum() == 80
    y = np.array([0 if lab == "rt" else 1 for lab in epochs.metadata["label"]])
    d = EEGData(X=epochs.get_data(copy=False).astype(np.float32), y=y, classes=["rt", "square"],
                sessions=epochs.metadata["session"].astype(str).to_numpy(), runs=epochs.metadata["run"].astype(str).to_numpy(),
                ch_names=list(epochs.ch_names), sfreq=float(epochs.info["sfreq"]), subject="01")
    res, meta = run_protocol("within_session", {"01": d}, "01", ["csp_lda"], n_folds=5)
    acc = float(res[0].accuracy[0])
    print(f"EEGLAB test_raw square vs rt, within_session 5-fold CSP+LDA accuracy {acc:.3f}")
    assert res[0].y_pred.shape == (1, n)
    d.y = np.random.default_rng(0).permutation(d.y)  # the same pipeline on shuffled labels: chance
    shuffled = float(run_protocol("within_session", {"01": d}, "01", ["csp_lda"], n_folds=5)[0][0].accuracy[0])
    print(f"... shuffled labels {shuffled:.3f}")
    assert acc >= 0.7 > shuffled


def test_edf_plus_annotations_epoched(tmp_path):
    """EDF+: 138 EEG channels at 512 Hz, annotations `start` (1), `type A` (3), `type B` (1): too few to decode."""
    from neuroattn.data.eeg import preprocess_subject

    raw = mne.io.read_raw_edf(DATA / "test_reduced.edf", verbose=False)
    n, types = n_annotations(raw)
    assert (n, types) == (5, ["start", "type A", "type B"])
    to_bids(raw, tmp_path)
    epochs, table = preprocess_subject(tmp_path, "01", settings(tmax=0.1))
    assert len(epochs) == len(table) == n
    assert sorted(epochs.event_id) == types
    assert "STI 014" not in epochs.ch_names and len(epochs.ch_names) == 138


def test_bdf_status_channel_events_epoched(tmp_path):
    """BDF: events from the Status channel (codes 1 x7, 2, 4) written as events.tsv by mne-bids."""
    from neuroattn.data.eeg import preprocess_subject

    raw = mne.io.read_raw_bdf(DATA / "test_bdf_stim_channel.bdf", verbose=False)
    ev = mne.find_events(raw, verbose=False)
    keep = ev[:, 2] != 4  # the code-4 cue sits 68 samples before a code-2 one
    to_bids(raw, tmp_path, events=ev[keep], event_id={"one": 1, "two": 2})
    epochs, table = preprocess_subject(tmp_path, "01", settings(tmax=0.1, l_freq=None))
    assert len(epochs) == int(keep.sum()) == 8
    assert sorted(epochs.event_id) == ["one", "two"] and (table["label"] == "one").sum() == 7


def _brainvision_with_cues(tmp_path, onsets):
    raw = mne.io.read_raw_brainvision(DATA / "test_NO.vhdr", verbose=False)
    raw.set_annotations(mne.Annotations(onsets, [0.0] * len(onsets), ["a", "b"] * (len(onsets) // 2)))
    return to_bids(raw, tmp_path), raw


def test_brainvision_read_and_epoched(tmp_path):
    """BrainVision: 65 channels at 5 kHz, 0.45 s; cues added (the file has none)."""
    from neuroattn.data.eeg import preprocess_subject

    _brainvision_with_cues(tmp_path, [0.05, 0.12, 0.19, 0.26])
    epochs, table = preprocess_subject(tmp_path, "01", settings(tmax=0.05, l_freq=None, h_freq=None))
    assert len(epochs) == 4 and sorted(epochs.event_id) == ["a", "b"]


def test_truncated_brainvision_stops_naming_both_files(tmp_path):
    """A .eeg shorter than its cues need: the run stops, naming the events file and the recording."""
    from neuroattn.data.eeg import preprocess_subject

    bp, raw = _brainvision_with_cues(tmp_path, [0.05, 0.12, 0.19, 0.26, 0.33, 0.40])
    eeg = bp.copy().update(suffix="eeg", extension=".eeg").fpath
    size = eeg.stat().st_size
    n_ch = len(raw.ch_names)
    keep = (size // (n_ch * 2)) // 2 * n_ch * 2  # half the samples (INT16), whole samples only
    with open(eeg, "r+b") as f:
        f.truncate(keep)
    events = bp.copy().update(suffix="events", extension=".tsv").fpath
    with pytest.raises(ValueError) as err:
        preprocess_subject(tmp_path, "01", settings(tmax=0.05, l_freq=None, h_freq=None))
    msg = str(err.value)
    assert str(events) in msg and eeg.name in msg and "vhdr" in msg, msg  # the cues and the recording


def test_cue_shortfall_not_explained_by_rejection_is_refused():
    """Per file: cues of events.tsv vs the epochs made; rejections explain drops, missing data does not."""
    import pandas as pd

    from neuroattn.data.eeg import check_cue_coverage

    ev = pd.DataFrame({"onset": [1.0, 2.0, 3.0, 4.0], "trial_type": ["a", "b", "a", "rest"]})
    to_label = {"a": "a", "b": "b"}
    ok = pd.DataFrame({"kept": [True, False, True], "drop_reason": ["n/a", "C3", "n/a"]})  # amplitude rejection
    check_cue_coverage(ev, to_label, ok, "x_events.tsv", "x_eeg.vhdr")
    short = pd.DataFrame({"kept": [True, False, False], "drop_reason": ["n/a", "C3", "NO_DATA"]})
    with pytest.raises(ValueError, match=r"x_events.tsv: 3 cue\(s\).*x_eeg.vhdr gives 2 epoch.*1 cue\(s\) not covered"):
        check_cue_coverage(ev, to_label, short, "x_events.tsv", "x_eeg.vhdr")
    with pytest.raises(ValueError, match="3 cue"):
        check_cue_coverage(ev, to_label, ok.iloc[:2], "x_events.tsv", "x_eeg.vhdr")  # a cue with no row
