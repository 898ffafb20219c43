"""Activation patterns in band power (power_pattern / erd_map) and the check against simulated truth."""
import json

import h5py
import numpy as np
import pandas as pd
import pytest

from neuroattn.metrics.eeg_truth import importance_truth_agreement, summarise_truth_check
from neuroattn.models.eeg_interpret import band_log_power, erd_map, power_pattern
from neuroattn.stages.eeg import read_truth_channels, truth_check

CH = ["Fz", "C3", "Cz", "C4", "Pz", "POz"]
SFREQ = 100.0
PLANTED = [3, 1, 2]  # class k desynchronises on channel PLANTED[k]


def planted_erd(n_per_class=20, n_times=300, depth=0.7, sign=-1, seed=0):
    """Every channel carries a 12 Hz rhythm; class k's rhythm on PLANTED[k] drops by ``depth``
    (sign=-1, ERD) or grows by it (sign=+1, ERS) from 0.5 s after the cue; trial-to-trial
    depth varies. Returns X, y and a fake proba that follows the planted channels' power."""
    rng = np.random.default_rng(seed)
    k = len(PLANTED)
    y = np.repeat(np.arange(k), n_per_class)
    t = np.arange(n_times) / SFREQ
    X = 0.3 * rng.standard_normal((len(y), len(CH), n_times))
    for i, cls in enumerate(y):
        for c in range(len(CH)):
            amp = np.exp(0.2 * rng.standard_normal())
            if c == PLANTED[cls]:
                amp = amp * np.where(t >= 0.5, 1 + sign * depth * rng.uniform(0.5, 1.0), 1.0)
            X[i, c] += amp * np.sin(2 * np.pi * 12 * t + rng.uniform(0, 2 * np.pi))
    lp = np.log(np.var(X[:, PLANTED, 50:], axis=-1))  # independent of band_log_power
    logits = 3.0 * sign * (lp - lp.mean(0))
    proba = np.exp(logits - logits.max(1, keepdims=True))
    return X, y, proba / proba.sum(1, keepdims=True)


def test_power_pattern_recovers_planted_erd_channels():
    X, y, proba = planted_erd()
    pat = power_pattern(proba, X, SFREQ, band=(8, 30), tmin=0.5)
    assert pat.shape == (3, len(CH)) and np.all(np.abs(pat) <= 1)
    for k, c in enumerate(PLANTED):
        assert np.argmin(pat[k]) == c and pat[k, c] < -0.5   # ERD: negative correlation
    m = erd_map(pat)
    np.testing.assert_allclose(m.sum(1), 1.0)
    assert (m >= 0).all() and list(m.argmax(1)) == PLANTED
    a = importance_truth_agreement(m, CH, ["a", "b", "c"], {cls: [CH[c]] for cls, c in zip("abc", PLANTED)})
    assert a["top_in_truth"].all() and (a["truth_mass_ratio"] > 2).all()


def test_power_pattern_sign_convention_ers_is_positive():
    X, y, proba = planted_erd(sign=+1)
    pat = power_pattern(proba, X, SFREQ)
    for k, c in enumerate(PLANTED):
        assert np.argmax(pat[k]) == c and pat[k, c] > 0.5
    # evidence independent of power (a constant model) gives a zero pattern, not NaN
    flat = power_pattern(np.full_like(proba, 1 / 3), X, SFREQ)
    np.testing.assert_array_equal(flat, 0.0)
    assert (erd_map(flat) == 0).all()


def test_power_window_respects_epoch_start():
    X, _, _ = planted_erd(n_per_class=2)
    # epochs starting 0.5 s before the cue: the window starts 100 samples in, not 50
    a = band_log_power(X, SFREQ, tmin=0.5, epoch_tmin=-0.5)
    b = band_log_power(X, SFREQ, tmin=1.0, epoch_tmin=0.0)
    np.testing.assert_allclose(a, b)
    # epochs starting after tmin: the whole epoch is the window
    np.testing.assert_allclose(band_log_power(X, SFREQ, tmin=0.5, epoch_tmin=1.0),
                               band_log_power(X, SFREQ, tmin=0.0, epoch_tmin=0.0))


@pytest.mark.parametrize("kwargs, match", [
    ({"proba": np.ones(6) / 3}, r"proba must have shape \(n_trials, n_classes >= 2\)"),
    ({"proba": -np.ones((6, 3))}, "finite, non-negative"),
    ({"proba": np.ones((5, 3)) / 3}, "proba has 5 trials but X_raw has shape"),
    ({"proba": np.ones((2, 3)) / 3, "X_raw": np.zeros((2, 6, 300))}, "at least 3 trials"),
    ({"X_raw": np.zeros((6, 300))}, "proba has 6 trials but X_raw has shape"),
    ({"band": (8, 60)}, r"0 < low < high < sfreq/2 = 50 Hz"),
    ({"tmin": 3.5}, "outside the epoch"),
    ({"sfreq": 0.0}, "sfreq must be a positive"),
])
def test_power_pattern_input_errors(kwargs, match):
    X, _, proba = planted_erd(n_per_class=2)
    args = {"proba": proba, "X_raw": X, "sfreq": SFREQ, **kwargs}
    with pytest.raises(ValueError, match=match):
        power_pattern(**args)


def test_agreement_on_hand_made_maps():
    ch = ["Fz", "C3", "Cz", "C4", "Pz"]
    maps = np.array([[0.1, 0.5, 0.1, 0.3, 0.0],
                     [0.4, 0.1, 0.2, 0.1, 0.2],
                     [np.nan] * 5])
    truth = {"a": ["C3", "C4"], "b": ["Cz"], "c": ["Pz"]}
    a = importance_truth_agreement(maps, ch, ["a", "b", "c"], truth)
    assert list(a["top_channel"][:2]) == ["C3", "Fz"] and list(a["top_in_truth"]) == [True, False, False]
    np.testing.assert_allclose(a["truth_mass_ratio"][:2], [0.8 / 0.4, 0.2 / 0.2])
    assert list(a["best_truth_rank"][:2]) == [1, 2] and np.isnan(a["truth_mass_ratio"][2])
    assert a["best_truth_rank"].isna()[2]
    # the ratio does not depend on the map's scale
    b = importance_truth_agreement(maps[:2] * 7, ch, ["a", "b"], truth)
    np.testing.assert_allclose(b["truth_mass_ratio"], a["truth_mass_ratio"][:2])
    with pytest.raises(KeyError, match="class 'd' has no entry"):
        importance_truth_agreement(maps[:1], ch, ["d"], truth)
    with pytest.raises(KeyError, match=r"truth channel\(s\) \['Oz'\] not among"):
        importance_truth_agreement(maps[:1], ch, ["a"], {"a": ["C3", "Oz"]})
    with pytest.raises(ValueError, match="non-negative"):
        importance_truth_agreement(-maps[:1], ch, ["a"], truth)
    with pytest.raises(ValueError, match=r"expected \(n_classes=2, n_chans=5\)"):
        importance_truth_agreement(maps[:1], ch, ["a", "b"], truth)


def _pred_h5(path, protocol, pattern=True):
    classes, k = ["a", "b", "c"], len(PLANTED)
    with h5py.File(path, "w") as f:
        f.attrs.update(subject="01", protocol=protocol)
        f.create_dataset("classes", data=np.array(classes, dtype=object), dtype=h5py.string_dtype())
        f.create_dataset("ch_names", data=np.array(CH, dtype=object), dtype=h5py.string_dtype())
        g = f.create_group("csp_lda")
        g.create_dataset("confusion", data=np.eye(k))
        d = g.create_dataset("importance", data=np.full((k, len(CH)), 1 / len(CH)))
        d.attrs["method"] = "occlusion"
        if pattern:
            pat = np.zeros((k, len(CH)))
            pat[np.arange(k), PLANTED] = -0.6
            pat[0, 0] = 0.9  # a positive (ERS) value never counts in the ERD map
            g.create_dataset("pattern", data=pat)


def test_truth_check_table_and_summary(tmp_path):
    truth = {"subjects": {"01": {"discriminative_channels": {"a": ["C4", "Cz"], "b": ["C3"], "c": ["Fz"]}}}}
    (tmp_path / "truth.json").write_text(json.dumps(truth))
    tc = read_truth_channels(tmp_path / "truth.json", "01")
    _pred_h5(tmp_path / "within.h5", "within")
    _pred_h5(tmp_path / "loso.h5", "loso", pattern=False)  # a file written before patterns existed
    df = truth_check([tmp_path / "within.h5", tmp_path / "loso.h5"], tc)
    assert len(df) == 3 * 3  # within: pattern + importance; loso: importance only
    pat = df[df["map"] == "pattern"].set_index("class")
    assert list(pat["top_channel"]) == ["C4", "C3", "Cz"] and list(pat["top_in_truth"]) == [True, True, False]
    np.testing.assert_allclose(pat["truth_mass_ratio"], [3.0, 6.0, 0.0])
    s = summarise_truth_check(df).set_index(["protocol", "map"])
    assert s.loc[("within", "pattern"), "peak on truth"] == 0.67
    assert s.loc[("within", "pattern"), "mass ratio"] == 3.0
    np.testing.assert_allclose(s.loc[("loso", "importance"), "mass ratio"], 1.0)   # uniform map: chance
    # the table survives a TSV round trip (what the report reads back)
    df.to_csv(tmp_path / "t.tsv", sep="\t", index=False)
    back = summarise_truth_check(pd.read_csv(tmp_path / "t.tsv", sep="\t"))
    pd.testing.assert_frame_equal(back, summarise_truth_check(df))


def test_read_truth_channels_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="truth file not found"):
        read_truth_channels(tmp_path / "none.json", "01")
    (tmp_path / "t.json").write_text(json.dumps({"subjects": {"01": {}}}))
    with pytest.raises(KeyError, match="no subject '02'"):
        read_truth_channels(tmp_path / "t.json", "02")
    with pytest.raises(KeyError, match="subjects.01 has no 'discriminative_channels'"):
        read_truth_channels(tmp_path / "t.json", "01")


def test_reports_show_patterns_and_truth_check(tmp_path):
    import mne

    from neuroattn.leaderboard import score_row, write_scores
    from neuroattn.report.eeg_maps import pattern_grid, truth_section
    from neuroattn.report.group import build_group_report

    truth = {"subjects": {"01": {"discriminative_channels": {"a": ["C4", "Cz"], "b": ["C3"], "c": ["Fz"]}}}}
    (tmp_path / "truth.json").write_text(json.dumps(truth))
    _pred_h5(tmp_path / "within.h5", "within")
    tsv = tmp_path / "sub-01_desc-truthcheck.tsv"
    truth_check([tmp_path / "within.h5"], read_truth_channels(tmp_path / "truth.json", "01")).to_csv(tsv, sep="\t", index=False)
    sec = truth_section(tsv)
    cols = sec["table"]["columns"]
    row = dict(zip(cols, sec["table"]["rows"][0]))
    assert row["model"] == "csp_lda" and float(row["pattern: peak on truth"]) == pytest.approx(0.67)
    assert float(row["importance: mass ratio"]) == pytest.approx(1.0)
    info = mne.create_info(CH, SFREQ, "eeg")
    info.set_montage("colin27_1020" if "colin27_1020" in mne.channels.get_builtin_montages() else "standard_1020")
    with h5py.File(tmp_path / "within.h5") as f:
        fig = pattern_grid({"csp_lda": f["csp_lda/pattern"][()]}, CH, ["a", "b", "c"], info, "x")
    assert len([ax for ax in fig.axes if ax.get_title()]) == 3
    lb = tmp_path / "leaderboard.tsv"
    write_scores(lb, [score_row("01", "eeg", "csp_lda", "within", "accuracy", 0.8, n=60)])
    out = tmp_path / "report.html"
    build_group_report(out, lb, {"seed": 0}, eeg_truth_tables=[tsv])
    html = out.read_text()
    assert "EEG maps vs simulated truth" in html and "pattern: 67% of classes peak on a truth channel" in html
    build_group_report(out, lb, {"seed": 0})   # real data: no truth tables, no section
    assert "EEG maps vs simulated truth" not in out.read_text()
