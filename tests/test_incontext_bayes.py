"""The in-context networks' Bayesian pieces: evidence-weighted ridge paths with a population prior
(stage 1), its noise estimates, and stage 2's joint, noise-weighted inversion over voxel chunks."""
import numpy as np
import pytest
import torch

from neuroattn.models.incontext import ContextEncoderNet, ImageDecoderNet, decode_images, infer_encoders, retrieve
from neuroattn.models.incontext_nets import _lambda_grid, bayes_ridge_path, ridge_path

E = 8


def _unit(a):
    return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)


def _t(a):
    return torch.as_tensor(np.asarray(a, dtype=np.float32))


def test_bayes_path_matches_ridge_path_and_evidence_finds_the_penalty():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, E)).astype(np.float32)
    rel = _lambda_grid(9)
    W_true = rng.standard_normal((200, E))
    Y = X @ W_true.T + 2.0 * rng.standard_normal((60, 200))     # signal var ~E, noise var 4
    Wb, bb, ev, noise = bayes_ridge_path(_t(X), _t(Y.T), rel, (0.0, 1.0))
    Wr, br = ridge_path(_t(X), _t(Y.T), rel, (0.0, 1.0))                # lambda-major; ours family-major
    Wr, br = Wr.reshape(200, 9, 2, E).transpose(1, 2).reshape(200, 18, E), br.reshape(200, 9, 2).transpose(1, 2).reshape(200, 18)
    np.testing.assert_allclose(Wb.numpy(), Wr.numpy(), atol=2e-3)
    np.testing.assert_allclose(bb.numpy(), br.numpy(), atol=2e-3)
    # the true prior is isotropic with lambda = noise var / weight var = 4 -> relative 4 / mean eig(X'X) = 4/60
    best = rel[ev[:, :9].mean(0).argmax()].item()
    assert 0.01 < best < 0.5
    # profiled noise variance at the best penalty is near the planted 4
    assert np.median(noise[:, ev[:, :9].mean(0).argmax()].numpy()) == pytest.approx(4.0, rel=0.3)
    # evidence cannot tell on shuffled responses: it then prefers the largest penalty (w = 0)
    _, _, ev_s, _ = bayes_ridge_path(_t(X), _t(rng.permutation(Y).T), rel, (0.0,))
    assert ev_s.mean(0).argmax().item() == len(rel) - 1


def test_population_prior_beats_isotropic_ridge_at_small_k():
    rng = np.random.default_rng(1)
    basis = np.linalg.qr(rng.standard_normal((E, E)))[0][:, :2]
    mean = np.full(E, 0.5)
    W_true = mean + rng.standard_normal((300, 2)) @ basis.T * 2      # voxels live near a 2-d plane
    X = _unit(rng.standard_normal((400, E))) * np.sqrt(E)
    Y = X @ W_true.T + rng.standard_normal((400, 300))
    net = ContextEncoderNet(E, d_model=8, n_layers=0, n_heads=1, n_registers=1, population_prior=True)
    torch.nn.init.zeros_(net.head.weight), torch.nn.init.zeros_(net.head.bias)     # evidence alone chooses
    k = 12
    iso = infer_encoders(net, X[:k], Y[:k, :150])[0]
    net.set_population_prior(W_true[150:] / Y[:, 150:].std(0)[:, None])          # other voxels, standardized
    pop = infer_encoders(net, X[:k], Y[:k, :150])[0]
    err = lambda W: np.median(np.linalg.norm(W - W_true[:150], axis=1) / np.linalg.norm(W_true[:150], axis=1))
    assert err(pop) < 0.7 * err(iso)
    with pytest.raises(ValueError, match="population_prior=False"):
        ContextEncoderNet(E, population_prior=False).set_population_prior(W_true)


def test_stage1_noise_tracks_planted_noise():
    rng = np.random.default_rng(2)
    X = _unit(rng.standard_normal((100, E)))
    sd = rng.uniform(0.2, 2.0, 80)
    Y = X @ rng.standard_normal((80, E)).T + rng.standard_normal((100, 80)) * sd
    net = ContextEncoderNet(E, d_model=8, n_layers=1, n_heads=1, n_registers=1)
    _, _, noise = infer_encoders(net, X, Y, return_noise=True)
    assert np.corrcoef(np.log(noise), np.log(sd ** 2))[0, 1] > 0.9


def _planted_decoding(rng, n_vox=300, n_img=120):
    X = _unit(rng.standard_normal((n_img, E)))
    W = rng.standard_normal((n_vox, E)).astype(np.float32)
    b = 0.1 * rng.standard_normal(n_vox).astype(np.float32)
    sd = np.where(rng.random(n_vox) < 0.9, 6.0, 0.3)              # most voxels are noisy, a few reliable
    beta = X @ W.T + b + rng.standard_normal((n_img, n_vox)) * sd
    return X, W, b, beta.astype(np.float32), (sd ** 2).astype(np.float32)


def _top1(dec, X, W, b, beta, noise=None, max_voxels=512):
    names = np.arange(len(X)).astype(str)
    return retrieve(decode_images(dec, W, b, beta, max_voxels=max_voxels, noise=noise), X, names, names)["top1"]


def test_stage2_joint_inversion_over_chunks_equals_one_pass():
    # without attention layers the tokens do not interact, so the chunks' summed statistics must give
    # exactly the one-pass solution (averaging per-chunk solutions, the old scheme, would not)
    rng = np.random.default_rng(3)
    X, W, b, beta, _ = _planted_decoding(rng)
    torch.manual_seed(0)
    dec = ImageDecoderNet(E, d_model=8, n_layers=0, n_heads=1, n_registers=1)
    one = decode_images(dec, W, b, beta[:10], max_voxels=1000)
    many = decode_images(dec, W, b, beta[:10], max_voxels=37)
    np.testing.assert_allclose(many, one, atol=1e-4)
    import torch.nn.functional as F
    chunks = np.array_split(np.random.default_rng(0).permutation(len(W)), 9)
    avg = F.normalize(sum(F.normalize(dec(_t(W[c]), _t(b[c]), _t(beta[:10, c])), dim=-1) for c in chunks), dim=-1)
    assert np.abs(avg.detach().numpy() - one).max() > 1e-3


def test_stage2_noise_weighting_uses_reliable_voxels():
    rng = np.random.default_rng(4)
    X, W, b, beta, noise = _planted_decoding(rng)
    torch.manual_seed(0)
    dec = ImageDecoderNet(E, d_model=8, n_layers=0, n_heads=1, n_registers=1)
    weighted = _top1(dec, X, W, b, beta, noise)
    assert weighted > 0.9
    assert weighted > _top1(dec, X, W, b, beta) + 0.15                       # unweighted
    assert _top1(dec, X, W, b, beta, noise[::-1].copy()) < weighted - 0.3    # weights on the wrong voxels
