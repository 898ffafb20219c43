"""Checks of a validated configuration that the schema cannot express, run before any job
(:func:`neuroattn.config.validate_config` calls :func:`check_semantics`).

Each problem names its dotted key and the allowed values: a backbone an ``encode`` /
``incontext`` / ``scoring`` key names but ``features.backbones`` does not define, an
architecture that does not exist, a layer the backbone does not have, ``eeg.tmin >= eeg.tmax``,
a context size below ``incontext.min_context``, and subjects written with their ``sub-`` prefix.
Nothing is trained or downloaded: layers come from ``features.backbones.<name>.layers`` or the
architecture's default layers (a randomly initialised network where no default is listed).
"""
from __future__ import annotations

import difflib

__all__ = ["check_semantics", "backbone_layers", "arch_layers", "known_arch"]


def known_arch(arch: str) -> tuple[bool, list[str]]:
    """Whether ``arch`` names a buildable backbone, and close known names when not."""
    if arch == "smallcnn" or arch.startswith("timm:"):
        return True, []
    from .features.backbones import CROSSVIT_PRESETS, backbone_kind

    kind = backbone_kind(arch)
    if kind in ("smallcnn", "crossvit", "timm"):
        return True, []
    from .features.backbones import _torchvision_names

    names = ["smallcnn", *CROSSVIT_PRESETS, *_torchvision_names()]
    return arch in names, difflib.get_close_matches(arch, names, n=5, cutoff=0.5)


def arch_layers(arch: str, image_size: int = 96) -> list[str] | None:
    """Every layer name of architecture ``arch`` (a randomly initialised network: nothing trained
    or downloaded); None if it cannot be built."""
    try:
        from .features.backbones import load_backbone

        return load_backbone(arch, image_size=int(image_size or 96)).available_layers()
    except Exception:  # noqa: BLE001 - the arch check reports an unbuildable one
        return None


def backbone_layers(name: str, entry: dict, problems: list) -> list[str]:
    """The layers the feature store will hold for one ``features.backbones`` entry (its ``layers``);
    a layer the architecture lacks is a problem (checked against the architecture's default
    layers, else a randomly initialised network)."""
    from .features.backbones import DEFAULT_LAYERS

    arch = str(entry.get("arch", name))
    layers = [str(x) for x in entry.get("layers") or []]
    if arch in DEFAULT_LAYERS and set(layers) <= set(DEFAULT_LAYERS[arch]):
        return layers
    have = arch_layers(arch, entry.get("image_size") or 96)
    if have is not None:
        bad = [x for x in layers if x not in have]
        if bad:
            shown = [x for x in have if "." not in x] or have
            problems.append(f"config key features.backbones.{name}.layers: {arch!r} has no layer(s) {bad} "
                            f"(its top-level layers: {', '.join(shown[:30])})")
    return layers


def _subjects(config: dict, problems: list) -> None:
    for sec in ("fmri", "eeg"):
        for i, s in enumerate((config.get(sec) or {}).get("subjects") or []):
            if str(s).startswith("sub-"):
                problems.append(f"config key {sec}.subjects.{i}: {s!r}: write the label without 'sub-' "
                                f"({str(s)[4:]!r})")


def check_semantics(config: dict) -> list[str]:
    """Problems of a schema-valid ``config`` (empty when none); each names its key."""
    problems: list[str] = []
    _subjects(config, problems)
    backbones = (config.get("features") or {}).get("backbones") or {}
    defined = ", ".join(sorted(backbones)) or "none"
    layers_of: dict = {}
    for name, entry in sorted(backbones.items()):
        arch = str((entry or {}).get("arch", name))
        ok, close = known_arch(arch)
        if not ok:
            problems.append(f"config key features.backbones.{name}.arch: unknown architecture {arch!r} "
                            f"(smallcnn, crossvit_tiny, crossvit_18, timm:<name> or a torchvision model"
                            + (f"; close: {', '.join(close)}" if close else "") + ")")
            continue
        layers_of[name] = backbone_layers(name, {"arch": arch, **(entry or {})}, problems)
    uses = [("encode.backbone", (config.get("encode") or {}).get("backbone"),
             [("encode.layers", lay) for lay in (config.get("encode") or {}).get("layers") or []]),
            ("incontext.backbone", (config.get("incontext") or {}).get("backbone"),
             [("incontext.layer", (config.get("incontext") or {}).get("layer"))])]
    uses += [(f"scoring.backbones.{i}", b, []) for i, b in enumerate((config.get("scoring") or {}).get("backbones") or [])]
    for key, b, layer_keys in uses:
        if b is None:
            continue
        if b not in backbones:
            problems.append(f"config key {key}: backbone {b!r} is not defined under features.backbones "
                            f"(defined: {defined}; add features.backbones.{b} with its arch)")
            continue
        have = layers_of.get(b)
        for lkey, layer in layer_keys:
            if layer is not None and have is not None and str(layer) not in have:
                problems.append(f"config key {lkey}: backbone {b!r} has no layer {layer!r} "
                                f"(its layers: {', '.join(have)}; features.backbones.{b}.layers)")
    eeg = config.get("eeg") or {}
    if eeg.get("tmin") is not None and eeg.get("tmax") is not None and float(eeg["tmin"]) >= float(eeg["tmax"]):
        problems.append(f"config key eeg.tmin: {eeg['tmin']} must be below eeg.tmax ({eeg['tmax']})")
    ic = config.get("incontext") or {}
    mc = ic.get("min_context")
    if mc is not None:
        small = [k for k in ic.get("context_sizes") or [] if int(k) < int(mc)]
        if small:
            problems.append(f"config key incontext.context_sizes: {small} below incontext.min_context ({mc})")
        if ic.get("default_k") is not None and int(ic["default_k"]) < int(mc):
            problems.append(f"config key incontext.default_k: {ic['default_k']} below incontext.min_context ({mc})")
    return problems
