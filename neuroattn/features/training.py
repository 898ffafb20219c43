"""Train a backbone on the stimuli (category classification): the default feature basis here.

No pretrained weights can be downloaded, so the configured network is trained on the stimulus
images with their category labels (``stimuli/stimuli.tsv`` column ``category``), like an ImageNet
backbone is trained on its labels; brain data are never used. Two options follow the recipe of
the CrossViT Brain-Score paper (Berrios & Deza 2022: joint rotational invariance and adversarial
training):

- ``rotation``: each training image is rotated by an angle drawn uniformly in
  [-rotation, rotation] degrees (bilinear, black corners, as torchvision's ``RandomRotation``);
  ``translate`` and ``flip`` add random shifts and left-right mirroring in the same resampling;
- ``adversarial``: Madry-style training on L-inf PGD examples in [0, 1] pixel space
  (radius ``pgd_eps``, ``pgd_steps`` steps of size 2.5 * eps / steps, random start; the attack
  runs with the network in eval mode so that it does not move the batch-norm statistics).

AdamW with a per-step cosine learning-rate schedule on :func:`neuroattn.loop.train_loop`; a
stratified ``val_fraction`` of the images is held out to report validation accuracy. Deterministic
given ``seed`` on CPU.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional as F

from ..loop import lr_factor, make_optimizer, train_loop
from ..utils import resolve_device
from .backbones import Backbone
from .images import ImageSource
from .weights import save_weights  # noqa: F401  (public import)

log = logging.getLogger(__name__)


@dataclass
class TrainingResult:
    """Outcome of :func:`train_backbone`.

    Attributes
    ----------
    classes : list of str, label of each classifier output
    history : list of dict, per epoch: ``epoch``, ``loss``, ``train_acc`` (augmented batches),
        ``val_acc``, ``lr``, ``seconds``
    train_accuracy, val_accuracy : float, final accuracy on clean train / held-out images
        (``val_accuracy`` is NaN without a validation set)
    n_train, n_val : int
    seconds : float, wall time
    """

    classes: list
    history: list = field(default_factory=list)
    train_accuracy: float = float("nan")
    val_accuracy: float = float("nan")
    n_train: int = 0
    n_val: int = 0
    seconds: float = 0.0


def affine_augment(x: torch.Tensor, degrees=None, shifts=None, flips=None) -> torch.Tensor:
    """Rotate, shift and mirror each image of ``x`` (b, 3, H, W) about its centre, in one resampling.

    Parameters
    ----------
    x : tensor (b, 3, H, W)
    degrees : tensor (b,), optional
        Rotation angles in degrees.
    shifts : tensor (b, 2), optional
        Translations (x, y) as fractions of the image side.
    flips : tensor (b,) bool, optional
        Mirror left-right.

    Pixels from outside the image are black (zeros), as in torchvision's ``RandomRotation``.
    """
    b = x.shape[0]
    rad = (torch.zeros(b) if degrees is None else degrees.float().cpu()) * (math.pi / 180.0)
    cos, sin = torch.cos(rad), torch.sin(rad)
    f = torch.ones(b) if flips is None else 1.0 - 2.0 * flips.float().cpu()
    t = torch.zeros(b, 2) if shifts is None else -2.0 * shifts.float().cpu()  # grid maps output -> input
    theta = torch.stack([torch.stack([cos * f, -sin, t[:, 0]], 1), torch.stack([sin * f, cos, t[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def rotate(x: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate each image of ``x`` (b, 3, H, W) by ``degrees[i]`` about its centre (zeros outside)."""
    return affine_augment(x, degrees=degrees)


def pgd_attack(backbone: Backbone, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int,
               generator: torch.Generator | None = None, step_size: float | None = None) -> torch.Tensor:
    """L-inf PGD adversarial examples of [0, 1] images ``x`` against ``backbone`` (labels ``y``).

    Random start in the eps-ball, ``steps`` signed-gradient ascent steps on the cross-entropy,
    projected back onto the ball and [0, 1]. The model is in eval mode during the attack.
    """
    if eps <= 0 or steps < 1:
        return x
    step_size = step_size or 2.5 * eps / steps
    model = backbone.model
    was_training = model.training
    model.eval()
    noise = torch.rand(x.shape, generator=generator, device="cpu").to(x.device)
    delta = ((x + (noise * 2 - 1) * eps).clamp(0, 1) - x).detach()
    try:
        for _ in range(steps):
            delta.requires_grad_(True)
            loss = F.cross_entropy(model(backbone.normalize(x + delta)), y)
            (grad,) = torch.autograd.grad(loss, delta)
            delta = (delta.detach() + step_size * grad.sign()).clamp(-eps, eps)
            delta = (x + delta).clamp(0, 1) - x
    finally:
        model.train(was_training)
    return (x + delta).detach()


@torch.no_grad()
def accuracy(backbone: Backbone, images, labels, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``backbone`` on uint8 images (clean, eval mode)."""
    if len(labels) == 0:
        return float("nan")
    model = backbone.model
    was_training = model.training
    model.eval()
    correct = 0
    y = torch.as_tensor(labels)
    for i in range(0, len(y), batch_size):
        pred = model(backbone.preprocess(images[i:i + batch_size])).argmax(1).cpu()
        correct += int((pred == y[i:i + batch_size]).sum())
    model.train(was_training)
    return correct / len(y)


def _split(labels: np.ndarray, val_fraction: float, seed: int):
    n = len(labels)
    n_val = int(round(val_fraction * n))
    if n_val == 0:
        return np.arange(n), np.arange(0)
    from sklearn.model_selection import train_test_split

    counts = np.unique(labels, return_counts=True)[1]
    strat = labels if counts.min() >= 2 and n_val >= len(counts) else None
    tr, va = train_test_split(np.arange(n), test_size=n_val, random_state=seed, stratify=strat)
    return np.sort(tr), np.sort(va)


def train_backbone(backbone: Backbone, images, labels, *, epochs: int = 8, batch_size: int = 64,
                   lr: float = 2e-3, weight_decay: float = 5e-4, rotation: float = 0.0,
                   translate: float = 0.0, flip: bool = False, adversarial: bool = False, pgd_eps: float = 0.01, pgd_steps: int = 3,
                   val_fraction: float = 0.1, seed: int = 0, device="auto") -> TrainingResult:
    """Train ``backbone`` (in place) to classify ``images`` into ``labels``.

    Parameters
    ----------
    backbone : Backbone
        Its classifier must have one output per class (``load_backbone(..., num_classes=k)``).
    images : uint8 array (n, H, W, 3) or list of paths
        Held in memory during training.
    labels : sequence of str or int, (n,)
        Classes are the sorted unique labels.
    epochs, batch_size, lr, weight_decay : training schedule (AdamW, cosine per step).
    rotation : float
        Maximum rotation (degrees) of the augmentation; 0 = none.
    translate : float
        Maximum shift (fraction of the image side, in x and y) of the augmentation; 0 = none.
    flip : bool
        Mirror half of the training images left-right (for label sets invariant to it).
    adversarial : bool
        Train on PGD examples (``pgd_eps``, ``pgd_steps``).
    val_fraction : float
        Stratified share of the images held out for validation accuracy.
    seed : int
    device : str

    Returns
    -------
    TrainingResult
    """
    t0 = time.perf_counter()
    src = ImageSource(images)
    imgs = src[:] if src._arr is not None else np.stack(src[:])
    labels = np.asarray(labels).astype(str)
    if len(labels) != len(imgs):
        raise ValueError(f"{len(labels)} labels for {len(imgs)} images")
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise ValueError(f"backbone training needs at least 2 categories, got {classes}")
    y_all = np.searchsorted(classes, labels)
    backbone.to(resolve_device(device))
    dev = backbone.device
    model = backbone.model
    with torch.no_grad():
        n_out = model.eval()(backbone.preprocess(imgs[:1])).shape[-1]
    if n_out != len(classes):
        raise ValueError(f"backbone {backbone.name!r} has {n_out} outputs but the labels have "
                         f"{len(classes)} classes; load it with num_classes={len(classes)}")
    tr, va = _split(y_all, val_fraction, seed)
    x_tr, y_tr = imgs[tr], torch.as_tensor(y_all[tr])
    gen = torch.Generator().manual_seed(seed)  # batch order, augmentation and PGD starts, in draw order
    steps_per_epoch = math.ceil(len(tr) / batch_size)
    total = epochs * steps_per_epoch
    opt = make_optimizer("adamw", model.parameters(), lr, weight_decay)
    result = TrainingResult(classes=list(classes), n_train=len(tr), n_val=len(va))
    sums = {"loss": 0.0, "correct": 0, "seen": 0, "t0": time.perf_counter()}

    def batches(epoch):
        perm = torch.randperm(len(tr), generator=gen).numpy()
        for i in range(0, len(tr), batch_size):
            idx = perm[i:i + batch_size]
            x = backbone.to_unit(x_tr[idx])
            y = y_tr[idx].to(dev)
            if rotation > 0 or translate > 0 or flip:
                b = len(idx)
                x = affine_augment(
                    x,
                    degrees=(torch.rand(b, generator=gen) * 2 - 1) * rotation if rotation > 0 else None,
                    shifts=(torch.rand(b, 2, generator=gen) * 2 - 1) * translate if translate > 0 else None,
                    flips=torch.rand(b, generator=gen) < 0.5 if flip else None)
            if adversarial:
                x = pgd_attack(backbone, x, y, pgd_eps, pgd_steps, generator=gen)
            yield x, y

    def batch_loss(batch):
        x, y = batch
        logits = model(backbone.normalize(x))
        return F.cross_entropy(logits, y), logits

    def on_step(epoch, step, batch, loss, logits):
        y = batch[1]
        sums["loss"] += float(loss.detach()) * len(y)
        sums["correct"] += int((logits.argmax(1) == y).sum())
        sums["seen"] += len(y)

    def on_epoch(epoch):
        val_acc = accuracy(backbone, imgs[va], y_all[va]) if len(va) else float("nan")
        seen = sums["seen"]
        # the learning rate of the next step, as a per-step scheduler reports it after the epoch
        next_lr = lr * lr_factor((epoch + 1) * steps_per_epoch, total, 0, "cosine", warmup="overlap")
        row = {"epoch": epoch + 1, "loss": sums["loss"] / seen, "train_acc": sums["correct"] / seen,
               "val_acc": val_acc, "lr": next_lr, "seconds": time.perf_counter() - sums["t0"]}
        result.history.append(row)
        log.info("epoch %d/%d  loss %.4f  train acc %.3f  val acc %.3f  (%.1f s)", epoch + 1, epochs,
                 row["loss"], row["train_acc"], val_acc, row["seconds"])
        sums.update(loss=0.0, correct=0, seen=0, t0=time.perf_counter())

    train_loop(model, batches, batch_loss, opt, lr=lr, epochs=epochs, steps_per_epoch=steps_per_epoch,
               schedule="cosine", warmup="overlap", on_step=on_step, on_epoch=on_epoch)
    model.eval()
    result.train_accuracy = accuracy(backbone, x_tr, y_tr.numpy())
    result.val_accuracy = result.history[-1]["val_acc"] if result.history else accuracy(backbone, imgs[va], y_all[va])
    result.seconds = time.perf_counter() - t0
    log.info("trained %s on %d images (%d classes): train acc %.3f, val acc %.3f, %.1f s", backbone.name,
             len(tr), len(classes), result.train_accuracy, result.val_accuracy, result.seconds)
    return result
