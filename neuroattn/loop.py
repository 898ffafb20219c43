"""The optimizer loop under every torch model in neuroattn, and its one learning-rate schedule.

:func:`train_loop` runs epochs of optimizer steps over whatever a batch source yields (shuffled
array batches for :func:`neuroattn.train.fit_torch`, augmented images for backbone training, one
episodic task per step for in-context meta-training): the learning rate of each step from
:func:`lr_factor`, zero_grad / backward / gradient clipping / step, autocast and fp16 loss
scaling on CUDA. Validation, early stopping and checkpoints are its callers' (``on_epoch``).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

__all__ = ["lr_factor", "make_optimizer", "train_loop"]


def lr_factor(step: int, total_steps: int, warmup_steps: int = 0, schedule: str = "constant",
              warmup: str = "before") -> float:
    """Multiplier of the base learning rate at optimizer step ``step`` (0-based): the one schedule.

    Parameters
    ----------
    step, total_steps, warmup_steps : int
    schedule : {"constant", "cosine"}
        Constant, or a cosine decay to 0 at ``total_steps``.
    warmup : {"before", "overlap"}
        ``"before"``: a linear warmup over ``warmup_steps``, then the schedule over the remaining
        steps (:func:`fit_torch`). ``"overlap"``: the linear ramp ``min(1, (step + 1) / warmup_steps)``
        multiplies a schedule that spans all ``total_steps`` (meta-training, backbone training
        with ``warmup_steps=0``).
    """
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"schedule must be 'constant' or 'cosine', got {schedule!r}")
    if warmup not in ("before", "overlap"):
        raise ValueError(f"warmup must be 'before' or 'overlap', got {warmup!r}")
    if warmup == "overlap":
        ramp = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
        if schedule == "constant":
            return ramp
        # the expression order matters: these are the floats the meta-training loops always used
        return ramp * 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    span = max(total_steps - warmup_steps, 1)
    t = min(max(step - warmup_steps, 0) / span, 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * t))


def _autocast(device: str, amp: bool):
    """Autocast context: bf16 (or fp16 where bf16 is missing) on CUDA, nothing on CPU."""
    if amp and device == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype), dtype
    return torch.autocast("cpu", enabled=False), None


def make_optimizer(name: str, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """``torch.optim.AdamW`` (``"adamw"``) or ``Adam`` (``"adam"``) over ``params``."""
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be 'adamw' or 'adam', got {name!r}")


def train_loop(module: nn.Module, batches: Callable, loss_fn: Callable, opt: torch.optim.Optimizer, *,
               lr: float, epochs: int, steps_per_epoch: int, schedule: str = "constant",
               warmup_steps: int = 0, warmup: str = "before", grad_clip: float | None = None,
               scaler=None, device: str = "cpu", amp: bool = False, start_epoch: int = 0,
               on_step: Callable | None = None, on_epoch: Callable | None = None,
               progress: bool = False, postfix: Callable | None = None) -> None:
    """The optimizer loop under every torch model: schedule, zero_grad/backward/clip/step, autocast.

    Parameters
    ----------
    module : nn.Module
        Put in train mode at the start of each epoch; its parameters are clipped.
    batches : callable
        ``batches(epoch)`` -> iterable of batches. Its random draws (batch order, augmentation,
        episodic tasks) happen as it is consumed, one batch before that batch's step.
    loss_fn : callable
        ``loss_fn(batch)`` -> scalar loss tensor, or ``(loss, extra)``; run under autocast when
        ``amp`` on CUDA.
    opt : torch.optim.Optimizer
        From :func:`make_optimizer` (or resumed from a checkpoint); its ``lr`` is set before each
        step to ``lr * lr_factor(step, epochs * steps_per_epoch, warmup_steps, schedule, warmup)``.
    lr : float
    epochs, steps_per_epoch : int
    schedule, warmup_steps, warmup
        See :func:`lr_factor`.
    grad_clip : float, optional
        Maximum global gradient norm.
    scaler : torch.amp.GradScaler, optional
        fp16 loss scaling.
    device : str
    amp : bool
    start_epoch : int
        First epoch to run (resumed training).
    on_step : callable, optional
        ``on_step(epoch, step, batch, loss, extra)`` after each optimizer step.
    on_epoch : callable, optional
        ``on_epoch(epoch)`` after each epoch; returning True stops training.
    progress : bool
        tqdm bar over epochs; ``postfix()`` -> dict shown on it.
    """
    from tqdm.auto import tqdm

    total_steps = steps_per_epoch * epochs
    lr_factor(0, total_steps, warmup_steps, schedule, warmup)  # validates the schedule
    bar = tqdm(range(start_epoch, epochs), disable=not progress, desc="train", leave=False,
               initial=start_epoch, total=epochs)
    for epoch in bar:
        module.train()
        for b, batch in enumerate(batches(epoch)):
            step = epoch * steps_per_epoch + b
            for g in opt.param_groups:
                g["lr"] = lr * lr_factor(step, total_steps, warmup_steps, schedule, warmup)
            ctx, _ = _autocast(device, amp)
            with ctx:
                out = loss_fn(batch)
            loss, extra = out if isinstance(out, tuple) else (out, None)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"epoch {epoch}: training loss is {float(loss)} (lower lr?)")
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
            else:
                loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(module.parameters(), grad_clip)
            if scaler is not None:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            if on_step is not None:
                on_step(epoch, step, batch, loss, extra)
        stop = bool(on_epoch(epoch)) if on_epoch is not None else False
        if postfix is not None:
            bar.set_postfix({k: f"{v:.4g}" for k, v in postfix().items()})
        if stop:
            break
    bar.close()
