"""Protocol within_session: stratified k-fold CV inside each session, fitted per training fold."""
import numpy as np
import pytest

from neuroattn.data.eeg import EEGData
from neuroattn.models.eeg_estimators import ClassicEEGClassifier
from neuroattn.models.eeg_preprocess import ChannelStandardizer, alignment_matrix

CH8 = ["FC3", "FCz", "FC4", "C3", "Cz", "C4", "CP3", "CP4"]


def planted(n_per_class=20, n_chans=8, n_times=250, sfreq=125.0, seed=0, amp=2.0):
    """Class k: a 10 Hz rhythm of random phase on channel 2k + 1."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_times) / sfreq
    y = np.repeat([0, 1], n_per_class)
    X = rng.standard_normal((len(y), n_chans, n_times)).astype(np.float32)
    for i, k in enumerate(y):
        X[i, 2 * k + 1] += amp * np.sin(2 * np.pi * 10 * t + rng.uniform(0, 2 * np.pi))
    return X, y


def subject(n_per_class=20, sessions=("1", "2"), shuffle_labels=False):
    Xs, ys, ss = [], [], []
    for j, s in enumerate(sessions):
        X, y = planted(n_per_class, seed=j)
        Xs.append(X * (1 + 4 * j))  # a gain shift between sessions
        ys.append(y)
        ss += [s] * len(y)
    y = np.concatenate(ys)
    if shuffle_labels:
        y = np.random.default_rng(5).permutation(y)
    return EEGData(X=np.concatenate(Xs), y=y, classes=["a", "b"], sessions=np.asarray(ss),
                   runs=np.asarray(["1"] * len(y)), ch_names=CH8, sfreq=125.0, subject="07")


def test_folds_stratified_per_session_and_never_mix_train_and_test():
    from neuroattn.models.eeg_within_session import within_session_folds

    d = subject()
    folds = within_session_folds(d, n_folds=5, seed=0)
    assert len(folds) == 10
    tested = []
    for ses, tr, te in folds:
        assert not set(tr) & set(te)  # no trial is both
        assert set(d.sessions[tr]) == set(d.sessions[te]) == {ses}  # inside one session
        assert len(tr) == 32 and len(te) == 8 and (d.y[te] == 0).sum() == 4  # stratified
        tested += te.tolist()
    assert sorted(tested) == list(range(len(d.y)))  # every trial tested exactly once


def test_too_few_trials_of_a_class_names_session_class_and_counts():
    from neuroattn.models.eeg_within_session import within_session_folds

    d = subject()
    keep = ~((d.sessions == "2") & (d.y == 1)) | (np.arange(len(d.y)) % 20 < 3)
    small = d.subset(keep)  # session 2 keeps 3 trials of class b
    with pytest.raises(ValueError, match=r"sub-07 session 2: .*5 folds.*\['b'\] have \{'b': 3\}.*'a': 20"):
        within_session_folds(small, n_folds=5)
    assert len(within_session_folds(small, n_folds=3)) == 6


def test_alignment_and_standardiser_fitted_on_training_fold_only(monkeypatch):
    import neuroattn.models.eeg_evaluation as ev
    from neuroattn.models.eeg_within_session import run_within_session, within_session_folds

    seen = []

    class Spy(ClassicEEGClassifier):
        def fit(self, X, y):
            seen.append((np.array(X), np.array(y)))
            return super().fit(X, y)

        def predict_proba(self, X):
            seen[-1] += (np.array(X),)
            return super().predict_proba(X)

    monkeypatch.setattr(ev, "make_eeg_estimator", lambda name, **kw: Spy(kind="csp_lda"))
    d = subject()
    run_within_session(d, ["csp_lda"], n_folds=5, fold_seed=0, align=True)
    folds = within_session_folds(d, 5, 0)
    assert len(seen) == len(folds)
    for (Xtr, ytr, Xte), (_, tr, te) in zip(seen, folds):
        W = alignment_matrix(d.X[tr])
        a_tr = np.einsum("cd,ndt->nct", W, d.X[tr].astype(np.float64))
        std = ChannelStandardizer().fit(a_tr)
        np.testing.assert_allclose(Xtr, std.transform(a_tr), rtol=1e-4, atol=1e-5)
        a_te = np.einsum("cd,ndt->nct", W, d.X[te].astype(np.float64))
        np.testing.assert_allclose(Xte, std.transform(a_te), rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(ytr, d.y[tr])


def test_decodes_planted_signal_not_shuffled_labels_and_rows_say_protocol():
    from neuroattn.models.eeg_evaluation import run_protocol
    from neuroattn.stages.eeg import result_rows

    res, meta = run_protocol("within_session", {"07": subject()}, "07", ["csp_lda", "basenet"], seeds=[0, 1],
                             settings={"epochs": 2, "warmup_epochs": 1, "batch_size": 16}, importance=True)
    csp = next(r for r in res if r.name == "csp_lda")
    assert csp.accuracy.shape == (1,) and csp.accuracy[0] >= 0.9
    assert next(r for r in res if r.name == "basenet").y_pred.shape == (2, 80)
    # per-session scores averaged
    s = meta["session_accuracy"]["csp_lda"]
    assert set(s) == {"1", "2"} and np.isclose(np.mean([s["1"][0], s["2"][0]]), csp.accuracy[0])
    rows = result_rows(res, "07", "within_session")
    assert {r["target"] for r in rows} == {"within_session"} and all(r["n"] == 80 for r in rows)
    shuffled, _ = run_protocol("within_session", {"07": subject(shuffle_labels=True)}, "07", ["csp_lda"])
    assert shuffled[0].accuracy[0] < 0.75  # chance 0.5: the check can fail
