"""Training on in-memory arrays (fMRI encoders, EEG networks) on the one loop of ``loop.py``.

:func:`fit_torch` trains an ``nn.Module`` on in-memory arrays with Adam/AdamW, optional gradient
clipping, a constant or warmup + cosine learning-rate schedule, early stopping on a validation
score (higher is better), a best-epoch checkpoint written atomically and resumed when present,
seeds, a tqdm progress bar, ``device="auto"`` and mixed precision (autocast) on CUDA only.

Determinism: the batch order and every random draw of epoch ``e`` (dropout, ...) come from
``derive_seed(seed, e)`` alone, so an interrupted run resumed from its checkpoint ends with the same
weights as an uninterrupted one (on the same device and thread count).

The validation split is the caller's business: pass ``val=(inputs..., target)``.

Inputs need not be in memory: any object with ``__len__`` and ``take(rows) -> ndarray`` (a
:class:`~neuroattn.features.store.TokenRows` view of the feature store, or a standardising
wrapper of one) is read one batch at a time, so memory holds a batch, not the data set. Batches
read this way equal those of the in-memory array row for row, so results do not change.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .loop import _autocast, lr_factor, make_optimizer, train_loop
from .utils import atomic_path, derive_seed, resolve_device

log = logging.getLogger("neuroattn.train")

__all__ = ["TrainResult", "fit_torch", "predict_torch", "lr_factor", "train_loop", "make_optimizer"]


@dataclass
class TrainResult:
    """What :func:`fit_torch` returns.

    Attributes
    ----------
    module : nn.Module
        The trained module (on the training device, in eval mode) with the best epoch's weights.
    best_epoch : int
        0-based epoch whose weights were kept (the last epoch when there is no validation set).
    best_score : float
        Validation score of ``best_epoch`` (NaN without validation data).
    history : list of dict
        One dict per epoch: ``epoch``, ``lr``, ``train_loss`` and, with validation data,
        ``val_loss`` and ``val_score``.
    stopped_early : bool
        Whether training stopped before ``max_epochs`` because of ``patience``.
    """

    module: nn.Module
    best_epoch: int
    best_score: float = float("nan")
    history: list = field(default_factory=list)
    stopped_early: bool = False


def is_row_source(a) -> bool:
    """Whether ``a`` is read lazily by rows (has ``take``) rather than converted to a tensor."""
    return not isinstance(a, (np.ndarray, torch.Tensor)) and callable(getattr(a, "take", None)) \
        and hasattr(a, "__len__")


def _rows(t, idx, device):
    """Rows ``idx`` (a tensor of indices or a slice) of a tensor or a row source, on ``device``."""
    if not is_row_source(t):
        return t[idx].to(device, non_blocking=True)
    rows = np.arange(len(t))[idx] if isinstance(idx, slice) else idx.numpy()
    b = torch.from_numpy(np.ascontiguousarray(t.take(rows)))
    if device == "cuda":  # pinned host memory: the copy to the GPU overlaps the next read
        b = b.pin_memory()
    return b.to(device, non_blocking=True)


def _as_tensors(data, name) -> tuple:
    if not isinstance(data, (tuple, list)) or len(data) < 2:
        raise ValueError(f"{name} must be a tuple (inputs..., target), got {type(data).__name__}")
    out = []
    for a in data:
        if is_row_source(a):  # read by batches
            out.append(a)
            continue
        t = a if isinstance(a, torch.Tensor) else torch.as_tensor(np.asarray(a))
        if t.is_floating_point() and t.dtype == torch.float64:
            t = t.float()
        out.append(t)
    n = {len(t) for t in out}
    if len(n) != 1:
        raise ValueError(f"{name}: arrays have different lengths {[len(t) for t in out]}")
    if n == {0}:
        raise ValueError(f"{name}: no samples")
    return tuple(out)


@torch.no_grad()
def predict_torch(module: nn.Module, inputs: Sequence, *, batch_size: int = 256, device: str = "auto",
                  amp: bool = True) -> np.ndarray:
    """Run ``module(*inputs)`` in eval mode over batches; return a float32 NumPy array.

    Parameters
    ----------
    module : nn.Module
    inputs : sequence of arrays, tensors or row sources
        Same first dimension; row sources (``take(rows)``) are read one batch at a time.
    batch_size : int
    device : {"auto", "cpu", "cuda"}
    amp : bool
        Autocast on CUDA (ignored on CPU).
    """
    device = resolve_device(device)
    tensors = _as_tensors(tuple(inputs) + (np.zeros(len(inputs[0])),), "inputs")[:-1]
    module.to(device).eval()
    ctx, _ = _autocast(device, amp)
    outs = []
    for start in range(0, len(tensors[0]), batch_size):
        batch = [_rows(t, slice(start, start + batch_size), device) for t in tensors]
        with ctx:
            outs.append(module(*batch).float().cpu())
    return torch.cat(outs).numpy()


def _load_checkpoint(path: Path, module, opt, scaler):
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
        module.load_state_dict(ck["module"])
        opt.load_state_dict(ck["optimizer"])
        if scaler is not None and ck.get("scaler"):
            scaler.load_state_dict(ck["scaler"])
    except (RuntimeError, KeyError, ValueError, EOFError) as exc:
        raise ValueError(f"{path}: checkpoint does not match this module/optimizer ({exc}); "
                         "delete it to start over") from exc
    return ck


def fit_torch(module: nn.Module, train, *, loss_fn: Callable, val=None, val_score: Callable | None = None,
              optimizer: str = "adamw", lr: float = 1e-3, weight_decay: float = 0.0,
              grad_clip: float | None = None, batch_size: int = 32, max_epochs: int = 10,
              patience: int | None = None, warmup_epochs: int = 0, schedule: str = "constant",
              seed: int = 0, device: str = "auto", checkpoint=None, progress: bool = True,
              amp: bool = True, eval_batch_size: int | None = None) -> TrainResult:
    """Train ``module`` with mini-batch gradient descent; keep the best validation epoch.

    Parameters
    ----------
    module : nn.Module
        Called as ``module(*inputs)``; its parameters are trained in place.
    train : tuple of arrays/tensors/row sources
        ``(inputs..., target)``, all with the same first dimension; row sources (objects with
        ``take(rows)``, e.g. a feature-store view) are read one batch at a time.
    loss_fn : callable
        ``loss_fn(pred, target) -> scalar tensor`` (e.g. ``nn.functional.mse_loss``).
    val : tuple, optional
        Validation data in the same form as ``train``. Without it every epoch runs and the last
        one is kept.
    val_score : callable, optional
        ``val_score(pred, target) -> float`` on NumPy arrays (pred float32, target as given);
        higher is better. Default: minus the validation loss.
    optimizer : {"adamw", "adam"}
    lr, weight_decay : float
    grad_clip : float, optional
        Maximum global gradient norm.
    batch_size, max_epochs : int
    patience : int, optional
        Stop after this many epochs without a better validation score (None: never stop early).
    warmup_epochs : int
        Linear learning-rate warmup over this many epochs (counted in optimizer steps).
    schedule : {"constant", "cosine"}
        After warmup: constant, or cosine decay to zero at ``max_epochs``.
    seed : int
        Seeds batch order and random layers (dropout) per epoch.
    device : {"auto", "cpu", "cuda"}
    checkpoint : path, optional
        Written atomically after every epoch (current state, optimizer state and the best
        weights so far); when it exists at start, training resumes after its last epoch.
    progress : bool
        tqdm progress bar over epochs.
    amp : bool
        Mixed precision (bf16 autocast, fp16 with a gradient scaler where bf16 is missing) on
        CUDA; ignored on CPU.
    eval_batch_size : int, optional
        Batch size for validation predictions (default ``4 * batch_size``).

    Returns
    -------
    TrainResult
    """
    if max_epochs < 1:
        raise ValueError(f"max_epochs must be >= 1, got {max_epochs}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if patience is not None and patience < 1:
        raise ValueError(f"patience must be >= 1 or None, got {patience}")
    train = _as_tensors(train, "train")
    val = _as_tensors(val, "val") if val is not None else None
    device = resolve_device(device)
    eval_bs = eval_batch_size or 4 * batch_size
    module.to(device)
    opt = make_optimizer(optimizer, [p for p in module.parameters() if p.requires_grad], lr, weight_decay)
    ctx_dtype = _autocast(device, amp)[1]
    scaler = torch.amp.GradScaler("cuda") if ctx_dtype == torch.float16 else None

    n = len(train[0])
    steps_per_epoch = math.ceil(n / batch_size)
    total_steps = steps_per_epoch * max_epochs
    warmup_steps = warmup_epochs * steps_per_epoch
    lr_factor(0, total_steps, warmup_steps, schedule)  # validates ``schedule``

    start_epoch, history = 0, []
    best_score, best_epoch, best_state, bad_epochs = -math.inf, -1, None, 0
    stopped_early = False
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None and ckpt.exists():
        ck = _load_checkpoint(ckpt, module, opt, scaler)
        start_epoch, history = int(ck["epoch"]) + 1, list(ck["history"])
        best_score, best_epoch = float(ck["best_score"]), int(ck["best_epoch"])
        best_state, bad_epochs = ck["best_state"], int(ck["bad_epochs"])
        stopped_early = bool(ck.get("stopped_early", False))
        log.info("resumed from %s after epoch %d (best epoch %d)", ckpt, start_epoch - 1, best_epoch)
        module.to(device)
        for state in opt.state.values():
            for k, v in state.items():
                if isinstance(v, torch.Tensor) and k != "step":
                    state[k] = v.to(device)

    def evaluate():
        pred = predict_torch(module, val[:-1], batch_size=eval_bs, device=device, amp=amp)
        target = val[-1]
        tgt_t = target.to(torch.float32) if target.is_floating_point() else target
        vloss = float(loss_fn(torch.as_tensor(pred), tgt_t))
        score = float(val_score(pred, target.numpy())) if val_score is not None else -vloss
        return vloss, score

    def epoch_batches(epoch):
        torch.manual_seed(derive_seed(seed, epoch))
        gen = torch.Generator().manual_seed(derive_seed(seed, epoch))
        order = torch.randperm(n, generator=gen)
        for b in range(steps_per_epoch):
            idx = order[b * batch_size:(b + 1) * batch_size]
            yield [_rows(t, idx, device) for t in train]

    def batch_loss(batch):
        pred = module(*batch[:-1])
        return loss_fn(pred.float() if pred.is_floating_point() else pred, batch[-1])

    sums = [0.0, 0]

    def on_step(epoch, step, batch, loss, extra):
        sums[0] += float(loss.detach()) * len(batch[-1])
        sums[1] += len(batch[-1])

    def on_epoch(epoch):
        nonlocal best_score, best_epoch, best_state, bad_epochs, stopped_early
        rec = {"epoch": epoch, "lr": opt.param_groups[0]["lr"], "train_loss": sums[0] / sums[1]}
        sums[:] = [0.0, 0]
        if val is not None:
            rec["val_loss"], rec["val_score"] = evaluate()
            score = rec["val_score"]
        else:
            score = float("nan")
        history.append(rec)
        improved = val is None or (not math.isnan(score) and score > best_score)
        if improved:
            best_score, best_epoch, bad_epochs = score, epoch, 0
            best_state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
        else:
            bad_epochs += 1
        if patience is not None and val is not None and bad_epochs >= patience:
            stopped_early = True
        if ckpt is not None:
            state = {
                "epoch": epoch, "history": history, "best_score": best_score, "best_epoch": best_epoch,
                "best_state": best_state, "bad_epochs": bad_epochs, "stopped_early": stopped_early,
                "module": module.state_dict(), "optimizer": opt.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else None,
            }
            with atomic_path(ckpt) as tmp:
                torch.save(state, tmp)
        if stopped_early:
            log.info("early stop after epoch %d (best epoch %d, score %.4g)", epoch, best_epoch, best_score)
        return stopped_early

    if not stopped_early:  # a resumed run that had stopped early trains no further
        train_loop(module, epoch_batches, batch_loss, opt, lr=lr, epochs=max_epochs,
                   steps_per_epoch=steps_per_epoch, schedule=schedule, warmup_steps=warmup_steps,
                   grad_clip=grad_clip, scaler=scaler, device=device, amp=amp, start_epoch=start_epoch,
                   on_step=on_step, on_epoch=on_epoch, progress=progress,
                   postfix=lambda: {k: v for k, v in history[-1].items() if k != "epoch"})
    if best_state is not None:
        module.load_state_dict(best_state)
    module.to(device).eval()
    return TrainResult(module=module, best_epoch=best_epoch,
                       best_score=best_score if val is not None else float("nan"),
                       history=history, stopped_early=stopped_early)
