"""Train a backbone on the stimuli: the default feature basis here.

No pretrained weights can be downloaded, so the configured network is trained on the stimulus
images, brain data never used. ``objective`` says on what:

- ``category``: classify the images into their category labels (``stimuli/stimuli.tsv`` column
  ``category``), like an ImageNet backbone is trained on its labels;
- ``rotation``: label-free, for stimuli without categories (a user's dataset): each image is
  turned by a random quarter turn (0, 90, 180 or 270 degrees, exact: no resampling) and the
  network predicts which (4 classes; Gidaris et al. 2018, "Unsupervised representation learning
  by predicting image rotations"). Held-out accuracy is over every image at all four turns
  (chance 0.25). :func:`choose_objective` picks one of the two from the stimulus labels. ``regime`` selects the training
procedure of the CrossViT Brain-Score paper (Berrios & Deza 2022, "Joint rotational invariance and
adversarial training of a dual-stream Transformer yields state of the art Brain-Score for Area V4";
code: github.com/williamberrios/BrainScore-Transformers), for any trainable backbone:

- ``standard``: plain cross-entropy on the (shifted / mirrored) images;
- ``rotation``: each training image is rotated at random. ``rotation_mode: quarter`` is the
  paper's ``rot_inv`` augmentation (a 90 degree and a 180 degree rotation each applied with
  probability 0.5: a uniform draw of 0, 90, 180 or 270 degrees); ``uniform`` draws the angle in
  [-rotation, rotation] degrees. Bilinear, black corners (torchvision's ``RandomRotation``). The
  paper's procedure has no invariance term in the loss: invariance comes from the augmentation
  alone, and so here;
- ``adversarial``: Madry-style training on L-inf PGD examples in [0, 1] pixel space (radius
  ``pgd_eps``, ``pgd_steps`` signed-gradient steps of size ``pgd_step_size``, default
  2.5 * eps / steps, random start; the attack runs with the network in eval mode so that it does
  not move the batch-norm statistics). The paper uses "fast" adversarial training: one step
  (FGSM with a random start), eps 2/255, step 2.5/255, i.e. ``pgd_steps: 1``, ``pgd_eps: 0.00784``;
- ``joint``: both (rotate, then attack the rotated image), the paper's best V4 model.

The paper fine-tuned an ImageNet-trained CrossViT (6 epochs, Adam, lr warmed up from 8e-5 to
2e-4 in the first epoch, then halved per epoch); trained from scratch on a few hundred images,
one-step PGD from the first step leaves a transformer at chance (it never finds features before
the attack removes them). Three options restore the paper's order of events, in any regime that
attacks: ``pgd_clean_epochs`` clean epochs first (the stand-in for the clean pre-training),
``pgd_ramp_epochs`` over which the radius grows linearly from 0 to ``pgd_eps``
(:func:`pgd_eps_at`; the epsilon warm-up of robust ViT training), and ``pgd_clean_weight``, the
weight of the clean-image loss mixed into the adversarial one (Goodfellow et al. 2015 use 0.5).
``lr_warmup_epochs`` warms the learning rate up linearly (ViTs trained from scratch need it).

``translate`` and ``flip`` add random shifts and left-right mirroring in every regime.
:func:`robustness` measures clean, rotated and PGD accuracy of a trained backbone.

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
from .planning import OBJECTIVES, choose_objective  # noqa: F401  (public; torch-free for the Snakefile)
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
    robustness : dict, :func:`robustness` on the held-out images (``clean``, ``rotated``, ``pgd``;
        empty without a validation set)
    regime : str
    objective : str, ``category`` or ``rotation`` (then ``classes`` are the quarter turns
        ``0, 90, 180, 270`` and the accuracies are rotation-prediction accuracies)
    """

    classes: list
    history: list = field(default_factory=list)
    train_accuracy: float = float("nan")
    val_accuracy: float = float("nan")
    n_train: int = 0
    n_val: int = 0
    seconds: float = 0.0
    robustness: dict = field(default_factory=dict)
    regime: str = "standard"
    objective: str = "category"


#: Classes of the ``rotation`` objective: quarter turns in degrees (counter-clockwise), output order.
QUARTER_TURNS = ("0", "90", "180", "270")


def quarter_turn(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Turn each square image of ``x`` (b, 3, S, S) by ``k[i]`` quarter turns counter-clockwise
    (exact, :func:`torch.rot90`)."""
    out = x.clone()
    for q in range(1, 4):
        sel = (k == q).nonzero().flatten().to(x.device)
        if len(sel):
            out[sel] = torch.rot90(x[sel], q, dims=(2, 3))
    return out


def rotation_batch(x: torch.Tensor, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``rotation`` objective's task on a batch: each image turned by a random quarter turn,
    and the number of turns (0-3) as its label."""
    k = torch.randint(0, 4, (x.shape[0],), generator=generator)
    return quarter_turn(x, k), k.to(x.device)


@torch.no_grad()
def rotation_accuracy(backbone: Backbone, images, batch_size: int = 64) -> float:
    """Rotation-prediction accuracy of ``backbone`` (4 outputs) on uint8 images: every image at
    each of the four quarter turns (chance 0.25); NaN for no images."""
    if len(images) == 0:
        return float("nan")
    model = backbone.model
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(images), batch_size):
        x = backbone.to_unit(images[i:i + batch_size])
        for q in range(4):
            k = torch.full((len(x),), q, dtype=torch.long)
            pred = model(backbone.normalize(quarter_turn(x, k))).argmax(1).cpu()
            correct += int((pred == k).sum())
    model.train(was_training)
    return correct / (4 * len(images))


#: Training regimes (``backbone_training.regime``): which of rotation / PGD each one uses.
REGIMES = {"standard": (False, False), "rotation": (True, False), "adversarial": (False, True),
           "joint": (True, True)}
ROTATION_MODES = ("quarter", "uniform")


def check_regime(regime: str, rotation_mode: str = "quarter", rotation: float = 0.0) -> tuple[bool, bool]:
    """(rotates, attacks) of ``regime``; ValueError naming the allowed values otherwise."""
    if regime not in REGIMES:
        raise ValueError(f"backbone_training.regime must be one of {', '.join(REGIMES)}, got {regime!r}")
    if rotation_mode not in ROTATION_MODES:
        raise ValueError(f"backbone_training.rotation_mode must be one of {', '.join(ROTATION_MODES)}, "
                         f"got {rotation_mode!r}")
    rot, adv = REGIMES[regime]
    if rot and rotation_mode == "uniform" and not rotation > 0:
        raise ValueError(f"backbone_training.regime {regime!r} with rotation_mode 'uniform' needs "
                         f"rotation > 0 (max degrees), got {rotation!r}")
    return rot, adv


def draw_rotations(n: int, mode: str = "quarter", rotation: float = 0.0, generator=None,
                   exclude_identity: bool = False) -> torch.Tensor:
    """Random angles (degrees, (n,)): multiples of 90 (``quarter``; 90/180/270 with
    ``exclude_identity``) or uniform in [-rotation, rotation] (``uniform``)."""
    if mode == "quarter":
        lo = 1 if exclude_identity else 0
        return 90.0 * torch.randint(lo, 4, (n,), generator=generator).float()
    if mode == "uniform":
        return (torch.rand(n, generator=generator) * 2 - 1) * float(rotation)
    raise ValueError(f"rotation mode must be one of {', '.join(ROTATION_MODES)}, got {mode!r}")


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


def pgd_eps_at(step: int, steps_per_epoch: int, eps: float, clean_epochs: float = 0,
               ramp_epochs: float = 0) -> float:
    """The PGD radius of training step ``step`` (0-based): 0 during the first ``clean_epochs``, then
    growing linearly to ``eps`` over ``ramp_epochs`` (reached at the ramp's last step), then ``eps``.

    Examples
    --------
    >>> [round(pgd_eps_at(s, 2, 0.3, clean_epochs=1, ramp_epochs=1), 2) for s in range(5)]
    [0.0, 0.0, 0.15, 0.3, 0.3]
    """
    start = clean_epochs * steps_per_epoch
    if step < start:
        return 0.0
    ramp = ramp_epochs * steps_per_epoch
    if ramp <= 0:
        return float(eps)
    return float(eps) * min(1.0, (step - start + 1) / ramp)


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


def robustness(backbone: Backbone, images, labels, *, rotation_mode: str = "quarter", rotation: float = 0.0,
               pgd_eps: float = 0.01, pgd_steps: int = 10, pgd_step_size: float | None = None, seed: int = 0,
               batch_size: int = 64) -> dict:
    """Top-1 accuracy of ``backbone`` on clean, rotated and PGD-perturbed uint8 images.

    Parameters
    ----------
    backbone : Backbone
    images : uint8 array (n, H, W, 3)
    labels : int array (n,)
        Class index of each image.
    rotation_mode, rotation : see :func:`draw_rotations`; ``quarter`` rotates every image by 90, 180
        or 270 degrees (never the identity).
    pgd_eps, pgd_steps, pgd_step_size : the L-inf attack (:func:`pgd_attack`).
    seed : int
        Seeds the angles and the attack's random start.

    Returns
    -------
    dict
        ``clean``, ``rotated``, ``pgd`` accuracies and ``n`` (images); NaN accuracies for no images.
    """
    y_all = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    n = len(y_all)
    if n == 0:
        return {"clean": float("nan"), "rotated": float("nan"), "pgd": float("nan"), "n": 0}
    gen = torch.Generator().manual_seed(int(seed))
    model = backbone.model
    was_training = model.training
    model.eval()
    correct = {"clean": 0, "rotated": 0, "pgd": 0}
    try:
        for i in range(0, n, batch_size):
            x = backbone.to_unit(images[i:i + batch_size])
            y = y_all[i:i + batch_size].to(x.device)
            xr = rotate(x, draw_rotations(len(y), rotation_mode, rotation, gen, exclude_identity=True))
            xa = pgd_attack(backbone, x, y, pgd_eps, pgd_steps, generator=gen, step_size=pgd_step_size)
            with torch.no_grad():
                for key, xx in (("clean", x), ("rotated", xr), ("pgd", xa)):
                    correct[key] += int((model(backbone.normalize(xx)).argmax(1) == y).sum())
    finally:
        model.train(was_training)
    return {**{k: v / n for k, v in correct.items()}, "n": n}


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


def train_backbone(backbone: Backbone, images, labels=None, *, objective: str = "category",
                   epochs: int = 8, batch_size: int = 64,
                   lr: float = 2e-3, weight_decay: float = 5e-4, regime: str = "standard",
                   rotation_mode: str = "quarter", rotation: float = 0.0, translate: float = 0.0,
                   flip: bool = False, pgd_eps: float = 0.01, pgd_steps: int = 3,
                   pgd_step_size: float | None = None, eval_pgd_steps: int = 10, pgd_clean_epochs: int = 0,
                   pgd_ramp_epochs: int = 0, pgd_clean_weight: float = 0.0, lr_warmup_epochs: int = 0,
                   val_fraction: float = 0.1, seed: int = 0, device="auto") -> TrainingResult:
    """Train ``backbone`` (in place) to classify ``images`` into ``labels`` (``objective``
    ``category``), or to predict the quarter turn applied to each image (``rotation``, label-free).

    Parameters
    ----------
    backbone : Backbone
        Its classifier must have one output per class (``load_backbone(..., num_classes=k)``;
        4 for ``rotation``).
    images : uint8 array (n, H, W, 3) or list of paths
        Held in memory during training.
    labels : sequence of str or int, (n,), optional
        Classes are the sorted unique labels; not used (may be None) with ``rotation``.
    objective : {"category", "rotation"}
        What the network learns (module docstring); ``rotation`` refuses the rotating regimes
        (their random turns would erase the label) and reports its held-out rotation accuracy
        as ``val_accuracy`` and ``robustness["rotation"]`` (no clean / rotated / PGD category
        accuracy: there are no categories).
    epochs, batch_size, lr, weight_decay : training schedule (AdamW, cosine per step).
    regime : {"standard", "rotation", "adversarial", "joint"}
        Training procedure (module docstring): random rotations, PGD examples, or both.
    rotation_mode : {"quarter", "uniform"}
        Rotations of the ``rotation`` / ``joint`` regimes (and of the rotated-accuracy test):
        multiples of 90 degrees (the paper) or uniform in [-rotation, rotation].
    rotation : float
        Maximum rotation (degrees) of ``uniform`` mode.
    translate : float
        Maximum shift (fraction of the image side, in x and y) of the augmentation; 0 = none.
    flip : bool
        Mirror half of the training images left-right (for label sets invariant to it).
    pgd_eps, pgd_steps, pgd_step_size : float, int, float or None
        The L-inf PGD attack of the ``adversarial`` / ``joint`` regimes (:func:`pgd_attack`).
    eval_pgd_steps : int
        Steps of the attack that measures held-out PGD accuracy (:func:`robustness`; same eps).
    pgd_clean_epochs, pgd_ramp_epochs : int
        Adversarial / joint regimes: clean epochs before the attack starts, then epochs over which
        its radius (and step size) grows linearly to ``pgd_eps`` (:func:`pgd_eps_at`).
    pgd_clean_weight : float in [0, 1]
        Adversarial / joint regimes: the loss is ``w * CE(clean) + (1 - w) * CE(attacked)``
        (0: the attacked images only, as the paper).
    lr_warmup_epochs : int
        Linear learning-rate warm-up over these epochs (under the cosine decay).
    val_fraction : float
        Stratified share of the images held out for validation accuracy and :func:`robustness`.
    seed : int
    device : str

    Returns
    -------
    TrainingResult
    """
    t0 = time.perf_counter()
    rotates, attacks = check_regime(regime, rotation_mode, rotation)
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    label_free = objective == "rotation"
    if label_free and rotates:
        raise ValueError(f"backbone_training.regime {regime!r} rotates the images at random, which erases the "
                         "label of objective 'rotation'; use regime standard or adversarial")
    if not 0.0 <= pgd_clean_weight <= 1.0:
        raise ValueError(f"backbone_training.pgd_clean_weight must be in [0, 1], got {pgd_clean_weight!r}")
    for name, v in (("pgd_clean_epochs", pgd_clean_epochs), ("pgd_ramp_epochs", pgd_ramp_epochs),
                    ("lr_warmup_epochs", lr_warmup_epochs)):
        if v < 0:
            raise ValueError(f"backbone_training.{name} must be >= 0, got {v!r}")
    src = ImageSource(images)
    imgs = src[:] if src._arr is not None else np.stack(src[:])
    if label_free:
        classes, y_all = list(QUARTER_TURNS), np.zeros(len(imgs), int)  # y_all only feeds the split
    else:
        if labels is None:
            raise ValueError("objective 'category' needs the labels")
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
    warmup_steps = int(lr_warmup_epochs * steps_per_epoch)
    opt = make_optimizer("adamw", model.parameters(), lr, weight_decay)
    result = TrainingResult(classes=list(classes), n_train=len(tr), n_val=len(va), regime=regime,
                            objective=objective)
    sums = {"loss": 0.0, "correct": 0, "seen": 0, "t0": time.perf_counter()}

    def batches(epoch):
        perm = torch.randperm(len(tr), generator=gen).numpy()
        for j, i in enumerate(range(0, len(tr), batch_size)):
            idx = perm[i:i + batch_size]
            x = backbone.to_unit(x_tr[idx])
            y = y_tr[idx].to(dev)
            if rotates or translate > 0 or flip:
                b = len(idx)
                x = affine_augment(
                    x,
                    degrees=draw_rotations(b, rotation_mode, rotation, gen) if rotates else None,
                    shifts=(torch.rand(b, 2, generator=gen) * 2 - 1) * translate if translate > 0 else None,
                    flips=torch.rand(b, generator=gen) < 0.5 if flip else None)
            if label_free:  # the task: which quarter turn (after the shift / mirror augmentation)
                x, y = rotation_batch(x, gen)
            if not attacks:
                yield x, y, None
                continue
            eps = pgd_eps_at(epoch * steps_per_epoch + j, steps_per_epoch, pgd_eps, pgd_clean_epochs,
                             pgd_ramp_epochs)
            step = pgd_step_size * eps / pgd_eps if pgd_step_size and pgd_eps > 0 else None  # ramps with eps
            xa = pgd_attack(backbone, x, y, eps, pgd_steps, generator=gen, step_size=step)
            # the clean images join the batch only when their loss is weighted (and the attack is on)
            yield xa, y, (x if pgd_clean_weight > 0 and eps > 0 else None)

    def batch_loss(batch):
        x, y, clean = batch
        if clean is None:
            logits = model(backbone.normalize(x))
            return F.cross_entropy(logits, y), logits
        both = model(backbone.normalize(torch.cat([clean, x])))  # one forward for both halves
        lc, la = F.cross_entropy(both[:len(y)], y), F.cross_entropy(both[len(y):], y)
        return pgd_clean_weight * lc + (1.0 - pgd_clean_weight) * la, both[len(y):]

    def on_step(epoch, step, batch, loss, logits):
        y = batch[1]
        sums["loss"] += float(loss.detach()) * len(y)
        sums["correct"] += int((logits.argmax(1) == y).sum())
        sums["seen"] += len(y)

    def heldout(idx):
        if label_free:
            return rotation_accuracy(backbone, imgs[idx])
        return accuracy(backbone, imgs[idx], y_all[idx]) if len(idx) else float("nan")

    def on_epoch(epoch):
        val_acc = heldout(va) if len(va) else float("nan")
        seen = sums["seen"]
        # the learning rate of the next step, as a per-step scheduler reports it after the epoch
        next_lr = lr * lr_factor((epoch + 1) * steps_per_epoch, total, warmup_steps, "cosine", warmup="overlap")
        row = {"epoch": epoch + 1, "loss": sums["loss"] / seen, "train_acc": sums["correct"] / seen,
               "val_acc": val_acc, "lr": next_lr, "seconds": time.perf_counter() - sums["t0"]}
        result.history.append(row)
        log.info("epoch %d/%d  loss %.4f  train acc %.3f  val acc %.3f  (%.1f s)", epoch + 1, epochs,
                 row["loss"], row["train_acc"], val_acc, row["seconds"])
        sums.update(loss=0.0, correct=0, seen=0, t0=time.perf_counter())

    train_loop(model, batches, batch_loss, opt, lr=lr, epochs=epochs, steps_per_epoch=steps_per_epoch,
               schedule="cosine", warmup="overlap", warmup_steps=warmup_steps, on_step=on_step, on_epoch=on_epoch)
    model.eval()
    result.train_accuracy = heldout(tr)
    result.val_accuracy = result.history[-1]["val_acc"] if result.history else heldout(va)
    if label_free:
        if len(va):
            result.robustness = {"rotation": result.val_accuracy, "n": len(va)}  # images, each at 4 turns
        log.info("held-out rotation-prediction accuracy %.3f (chance 0.25, %d images x 4 turns)",
                 result.val_accuracy, len(va))
    elif len(va):
        result.robustness = robustness(backbone, imgs[va], y_all[va], rotation_mode=rotation_mode,
                                       rotation=rotation, pgd_eps=pgd_eps, pgd_steps=eval_pgd_steps,
                                       pgd_step_size=None, seed=seed + 1)
        log.info("held-out accuracy (%s): clean %.3f, rotated %.3f, PGD %.3f", regime,
                 result.robustness["clean"], result.robustness["rotated"], result.robustness["pgd"])
    result.seconds = time.perf_counter() - t0
    log.info("trained %s (objective %s) on %d images (%d classes): train acc %.3f, val acc %.3f, %.1f s",
             backbone.name, objective, len(tr), len(classes), result.train_accuracy, result.val_accuracy,
             result.seconds)
    return result
