"""BCI IV 2a adapter on miniature GDF 2.x files written by a minimal writer (MNE cannot write GDF)."""
import struct

import numpy as np
import pytest
from scipy.io import savemat

from neuroattn.data.formats import bnci2a

SFREQ = 250
CH = bnci2a.GDF_EEG_CHANNELS + bnci2a.EOG_CHANNELS


def write_gdf(path, data_uv, ch_names, sfreq, events, version=b"GDF 2.10"):
    """Minimal GDF 2.x writer: int16 samples, 1-s records, event table mode 3.

    ``data_uv`` (n_channels, n_samples) in microvolts (unit code 4275); ``events`` a list of
    ``(sample (0-based), code, duration_samples)``. Byte layout as read by MNE's
    ``_read_gdf_header`` (fixed header 256 bytes, 256 bytes per channel, data, event table).
    """
    ns, n = data_uv.shape
    spr = int(sfreq)
    n_rec = -(-n // spr)
    data = np.zeros((ns, n_rec * spr))
    data[:, :n] = data_uv
    phys = float(np.abs(data).max() * 1.01 + 1e-3)
    dig = 32767.0
    fixed = bytearray(256)
    fixed[0:8] = version
    fixed[8:74] = b"X X".ljust(66)
    fixed[88:152] = b"tiny".ljust(64)
    fixed[184:186] = struct.pack("<H", 1 + ns)
    fixed[236:244] = struct.pack("<q", n_rec)
    fixed[244:252] = struct.pack("<II", 1, 1)
    fixed[252:254] = struct.pack("<H", ns)
    var = b"".join(c.encode().ljust(16) for c in ch_names)
    var += b" " * 80 * ns + b" " * 6 * ns
    var += struct.pack(f"<{ns}H", *[4275] * ns)
    var += struct.pack(f"<{ns}d", *[-phys] * ns) + struct.pack(f"<{ns}d", *[phys] * ns)
    var += struct.pack(f"<{ns}d", *[-dig] * ns) + struct.pack(f"<{ns}d", *[dig] * ns)
    var += b" " * 68 * ns
    var += struct.pack(f"<{3 * ns}f", *[0.0] * 3 * ns)  # lowpass, highpass, notch
    var += struct.pack(f"<{ns}i", *[spr] * ns) + struct.pack(f"<{ns}i", *[3] * ns)  # samples/record, int16
    var += b"\0" * 12 * ns + b"\xff" * ns + b"\0" * 19 * ns
    assert len(var) == 256 * ns
    digital = np.round(data / phys * dig).astype("<i2")
    body = digital.reshape(ns, n_rec, spr).transpose(1, 0, 2).tobytes()  # record by record, channel by channel
    pos, typ, dur = (np.array([e[i] for e in events]) for i in range(3))
    ev = bytes([3]) + struct.pack("<I", len(events))[:3] + struct.pack("<f", float(sfreq))
    ev += (pos + 1).astype("<u4").tobytes() + typ.astype("<u2").tobytes()
    ev += np.zeros(len(events), "<u2").tobytes() + dur.astype("<u4").tobytes()
    path.write_bytes(bytes(fixed) + var + body + ev)
    return digital[:, :n] / dig * phys


def _session(rng, codes, rejected=(), n_runs=2):
    """A session: trials every 8 s (768 at t, cue at t+2 s), C3/C4 10-Hz power drop for the cue's hand."""
    per_run = len(codes) // n_runs
    n = int((len(codes) * 8 + 2 * n_runs + 4) * SFREQ)
    data = rng.normal(0, 5, (len(CH), n))
    events, t = [], 1.0
    cue_samples = []
    for i, c in enumerate(codes):
        if i % per_run == 0:
            events.append((int(t * SFREQ), bnci2a.NEW_RUN, 0))
            t += 2.0
        s = int(t * SFREQ)
        events.append((s, 768, 0))
        if i in rejected:
            events.append((s, bnci2a.REJECTED, 8 * SFREQ))
        events.append((s + 2 * SFREQ, c, int(1.25 * SFREQ)))
        cue_samples.append(s + 2 * SFREQ)
        t += 8.0
    return data, sorted(events), cue_samples


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("bci2a")
    rng = np.random.default_rng(0)
    classes = [769, 770, 771, 772]
    t_codes = classes * 3                      # 12 training trials, 3 per class
    e_labels = rng.permutation(np.repeat([1, 2, 3, 4], 2))  # 8 evaluation trials
    dT, evT, cuesT = _session(rng, t_codes, rejected=(5,))
    written = write_gdf(root / "A01T.gdf", dT, CH, SFREQ, evT)
    dE, evE, _ = _session(rng, [bnci2a.UNKNOWN_CUE] * len(e_labels))
    write_gdf(root / "A01E.gdf", dE, CH, SFREQ, evE)
    (root / "true_labels").mkdir()
    savemat(root / "true_labels" / "A01E.mat", {"classlabel": e_labels[:, None].astype(np.uint8)})
    return root, dict(t_codes=t_codes, e_labels=e_labels, written=written, cuesT=cuesT)


CFG = {"events": ["left_hand", "right_hand", "feet", "tongue"], "l_freq": None, "h_freq": None, "resample": None,
       "tmin": 0.0, "tmax": 2.0, "reject_uv": None}


def test_gdf_roundtrip_channels_and_values(dataset):
    root, planted = dataset
    raw = bnci2a.read_gdf(root / "A01T.gdf")
    assert raw.ch_names[:22] == bnci2a.CHANNELS_1020 and raw.info["sfreq"] == SFREQ
    assert raw.get_channel_types()[22:] == ["eog"] * 3
    got = raw.get_data(picks=["C3"])[0] * 1e6
    assert np.allclose(got, planted["written"][7], atol=1e-3)


def test_epochs_labels_sessions_and_rejection(dataset, tmp_path):
    from neuroattn.data.eeg import load_epochs, write_epochs

    root, planted = dataset
    epochs, table = bnci2a.preprocess_subject(root, "A01", CFG)
    names = {c: n for c, n in bnci2a.CUE_CODES.items()}
    tr = table[table.session == "0train"]
    assert list(tr.label) == [names[c] for c in planted["t_codes"]]
    assert list(tr.run) == ["0"] * 6 + ["1"] * 6
    assert list(tr.kept) == [i != 5 for i in range(12)]
    assert tr.drop_reason.iloc[5] == "BAD_rejected"
    ev = table[table.session == "1test"]
    assert list(ev.label) == [list(names.values())[k - 1] for k in planted["e_labels"]]
    write_epochs(epochs, table, tmp_path / "sub-01_epo.fif", tmp_path / "sub-01.tsv")
    data = load_epochs(tmp_path / "sub-01_epo.fif")
    assert data.X.shape == (11 + 8, 22, 2 * SFREQ)
    assert data.classes == CFG["events"] and data.ch_names == bnci2a.CHANNELS_1020
    assert sorted(set(data.sessions)) == ["0train", "1test"]
    # first training epoch starts at its cue: samples equal what was written (volts)
    c3 = data.ch_names.index("C3")
    s0 = planted["cuesT"][0]
    assert np.allclose(data.X[0, c3] * 1e6, planted["written"][7, s0:s0 + 2 * SFREQ], atol=1e-2)
    assert list(data.y[:4]) == [0, 1, 2, 3]


def test_basenet_one_step(dataset):
    import torch

    from neuroattn.models import BaseNet

    root, _ = dataset
    epochs, _ = bnci2a.preprocess_subject(root, 1, {**CFG, "tmax": 4.0})
    X = torch.tensor(epochs.get_data(copy=False) * 1e5, dtype=torch.float32)
    y = torch.tensor(epochs.events[:, 2] - 1)
    net = BaseNet(n_chans=22, n_outputs=4, n_times=X.shape[2], sfreq=SFREQ)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss = torch.nn.functional.cross_entropy(net(X), y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss) and net(X).shape == (len(X), 4)


def test_gdf_without_cue_events(tmp_path):
    rng = np.random.default_rng(1)
    write_gdf(tmp_path / "A02T.gdf", rng.normal(size=(len(CH), 20 * SFREQ)), CH, SFREQ,
              [(SFREQ, 768, 0), (5 * SFREQ, 768, 0)])
    with pytest.raises(ValueError, match=r"A02T\.gdf: no cue event \(expected codes \[769, 770, 771, 772\].*present: \[768\]"):
        bnci2a.preprocess_subject(tmp_path, 2, CFG)


def test_evaluation_labels_missing_or_wrong_count(dataset, tmp_path):
    root, _ = dataset
    (tmp_path / "A01E.gdf").write_bytes((root / "A01E.gdf").read_bytes())
    with pytest.raises(ValueError, match="unknown class.*no true-label file"):
        bnci2a.preprocess_subject(tmp_path, 1, CFG)
    savemat(tmp_path / "A01E.mat", {"classlabel": np.ones((3, 1), np.uint8)})
    with pytest.raises(ValueError, match=r"A01E\.mat: 3 class labels for 8 cues"):
        bnci2a.preprocess_subject(tmp_path, 1, CFG)


def test_missing_files_and_wrong_channels(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"A03T\.gdf"):
        bnci2a.preprocess_subject(tmp_path, 3, CFG)
    write_gdf(tmp_path / "A04T.gdf", np.zeros((3, 2 * SFREQ)), ["a", "b", "c"], SFREQ, [(10, 769, 1)])
    with pytest.raises(ValueError, match=r"A04T\.gdf: EEG channel\(s\).*missing"):
        bnci2a.preprocess_subject(tmp_path, 4, CFG)
