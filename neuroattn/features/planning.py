"""What the workflow plans with before any network exists: the layers read from each architecture
when none are given, and the backbone training objective. Torch-free, so that planning (the config
checks in the Snakefile, every ``snakemake`` call) does not import torch."""
from __future__ import annotations

__all__ = ["DEFAULT_LAYERS", "OBJECTIVES", "choose_objective"]

#: Layers read when none are given, per architecture.
_CROSSVIT_LAYERS = [f"blocks.{i}.{t}" for i in range(3) for t in ("small", "large", "fused")] + ["pooled"]
DEFAULT_LAYERS = {
    "crossvit_tiny": list(_CROSSVIT_LAYERS),
    "crossvit_18": list(_CROSSVIT_LAYERS),
    "smallcnn": ["layer1", "layer2", "layer3", "layer4"],
    "resnet18": ["layer1", "layer2", "layer3", "layer4"],
    "resnet34": ["layer1", "layer2", "layer3", "layer4"],
    "resnet50": ["layer1", "layer2", "layer3", "layer4"],
    "resnet101": ["layer1", "layer2", "layer3", "layer4"],
    "alexnet": ["features.2", "features.5", "features.7", "features.9", "features.12"],
    "vit_b_16": [f"encoder.layers.encoder_layer_{i}" for i in (3, 7, 11)],
    "vit_b_32": [f"encoder.layers.encoder_layer_{i}" for i in (3, 7, 11)],
    "vit_l_16": [f"encoder.layers.encoder_layer_{i}" for i in (7, 15, 23)],
}

#: Training objectives (``backbone_training.objective``; ``auto`` is resolved by :func:`choose_objective`).
OBJECTIVES = ("category", "rotation")


def choose_objective(objective: str, categories=None) -> tuple[str, str]:
    """The training objective for ``objective`` (``auto``, ``category`` or ``rotation``) given the
    stimuli's category labels, and why.

    Parameters
    ----------
    objective : {"auto", "category", "rotation"}
    categories : sequence or None
        The ``category`` column of the stimulus table, None when it has none.

    Returns
    -------
    (str, str)
        ``category`` or ``rotation``, and the reason in words (for the log and the training table).

    Raises
    ------
    ValueError
        ``category`` without at least two distinct categories, or an unknown ``objective``.
    """
    cats = [] if categories is None else sorted({str(c) for c in categories if c == c and str(c) not in ("", "n/a")})
    if objective not in ("auto", *OBJECTIVES):
        raise ValueError(f"backbone_training.objective must be one of auto, {', '.join(OBJECTIVES)}, got {objective!r}")
    if objective == "rotation":  # as configured, or as rules/common.smk resolved auto before the run
        return "rotation", "backbone_training.objective rotation"
    if len(cats) >= 2:
        return "category", (f"{len(cats)} stimulus categories" + (" (set in the config)" if objective == "category" else ""))
    what = "no 'category' column" if categories is None else f"{len(cats)} distinct category value(s)"
    if objective == "category":
        raise ValueError(f"backbone_training.objective 'category' needs at least 2 stimulus categories; "
                         f"the stimuli have {what} (use auto or rotation for label-free training)")
    return "rotation", f"the stimuli have {what}: label-free rotation prediction"
