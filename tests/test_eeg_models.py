"""EEG decoders: BaseNet + attention modules, EEGNet, ShallowConvNet, classic pipelines, protocols."""
import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.base import clone

from neuroattn.data.eeg import EEGData
from neuroattn.models.eeg_preprocess import ChannelStandardizer, euclidean_alignment
from neuroattn.models.eeg_attention import (
    ATTENTION_MODULES, BaseNet, TemporalSpatialBlock, make_attention, min_n_times,
)
from neuroattn.models.eeg_estimators import (
    ClassicEEGClassifier, TorchEEGClassifier, check_channels, make_eeg_estimator,
)
from neuroattn.models.eeg_nets import EEGNet, ShallowConvNet

CH8 = ["FC3", "FCz", "FC4", "C3", "Cz", "C4", "CP3", "CP4"]
# published framework's extra parameters on BCI IV 2a defaults (references.md §3, CAT read from its code); FCA: ours
EXTRA = {"se": 128, "eca": 9, "gct": 48, "ge": 0, "srm": 64, "cbam": 147, "encnet": 348,
         "gsop": 428, "catlite": 151, "fca": 128, "cat": 2440}


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def planted(n_per_class=30, n_chans=8, n_times=250, sfreq=125.0, n_classes=2, seed=0, amp=2.0):
    """Class k: a 10 Hz rhythm of random phase added to channel 2k + 1."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_times) / sfreq
    X = rng.standard_normal((n_classes * n_per_class, n_chans, n_times)).astype(np.float32)
    y = np.repeat(np.arange(n_classes), n_per_class)
    for i, k in enumerate(y):
        X[i, 2 * k + 1] += amp * np.sin(2 * np.pi * 10 * t + rng.uniform(0, 2 * np.pi))
    return X, y


def eegdata(X, y, sessions, ch_names=CH8, classes=("a", "b"), subject="01", sfreq=125.0):
    return EEGData(X=X, y=y, classes=list(classes), sessions=np.asarray(sessions),
                   runs=np.asarray(["1"] * len(y)), ch_names=list(ch_names), sfreq=sfreq, subject=subject)


# ------------------------------------------------------------------ architecture
@pytest.mark.parametrize("name", sorted(ATTENTION_MODULES))
def test_attention_module_shapes_and_gate(name):
    torch.manual_seed(0)
    mod = make_attention(name, 16, 62)
    with torch.no_grad():  # GCT is the identity at initialisation (gamma = beta = 0)
        for p in mod.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(3, 16, 1, 62)
    out = mod.train()(x)
    assert out.shape == x.shape
    assert torch.isfinite(out).all()
    assert mod.last_weights.shape == (3, 16)
    assert not torch.allclose(out, x)  # the module actually rescales


def test_parameter_counts_match_published_framework():
    base = n_params(BaseNet(22, 4, 1000))
    assert base == 3692
    extras = {a: n_params(BaseNet(22, 4, 1000, attention=a)) - base for a in ATTENTION_MODULES}
    assert extras == EXTRA
    assert n_params(EEGNet(22, 4, 1000)) == 3444
    assert n_params(ShallowConvNet(22, 4, 1000)) == 46084


def test_cat_gates_over_time_and_channels():
    """CAT's gate varies over time (its temporal branch) as well as over maps; CATLite's (channel
    only) is constant over time, so the check can fail."""
    torch.manual_seed(0)
    x = torch.randn(2, 16, 1, 62)
    for name, varies in (("cat", True), ("catlite", False)):
        mod = make_attention(name, 16, 62)
        with torch.no_grad():
            for p in mod.parameters():
                p.add_(0.5 * torch.randn_like(p))
        gate = (mod(x) / x)[:, :, 0]  # (B, C, T)
        assert (gate.std(-1).mean() > 1e-3) == varies, name
        assert gate.std(1).mean() > 1e-3  # and over maps
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        make_attention("cat", 16, 62, kernel_size=8)


def test_unknown_attention_and_short_input_errors():
    with pytest.raises(ValueError, match="unknown attention module 'nope'"):
        BaseNet(22, 4, 1000, attention="nope")
    assert min_n_times() == 180
    with pytest.raises(ValueError, match="at least 180 samples"):
        BaseNet(22, 4, 179)
    BaseNet(22, 4, 180)
    with pytest.raises(ValueError, match="at least 32 samples"):
        EEGNet(22, 4, 31)
    with pytest.raises(ValueError, match="expected input"):
        BaseNet(22, 4, 1000)(torch.zeros(2, 21, 1000))


@pytest.mark.parametrize("attention", [None, "cbam", "gsop"])
def test_3d_and_4d_inputs_agree(attention):
    torch.manual_seed(0)
    net = BaseNet(8, 3, 300, attention=attention).eval()
    x = torch.randn(4, 8, 300)
    out = net(x)
    assert out.shape == (4, 3)
    torch.testing.assert_close(net(x.unsqueeze(1)), out)


@pytest.mark.parametrize("kernel,depth", [(25, 1), (64, 2), (12, 1)])
def test_fast_block_equals_layer_order(kernel, depth):
    torch.manual_seed(1)
    fast = TemporalSpatialBlock(6, 5, kernel, depth=depth)
    with torch.no_grad():
        fast.bn.weight.uniform_(0.5, 1.5)
        fast.bn.bias.uniform_(-1, 1)
    ref = TemporalSpatialBlock(6, 5, kernel, depth=depth, fast=False)
    ref.load_state_dict(fast.state_dict())
    x = torch.randn(7, 6, 300) * 3 + 0.5
    y_fast, y_ref = fast(x), ref(x)
    assert y_fast.shape == (7, 5 * depth, 1, 300)
    torch.testing.assert_close(y_fast, y_ref, rtol=1e-4, atol=1e-5)
    g = torch.randn_like(y_ref)
    for a, b in zip(torch.autograd.grad((y_fast * g).sum(), list(fast.parameters())),
                    torch.autograd.grad((y_ref * g).sum(), list(ref.parameters()))):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * float(b.abs().max()))
    for key in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(fast.bn.state_dict()[key], ref.bn.state_dict()[key], rtol=1e-4, atol=1e-6)
    fast.eval(), ref.eval()
    torch.testing.assert_close(fast(x), ref(x), rtol=1e-4, atol=1e-5)


def test_elu_equals_torch_elu_values_and_gradients():
    from neuroattn.models.eeg_blocks import elu

    torch.manual_seed(0)
    x = torch.cat([torch.randn(4000) * 3, torch.tensor([0.0, -0.0, -1e-30, 1e-30, -80.0, 50.0])])
    torch.testing.assert_close(elu(x), F.elu(x), rtol=0, atol=2e-7)
    x64 = x.double().requires_grad_()
    g = torch.randn_like(x64)
    (ours,) = torch.autograd.grad((elu(x64) * g).sum(), x64)
    (ref,) = torch.autograd.grad((F.elu(x64) * g).sum(), x64)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(elu(x64.detach()), F.elu(x64.detach()), rtol=0, atol=1e-15)
    assert torch.autograd.gradcheck(elu, (torch.randn(30, dtype=torch.float64, requires_grad=True),))
    # the saved exp is not differentiated again: a second-order use must fail loudly, not silently
    y = torch.randn(5, dtype=torch.float64, requires_grad=True)
    (gy,) = torch.autograd.grad(elu(y).sum(), y, create_graph=True)
    with pytest.raises(RuntimeError):
        gy.sum().backward()


@pytest.mark.parametrize("k", [7, 25, 64])  # 7: channels-last conv; 25, 64: the FFT-gradient function
def test_depthwise_conv1d_equals_conv1d_values_and_gradients(k):
    from neuroattn.models.eeg_blocks import depthwise_conv1d

    torch.manual_seed(0)
    b, g, t = 3, 5, 90
    x = torch.randn(b, g, t + k - 1, dtype=torch.float64, requires_grad=True)
    w = torch.randn(g, 1, k, dtype=torch.float64, requires_grad=True)
    ours, ref = depthwise_conv1d(x, w), F.conv1d(x, w, groups=g)
    assert ours.shape == (b, g, t)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    gy = torch.randn_like(ref)
    for a, r in zip(torch.autograd.grad(ours, (x, w), gy), torch.autograd.grad(ref, (x, w), gy)):
        torch.testing.assert_close(a, r, rtol=1e-10, atol=1e-10)
    assert torch.autograd.gradcheck(depthwise_conv1d, (x[:1, :2, : 20 + k], w[:2]))
    # float32, as in training: the FFT gradient agrees with torch's to float rounding
    x32, w32 = x.detach().float().requires_grad_(), w.detach().float().requires_grad_()
    a = torch.autograd.grad(depthwise_conv1d(x32, w32), (x32, w32), gy.float())
    r = torch.autograd.grad(F.conv1d(x32, w32, groups=g), (x32, w32), gy.float())
    for p, q in zip(a, r):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-4)


def test_shallow_composed_kernel_equals_layers():
    torch.manual_seed(0)
    net = ShallowConvNet(8, 2, 200).eval()
    x = torch.randn(3, 8, 200)
    ref = net.bn(net.spatial(net.temporal(x.unsqueeze(1)))).pow(2)
    ref = net.classifier(torch.log(torch.clamp(net.pool(ref), min=1e-6)).flatten(1))
    torch.testing.assert_close(net(x), ref, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ estimators
def test_estimator_contract_and_learning_a_planted_signal():
    X, y = planted(seed=0)
    Xt, yt = planted(seed=1)
    labels = np.array(["left", "right"])
    est = make_eeg_estimator("basenet_se", sfreq=125.0, epochs=12, warmup_epochs=1, batch_size=16, lr=3e-3)
    assert isinstance(est, TorchEEGClassifier) and not hasattr(est, "module_")
    assert clone(est).get_params() == est.get_params()
    assert est.fit(X, labels[y]) is est
    assert list(est.classes_) == ["left", "right"] and len(est.history_) == 12
    pred = est.predict(Xt)
    assert set(pred) <= {"left", "right"}
    assert np.mean(pred == labels[yt]) >= 0.85
    proba = est.predict_proba(Xt)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-5)
    # gradient x input peaks on the planted channels (1 for class 0, 3 for class 1)
    from neuroattn.models.eeg_interpret import channel_importance

    imp = channel_importance(est, Xt, yt, X)
    assert imp["method"] == "attention" and imp["attention"].shape == (2, 16)
    assert list(imp["gradient_x_input"].argmax(1)) == [1, 3]
    # same seed, same model
    est2 = clone(est).fit(X, labels[y])
    np.testing.assert_allclose(est2.predict_proba(Xt), proba, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["csp_lda", "ts_lr"])
def test_classic_pipelines_learn_and_explain(name):
    X, y = planted(seed=0)
    Xt, yt = planted(seed=1)
    est = make_eeg_estimator(name)
    assert isinstance(est, ClassicEEGClassifier)
    assert est.fit(X, y).score(Xt, yt) >= 0.9
    from neuroattn.models.eeg_interpret import occlusion_importance

    assert list(occlusion_importance(est, Xt, yt, 2).argmax(1)) == [1, 3]


def test_unknown_model_names():
    with pytest.raises(ValueError, match="unknown attention 'foo'"):
        make_eeg_estimator("basenet_foo")
    with pytest.raises(ValueError, match="unknown EEG model 'eegnet_se'"):
        make_eeg_estimator("eegnet_se")


def test_channel_set_mismatch_is_named():
    X, y = planted(n_per_class=6, n_times=200)
    d = eegdata(X, y, ["1"] * len(y))
    est = make_eeg_estimator("ts_lr").fit(d, y)
    assert est.ch_names_ == CH8
    other = eegdata(X, y, ["1"] * len(y), ch_names=CH8[:-1] + ["Pz"])
    with pytest.raises(ValueError, match=r"missing \['CP4'\], unexpected \['Pz'\]"):
        est.predict(other)
    with pytest.raises(ValueError, match="another order"):
        check_channels(CH8, CH8[::-1])


def test_too_few_trials_for_validation_split():
    X, y = planted(n_per_class=3, n_times=200)
    est = TorchEEGClassifier(epochs=1, val_fraction=0.2, sfreq=125.0)
    with pytest.raises(ValueError, match="too few for a stratified validation split"):
        est.fit(X, y)


# ------------------------------------------------------------------ protocols
def _two_session_subject(subject="01", seed=0, n_per_class=16):
    X1, y1 = planted(n_per_class=n_per_class, seed=seed)
    X2, y2 = planted(n_per_class=n_per_class, seed=seed + 100)
    return eegdata(np.concatenate([X1, X2]), np.concatenate([y1, y2]),
                   ["1"] * len(y1) + ["2"] * len(y2), subject=subject)


def test_within_split_and_missing_class_named():
    from neuroattn.models.eeg_evaluation import within_split

    d = _two_session_subject()
    tr, te, s_tr, s_te = within_split(d)
    assert (s_tr, s_te) == ("1", "2") and len(tr) == len(te) == 32
    assert set(d.sessions[tr]) == {"1"} and set(d.sessions[te]) == {"2"}
    bad = d.subset(~((d.sessions == "2") & (d.y == 1)))
    with pytest.raises(ValueError, match=r"session 2 \(test\): no trials of class\(es\) \['b'\]"):
        within_split(bad)
    with pytest.raises(ValueError, match="needs two sessions"):
        within_split(d.subset(d.sessions == "1"))


def test_no_test_session_data_reaches_training(monkeypatch):
    import neuroattn.models.eeg_evaluation as ev

    seen = []

    class Spy(ClassicEEGClassifier):
        def fit(self, X, y):
            seen.append((np.array(X), np.array(y)))
            return super().fit(X, y)

    monkeypatch.setattr(ev, "make_eeg_estimator", lambda name, **kw: Spy(kind="ts_lr"))
    d = _two_session_subject()
    ev.run_protocol("within", {"01": d}, "01", ["ts_lr"], importance=False)
    d2 = _two_session_subject()
    d2.X[d2.sessions == "2"] *= 100.0  # change the test session only
    d2.y[d2.sessions == "2"] = d2.y[d2.sessions == "2"][::-1]
    ev.run_protocol("within", {"01": d2}, "01", ["ts_lr"], importance=False)
    (Xa, ya), (Xb, yb) = seen
    train = d.sessions == "1"
    aligned = euclidean_alignment(d.X[train])  # per-session alignment (align=True by default)
    expected = ChannelStandardizer().fit(aligned).transform(aligned)
    np.testing.assert_allclose(Xa, expected, rtol=1e-5)
    np.testing.assert_array_equal(Xa, Xb)
    np.testing.assert_array_equal(ya, yb)


def test_loso_excludes_test_subject_and_checks_channels():
    from neuroattn.models.eeg_evaluation import loso_data

    datas = {s: _two_session_subject(s, seed=i) for i, s in enumerate(["01", "02", "03"])}
    Xtr, ytr, Xte, yte, subs = loso_data(datas, "02", align=False)
    assert subs == ["01", "03"] and len(Xtr) == 128 and len(Xte) == 64
    np.testing.assert_array_equal(Xte, datas["02"].X)
    assert not any(np.array_equal(Xtr[i], datas["02"].X[0]) for i in range(len(Xtr)))
    datas["03"].ch_names = CH8[:-1] + ["Oz"]
    with pytest.raises(ValueError, match=r"sub-03 vs sub-02.*missing \['CP4'\], unexpected \['Oz'\]"):
        loso_data(datas, "02")
    with pytest.raises(ValueError, match="at least two subjects"):
        loso_data({"02": datas["02"]}, "02")


def test_run_protocol_rows_and_h5(tmp_path):
    from neuroattn.models.eeg_evaluation import run_protocol
    from neuroattn.stages.eeg import result_rows, write_results_h5

    datas = {s: _two_session_subject(s, seed=i) for i, s in enumerate(["01", "02"])}
    settings = {"epochs": 2, "warmup_epochs": 1, "batch_size": 16}
    res, meta = run_protocol("loso", datas, "01", ["basenet", "csp_lda"], seeds=[0, 1], settings=settings)
    rows = result_rows(res, "01", "loso")
    assert {(r["model"], r["metric"]) for r in rows} == {
        (m, k) for m in ("basenet", "csp_lda") for k in ("accuracy", "kappa")}
    assert all(r["n"] == 64 and r["target"] == "loso" and r["modality"] == "eeg" for r in rows)
    acc_csp = next(r for r in rows if r["model"] == "csp_lda" and r["metric"] == "accuracy")
    assert acc_csp["value"] >= 0.9 and acc_csp["error"] is None  # deterministic: one fit
    assert next(r for r in rows if r["model"] == "basenet" and r["metric"] == "accuracy")["error"] is not None
    path = tmp_path / "pred.h5"
    write_results_h5(path, res, meta)
    with h5py.File(path) as f:
        assert list(f["classes"].asstr()[()]) == ["a", "b"] and f.attrs["protocol"] == "loso"
        assert f["basenet/y_pred"].shape == (2, 64) and f["basenet/confusion"][()].sum() == 128
        assert f["csp_lda/importance"].shape == (2, 8)
        assert f["csp_lda/importance"].attrs["method"] == "occlusion"
        # activation pattern of every model: class a (b) has a 10 Hz rhythm on channel 1 (3), so
        # evidence for a rises with channel 1's power (positive) and falls with channel 3's
        for m in ("basenet", "csp_lda"):
            assert f[f"{m}/pattern"].shape == (2, 8)
        pat = f["csp_lda/pattern"][()]
        assert pat[0].argmax() == 1 and pat[0].argmin() == 3 and pat[1].argmax() == 3


def test_topomap_and_confusion_figures():
    from neuroattn.report.eeg_patterns import plot_confusion, plot_topomaps

    fig = plot_topomaps(np.random.default_rng(0).random((2, 8)), CH8, ["a", "b"], title="x")
    assert len(fig.axes) >= 2
    with pytest.raises(ValueError, match="expected \\(3, 8\\)"):
        plot_topomaps(np.zeros((2, 8)), CH8, ["a", "b", "c"])
    assert plot_confusion(np.array([[3, 1], [0, 4]]), ["a", "b"]).axes


def test_electrode_space_maps_reproduce_model_input():
    from neuroattn.models.eeg_evaluation import _alignment_maps

    d = _two_session_subject()
    X = d.X.astype(np.float64)
    maps = _alignment_maps(X, d.sessions, True)
    np.testing.assert_allclose(np.einsum("ncd,ndt->nct", maps, X), euclidean_alignment(X, groups=d.sessions),
                               rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(_alignment_maps(X, d.sessions, False)[0], np.eye(8))


def test_oas_covariances_equal_pyriemann():
    from pyriemann.estimation import Covariances

    from neuroattn.models.eeg_estimators import OASCovariances

    rng = np.random.default_rng(3)
    X = rng.standard_normal((7, 5, 40)) * rng.uniform(0.5, 3, (1, 5, 1)) + rng.standard_normal((7, 5, 1))
    X[0, 1] = X[0, 0]  # a rank-deficient trial
    np.testing.assert_allclose(OASCovariances().fit_transform(X), Covariances(estimator="oas").fit_transform(X),
                               rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="n_trials, n_chans, n_times"):
        OASCovariances().transform(X[0])


def test_decoder_registry_matches_schema_and_config():
    """The schema's model-name pattern and config.yaml's model lists agree with EEG_DECODERS."""
    import re
    from pathlib import Path

    import yaml

    from neuroattn.models.eeg_attention import ATTENTION
    from neuroattn.models.eeg_estimators import EEG_DECODERS

    root = Path(__file__).resolve().parents[1]
    schema = yaml.safe_load((root / "config" / "config.schema.yaml").read_text())
    pattern = re.compile(schema["$defs"]["eeg_model_list"]["items"]["pattern"])
    names = EEG_DECODERS.names()
    assert all(pattern.match(n) for n in names), [n for n in names if not pattern.match(n)]
    for bad in ("basenet_foo", "eegnet_se", "basenet_"):  # nothing else matches
        assert not pattern.match(bad)
    assert sorted(n.split("_", 1)[1] for n in names if n.startswith("basenet_")) == sorted(ATTENTION.names())
    cfg = yaml.safe_load((root / "config" / "config.yaml").read_text())["eeg_models"]
    assert set(cfg["models"]) | set(cfg["loso_models"] or []) <= set(names)


def test_attention_registry_settings_and_unknown_kwargs():
    import inspect

    from neuroattn.models.eeg_attention import ATTENTION, make_attention

    for name in ATTENTION:
        params = set(inspect.signature(ATTENTION[name].factory.__init__).parameters) - {"self", "n_channels", "n_times"}
        assert set(ATTENTION[name].meta["settings"]) <= params, name
    with pytest.raises(TypeError, match="unknown parameter"):
        make_attention("eca", 16, 62, reduction=4)   # ECA has no reduction: refused, not dropped
    with pytest.raises(TypeError, match="unknown parameter"):
        make_eeg_estimator("basenet", epoch=3)


def test_estimators_take_random_state_and_clone():
    from sklearn.base import clone

    for name in ("basenet_se", "ts_lr"):
        est = make_eeg_estimator(name, random_state=7)
        assert est.get_params()["random_state"] == 7
        assert clone(est).get_params() == est.get_params()


def test_min_steps_raises_epochs_for_few_trials_only():
    """min_steps is a floor on optimizer steps: 40 trials in batches of 32 are 2 steps an epoch,
    so min_steps 20 trains 10 epochs instead of 2; with many trials per epoch it changes nothing."""
    X, y = planted(n_per_class=20, n_times=250)
    kw = dict(arch="eegnet", sfreq=125.0, epochs=2, batch_size=32, warmup_epochs=1, device="cpu")
    few = TorchEEGClassifier(**kw, min_steps=20).fit(X, y)
    assert len(few.history_) == few.n_epochs_ == 10
    assert len(TorchEEGClassifier(**kw).fit(X, y).history_) == 2
    assert TorchEEGClassifier(**dict(kw, batch_size=4), min_steps=20).fit(X, y).n_epochs_ == 2  # 10 steps an epoch
    est = make_eeg_estimator("basenet", min_steps=7, epochs=1)
    assert est.min_steps == 7
