"""The shared training loop: learning, early stopping, checkpoint resume, determinism."""
import numpy as np
import pytest
import torch
from torch import nn

from neuroattn.train import fit_torch, lr_factor, predict_torch


def _problem(rng, n=200, d=5):
    X = rng.standard_normal((n, d)).astype(np.float32)
    w = rng.standard_normal((d, 2)).astype(np.float32)
    Y = X @ w + 0.1 * rng.standard_normal((n, 2)).astype(np.float32)
    return X, Y


def _r(pred, target):
    return float(np.mean([np.corrcoef(pred[:, j], target[:, j])[0, 1] for j in range(target.shape[1])]))


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 16), nn.Dropout(0.1), nn.Linear(16, 2))


def test_fit_learns_a_linear_map(rng):
    X, Y = _problem(rng)
    res = fit_torch(_mlp(), (X[:150], Y[:150]), val=(X[150:], Y[150:]), val_score=_r,
                    loss_fn=nn.functional.mse_loss, lr=1e-2, batch_size=16, max_epochs=30,
                    progress=False, device="cpu")
    assert res.best_score > 0.95
    assert len(res.history) == 30 and {"train_loss", "val_loss", "val_score", "lr"} <= set(res.history[0])
    pred = predict_torch(res.module, (X[150:],), device="cpu")
    assert pred.shape == (50, 2) and _r(pred, Y[150:]) == pytest.approx(res.best_score, abs=1e-5)


def test_early_stopping_keeps_best_epoch(rng):
    X, Y = _problem(rng)
    scores = iter([0.1, 0.5, 0.4, 0.3, 0.2, 0.9, 0.95])  # best at epoch 1, then 3 worse ones
    res = fit_torch(_mlp(), (X, Y), val=(X, Y), val_score=lambda p, t: next(scores),
                    loss_fn=nn.functional.mse_loss, max_epochs=7, patience=3, progress=False, device="cpu")
    assert res.stopped_early and len(res.history) == 5
    assert res.best_epoch == 1 and res.best_score == 0.5


def test_best_weights_are_restored(rng):
    X, Y = _problem(rng)
    kept = {}

    def score(pred, target):  # epoch 0 is the best; remember its predictions
        kept.setdefault("pred", pred.copy())
        return 1.0 if len(kept) == 1 and not kept.update(seen=True) else 0.0

    res = fit_torch(_mlp(), (X, Y), val=(X, Y), val_score=score, loss_fn=nn.functional.mse_loss,
                    lr=1e-2, max_epochs=4, progress=False, device="cpu")
    assert res.best_epoch == 0
    np.testing.assert_allclose(predict_torch(res.module, (X,), device="cpu"), kept["pred"], atol=1e-6)


def test_deterministic_given_seed(rng):
    X, Y = _problem(rng)
    kw = dict(loss_fn=nn.functional.mse_loss, lr=1e-2, batch_size=16, max_epochs=3, progress=False,
              device="cpu", seed=3)
    a = fit_torch(_mlp(), (X, Y), **kw).module
    b = fit_torch(_mlp(), (X, Y), **kw).module
    c = fit_torch(_mlp(), (X, Y), **{**kw, "seed": 4}).module
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert not all(torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))


class _Interrupt(Exception):
    pass


def _stop_after(k):
    """A validation score that crashes the run at its (k+1)-th evaluation (a simulated kill)."""
    calls = {"n": 0}

    def score(pred, target):
        calls["n"] += 1
        if calls["n"] > k:
            raise _Interrupt
        return _r(pred, target)
    return score


def test_resume_from_checkpoint_matches_uninterrupted_run(rng, tmp_path):
    X, Y = _problem(rng)
    kw = dict(val=(X[150:], Y[150:]), loss_fn=nn.functional.mse_loss, lr=1e-2, batch_size=16,
              progress=False, device="cpu", seed=1, schedule="cosine", warmup_epochs=1, max_epochs=6)
    full = fit_torch(_mlp(), (X[:150], Y[:150]), val_score=_r, **kw)
    ck = tmp_path / "ck.pt"
    with pytest.raises(_Interrupt):
        fit_torch(_mlp(), (X[:150], Y[:150]), val_score=_stop_after(3), checkpoint=ck, **kw)
    assert ck.exists() and not list(tmp_path.glob(".ck*"))  # no temporary file left behind
    resumed = fit_torch(_mlp(seed=99), (X[:150], Y[:150]), val_score=_r, checkpoint=ck, **kw)
    assert [h["epoch"] for h in resumed.history] == list(range(6))
    assert resumed.best_epoch == full.best_epoch
    for pa, pb in zip(full.module.parameters(), resumed.module.parameters()):
        torch.testing.assert_close(pa, pb)
    # a finished checkpoint resumes to the same best weights without training
    again = fit_torch(_mlp(seed=5), (X[:150], Y[:150]), val_score=_r, checkpoint=ck, **kw)
    for pa, pb in zip(full.module.parameters(), again.module.parameters()):
        torch.testing.assert_close(pa, pb)


def test_checkpoint_of_other_module_is_refused(rng, tmp_path):
    X, Y = _problem(rng)
    ck = tmp_path / "ck.pt"
    fit_torch(_mlp(), (X, Y), loss_fn=nn.functional.mse_loss, max_epochs=1, checkpoint=ck, progress=False,
              device="cpu")
    other = nn.Linear(5, 2)
    with pytest.raises(ValueError, match="ck.pt"):
        fit_torch(other, (X, Y), loss_fn=nn.functional.mse_loss, max_epochs=2, checkpoint=ck, progress=False,
                  device="cpu")


def test_bad_input_is_refused(rng):
    X, Y = _problem(rng)
    with pytest.raises(ValueError, match="different lengths"):
        fit_torch(_mlp(), (X, Y[:10]), loss_fn=nn.functional.mse_loss, progress=False, device="cpu")
    with pytest.raises(ValueError, match="optimizer"):
        fit_torch(_mlp(), (X, Y), loss_fn=nn.functional.mse_loss, optimizer="sgd", progress=False, device="cpu")


def test_warmup_cosine_schedule():
    f = [lr_factor(s, 100, 10, "cosine") for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert f[10] == pytest.approx(1.0) and f[55] == pytest.approx(0.5, abs=0.02) and f[-1] < 0.01
    assert all(a >= b for a, b in zip(f[10:], f[11:]))
    assert lr_factor(50, 100, 0, "constant") == 1.0


def test_lr_factor_reproduces_each_former_schedule_bit_for_bit():
    """The one schedule gives the floats of the three loops it replaced (fit_torch's warmup then
    cosine, backbone training's per-step LambdaLR cosine, meta-training's overlapping warmup)."""
    import math

    def fit_torch_old(s, total, warm):
        if warm > 0 and s < warm:
            return (s + 1) / warm
        t = min(max(s - warm, 0) / max(total - warm, 1), 1.0)
        return 0.5 * (1.0 + math.cos(math.pi * t))

    for total, warm in [(100, 10), (37, 0), (7, 3)]:
        for s in range(total + 2):
            assert lr_factor(s, total, warm, "cosine") == fit_torch_old(s, total, warm)
    for total in (1, 8, 152, 229):  # backbone training: LambdaLR, no warmup, base lr * factor
        for s in range(total + 2):
            old = 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
            assert 2e-3 * lr_factor(s, total, 0, "cosine", warmup="overlap") == 2e-3 * old
    for steps in (1, 20, 150, 1000):  # meta-training
        warm = max(1, steps // 20)
        for s in range(steps + 2):
            old = min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / max(steps, 1)))
            assert lr_factor(s, steps, warm, "cosine", warmup="overlap") == old
    with pytest.raises(ValueError, match="warmup"):
        lr_factor(0, 10, 1, "cosine", warmup="after")


def test_train_loop_runs_a_step_source(rng):
    """train_loop on a generator of batches (the episodic form): one step per batch, losses fall."""
    from neuroattn.train import make_optimizer, train_loop

    X, Y = _problem(rng)
    torch.manual_seed(0)
    net = _mlp()
    Xt, Yt = torch.as_tensor(X), torch.as_tensor(Y)
    losses, epochs_seen = [], []

    def batches(epoch):
        for i in range(0, 200, 50):
            yield Xt[i:i + 50], Yt[i:i + 50]

    train_loop(net, batches, lambda b: nn.functional.mse_loss(net(b[0]), b[1]),
               make_optimizer("adamw", net.parameters(), 1e-2, 0.0), lr=1e-2, epochs=5, steps_per_epoch=4,
               schedule="cosine", warmup_steps=2, warmup="overlap", grad_clip=1.0,
               on_step=lambda e, s, b, loss, x: losses.append(loss.item()), on_epoch=lambda e: epochs_seen.append(e))
    assert len(losses) == 20 and epochs_seen == [0, 1, 2, 3, 4] and losses[-1] < losses[0]
