"""MOABB adapter: lazy import error, evaluation-name mapping, and the pipeline on a stand-in dataset."""
import sys
import types

import mne
import numpy as np
import pytest

from neuroattn.data.formats import moabb as mo


def test_lazy_import_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "moabb", None)  # import moabb -> ImportError
    with pytest.raises(ImportError, match=r"optional package moabb: pip install 'neuroattn\[moabb\]'"):
        mo.preprocess_subject("BNCI2014_001", 1)


@pytest.mark.parametrize("name, proto", [
    ("CrossSessionEvaluation", "within"), ("cross-session", "within"), ("Cross_Session", "within"),
    ("CrossSubjectEvaluation", "loso"), ("cross-subject", "loso"),
    ("WithinSessionEvaluation", "within_session"), ("within-session", "within_session"),
])
def test_evaluation_names(name, proto):
    assert mo.protocol_from_moabb(name) == proto


def test_unknown_refused():
    with pytest.raises(ValueError, match="unknown MOABB evaluation 'leave-one-run-out'"):
        mo.protocol_from_moabb("leave-one-run-out")


class _FakeBNCI:
    """Stand-in with MOABB's dataset interface: event_id, code, get_data -> {subj: {session: {run: Raw}}}."""

    code = "FakeBNCI"
    event_id = {"left_hand": 1, "right_hand": 2, "feet": 3, "tongue": 4}
    subject_list = [1]

    def __init__(self):
        self.cues = {}

    def get_data(self, subjects):
        rng = np.random.default_rng(0)
        sf, out = 250.0, {}
        for s in subjects:
            out[s] = {}
            for ses in ("0train", "1test"):
                out[s][ses] = {}
                for run in ("0", "1"):
                    codes = rng.permutation([1, 2, 3, 4])
                    n = int(22 * sf)
                    data = rng.normal(0, 1e-5, (4, n))
                    stim = np.zeros((1, n))
                    samples = (np.arange(4) * 5 + 1) * int(sf)
                    stim[0, samples] = codes
                    info = mne.create_info(["C3", "Cz", "C4", "Pz", "STI"], sf, ["eeg"] * 4 + ["stim"])
                    out[s][ses][run] = mne.io.RawArray(np.vstack([data, stim]), info, verbose=False)
                    self.cues[(ses, run)] = codes
        return out


def test_pipeline_on_moabb_style_dataset(monkeypatch, tmp_path):
    import torch

    from neuroattn.data.eeg import load_epochs, write_epochs
    from neuroattn.models import BaseNet

    fake = types.ModuleType("moabb")
    fake.datasets = types.ModuleType("moabb.datasets")
    fake.datasets.FakeBNCI = _FakeBNCI
    monkeypatch.setitem(sys.modules, "moabb", fake)
    monkeypatch.setitem(sys.modules, "moabb.datasets", fake.datasets)
    cfg = {"events": ["left_hand", "right_hand", "feet", "tongue"], "l_freq": None, "h_freq": None, "resample": None,
           "tmin": 0.0, "tmax": 4.0, "reject_uv": None}
    ds = mo.get_dataset("FakeBNCI")
    epochs, table = mo.preprocess_subject(ds, "01", cfg)
    names = list(_FakeBNCI.event_id)
    want = [names[c - 1] for key in sorted(ds.cues) for c in ds.cues[key]]
    assert list(table.label) == want
    assert list(table.session) == ["0train"] * 8 + ["1test"] * 8
    write_epochs(epochs, table, tmp_path / "sub-01_epo.fif", tmp_path / "t.tsv")
    data = load_epochs(tmp_path / "sub-01_epo.fif")
    assert data.X.shape == (16, 4, 1000) and data.ch_names == ["C3", "Cz", "C4", "Pz"]
    net = BaseNet(n_chans=4, n_outputs=4, n_times=1000, sfreq=250.0)
    loss = torch.nn.functional.cross_entropy(net(torch.tensor(data.X * 1e5)), torch.tensor(data.y))
    loss.backward()
    assert torch.isfinite(loss)
    with pytest.raises(ValueError, match=r"\['rest'\] are not events of MOABB FakeBNCI"):
        mo.preprocess_subject(ds, 1, {**cfg, "events": ["rest", "feet"]})
    with pytest.raises(ValueError, match="no dataset 'Nope'"):
        mo.get_dataset("Nope")
