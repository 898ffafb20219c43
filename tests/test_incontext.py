"""In-context encoder (stage 1) / decoder (stage 2): planted-truth recovery, LOSO hygiene, contracts."""
import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.linear_model import Ridge

from neuroattn.data.betas import Betas
from neuroattn.features.store import FeatureWriter
from neuroattn.leaderboard import read_scores
from neuroattn.models import InContextDecoder, InContextEncoder
from neuroattn.models import metatrain as mt
from neuroattn.stages import incontext as stage
from neuroattn.models.incontext import (ContextEncoderNet, ImageDecoderNet, decoding_loss, infer_encoders,
                                        retrieve, ridge_path)

E = 8
TINY = {"embed_dim": E, "encoder": {"d_model": 16, "n_layers": 1, "n_heads": 2, "n_registers": 2},
        "decoder": {"d_model": 16, "n_layers": 1, "n_heads": 2, "n_registers": 2},
        "context_range": [10, 60], "min_context": 10, "n_query": 40, "max_voxels": 64,
        "synthetic_steps": 40, "real_steps": 10, "batch_size": 32, "lr": 0.003,
        "context_sizes": [10, 20], "default_k": 20, "ridge_alphas": [0.1, 10.0, 1000.0]}


def _unit(a):
    return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def embeddings():
    return _unit(np.random.default_rng(1).standard_normal((300, E)))


@pytest.fixture(scope="module")
def prior(embeddings):
    enc, dec, hist = mt.train_prior(embeddings[:200], TINY, seed=0, n_pool_voxels=256)
    return enc, dec, hist


def _planted(rng, X, n_vox, noise=0.1):
    W = rng.standard_normal((n_vox, X.shape[1])).astype(np.float32)
    b = 0.1 * rng.standard_normal(n_vox).astype(np.float32)
    return W, b, (X @ W.T + b + noise * rng.standard_normal((len(X), n_vox))).astype(np.float32)


def _cos_rows(a, b):
    return np.sum(_unit(a) * _unit(b), axis=1)


def test_stage1_recovers_planted_weights(prior, embeddings):
    enc, _, hist = prior
    rng = np.random.default_rng(2)
    X = embeddings[200:240]
    W, b, Y = _planted(rng, X, 50)
    W_hat, b_hat = infer_encoders(enc, X, Y)
    assert W_hat.shape == (50, E) and b_hat.shape == (50,)
    assert np.median(_cos_rows(W_hat, W)) > 0.9
    # a broken model fails the same threshold: untrained plain head, or responses shuffled across images
    torch.manual_seed(0)
    plain = ContextEncoderNet(E, d_model=16, n_layers=1, n_heads=2, n_registers=2, ridge_head=False)
    assert np.median(_cos_rows(infer_encoders(plain, X, Y)[0], W)) < 0.5
    W_shuf, _ = infer_encoders(enc, X, Y[rng.permutation(len(Y))])
    assert np.median(_cos_rows(W_shuf, W)) < 0.5


def test_stage2_inverts_planted_encoders(prior, embeddings):
    enc, dec, hist = prior
    assert np.mean(hist["stage2"][-10:]) < np.mean(hist["stage2"][:5])
    rng = np.random.default_rng(3)
    X = embeddings[200:300]
    W, b, Y = _planted(rng, X, 64)
    model = InContextDecoder(enc, dec, min_context=10).fit(X[:40], Y[:40])
    cand = X[40:]
    assert model.score(Y[40:], cand) > 0.5                 # chance is 1/60
    untrained = ImageDecoderNet(E, d_model=16, n_layers=1, n_heads=2, n_registers=2, ridge_head=False)
    assert clone(model).set_params(decoder_net=untrained).fit(X[:40], Y[:40]).score(Y[40:], cand) < 0.15


def test_ridge_path_matches_sklearn(rng):
    X = rng.standard_normal((30, 5)).astype(np.float32)
    Y = rng.standard_normal((30, 3)).astype(np.float32)
    rel = torch.tensor([0.1, 1.0])
    W, b = ridge_path(torch.from_numpy(X), torch.from_numpy(Y.T), rel)
    Xc = X - X.mean(0)
    lam = np.trace(Xc.T @ Xc) / 5 * 1.0
    ref = Ridge(alpha=lam).fit(X, Y)
    np.testing.assert_allclose(W[:, 1].numpy(), ref.coef_, atol=1e-4)
    np.testing.assert_allclose(b[:, 1].numpy(), ref.intercept_, atol=1e-4)


def test_decoding_loss_and_retrieval():
    t = torch.eye(4)
    # perfect predictions: cosine term 0, InfoNCE term = CE of logits 5*I
    ce = float(torch.nn.functional.cross_entropy(t / 0.2, torch.arange(4)))
    assert float(decoding_loss(t, t)) == pytest.approx(0.1 * ce, abs=1e-5)
    pred = np.array([[1.0, 0.1, 0], [0, 1.0, 0.2]])
    cand = np.eye(3)
    res = retrieve(pred, cand, ["a", "b", "c"], ["b", "b"], ks=(1, 2))
    assert res["top1"] == 0.5 and res["top2"] == 1.0 and res["n_candidates"] == 3
    with pytest.raises(KeyError, match="not in the candidate set"):
        retrieve(pred, cand, ["a", "b", "c"], ["a", "zzz.png"])


def test_estimator_contract_and_min_context(prior, embeddings):
    enc, _, _ = prior
    est = InContextEncoder(enc, min_context=12)
    assert clone(est).get_params()["min_context"] == 12
    rng = np.random.default_rng(4)
    W, b, Y = _planted(rng, embeddings[:30], 5)
    assert est.fit(embeddings[:30], Y) is est
    assert est.coef_.shape == (5, E) and est.intercept_.shape == (5,)
    assert est.predict(embeddings[30:40]).shape == (10, 5)
    assert est.fit(embeddings[:30], Y[:, 0]).predict(embeddings[30:40]).shape == (10,)
    assert est.score(embeddings[:30], Y[:, 0]) > 0.8
    with pytest.raises(ValueError, match="at least 12 context images, got k=11"):
        clone(est).fit(embeddings[:11], Y[:11])
    with pytest.raises(ValueError, match="meta-trained"):
        InContextEncoder().fit(embeddings[:30], Y)
    with pytest.raises(ValueError, match="expects 8"):
        est.fit(np.ones((30, 3)), Y)


def _subjects(emb, rng):
    names = np.array([f"img{i:04d}.png" for i in range(len(emb))])
    test = names[:20]
    lookup = dict(zip(names, emb))
    out = {}
    for j, s in enumerate(["01", "02", "03"]):
        imgs = np.concatenate([test, test, names[20 + 60 * j: 20 + 60 * j + 80]])   # test images twice
        W, b, Y = _planted(rng, emb[[int(i[3:7]) for i in imgs]], 30, noise=0.3)
        out[s] = Betas(s, Y + 100 * (j + 1), imgs, np.array(["v1"] * 30))
    return names, test, lookup, out


def test_loso_pools_never_leak_held_out_subject_or_test_images(embeddings, rng):
    names, test, lookup, betas = _subjects(embeddings, rng)
    train = names[20:]
    subjects = {s: stage.subject_data(b, lookup, train, test) for s, b in betas.items()}
    assert not set(subjects["01"].train_images) & set(test)
    pools = mt.loso_training_pools(subjects, "02")
    assert [p.name for p in pools] == ["01", "03"]
    for p in pools:  # responses are offset by 100 * subject index: none from sub-02 (200)
        assert not np.any(np.abs(p.Y - 200) < 50)
        assert not {tuple(x) for x in p.X} & {tuple(lookup[t]) for t in test}
    with pytest.raises(KeyError, match="sub-09"):
        mt.loso_training_pools(subjects, "09")
    with pytest.raises(ValueError, match="at least 2 subjects"):
        mt.loso_training_pools({"01": subjects["01"]}, "01")
    lonely = Betas("07", rng.standard_normal((5, 3)), names[30:35], np.array(["v1"] * 3))
    with pytest.raises(ValueError, match="sub-07: saw none of the 20 shared test images"):
        stage.subject_data(lonely, lookup, train, test)


def test_run_prior_and_loso_end_to_end(tmp_path, rng, monkeypatch):
    emb = _unit(rng.standard_normal((260, 12)))
    names, test, lookup, betas = _subjects(emb, rng)
    feats = tmp_path / "features.h5"
    with FeatureWriter(feats, names, {"backbone": "toy", "weights": "random"}) as w:
        w.add({"layer4": emb[:, None, :]}, {"layer4": (1, 1)})
    split = tmp_path / "images.tsv"
    pd.DataFrame({"image": names, "split": np.where(np.isin(names, test), "test", "train"),
                  "n_subjects": 1}).to_csv(split, sep="\t", index=False)
    paths = []
    for s, b in betas.items():
        paths.append(tmp_path / f"sub-{s}.h5")
        b.write(paths[-1])
    prior = tmp_path / "prior.pt"
    cfg = {**TINY, "synthetic_steps": 5, "real_steps": 3}
    stage.run_prior(feats, split, prior, cfg, layer="layer4", seed=0)
    seen = []
    real = mt.train_real
    monkeypatch.setattr(mt, "train_real", lambda enc, dec, pools, *a, **k: (seen.extend(p.name for p in pools),
                                                                           real(enc, dec, pools, *a, **k))[1])
    pred, scores = tmp_path / "pred.h5", tmp_path / "scores.tsv"
    stage.run_loso(prior, feats, split, paths, "03", pred, scores, cfg, seed=0)
    assert seen == ["01", "02"]
    df = read_scores(scores)
    assert set(df.model) == {"incontext_k10", "incontext_k20", "ridge_context_k10", "ridge_context_k20"}
    assert {"top1", "top5", "cosine", "noise_normalized_r2"} <= set(df.metric)
    assert (df.loc[df.metric == "top1", "n"] == 20).all() and (df.subject == "03").all()
    with h5py.File(pred, "r") as f:
        assert list(f["k"][()]) == [10, 20]
        assert f["curves/incontext/top1"].shape == (2,)
        assert f["decoded/ridge_context_k20"].shape == (20, 8)
        assert f.attrs["train_subjects"] == "01,02"
    with pytest.raises(ValueError, match="not a readable in-context prior"):
        stage.load_prior(split)
