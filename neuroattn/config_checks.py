"""Checks of a validated configuration that the schema cannot express, run before any job
(:func:`neuroattn.config.validate_config` calls :func:`check_semantics`).

Each problem names its dotted key and the allowed values: a backbone an ``encode`` /
``incontext`` / ``scoring`` key names but ``features.backbones`` does not define, an
architecture that does not exist, a layer the backbone does not have, ``eeg.tmin >= eeg.tmax``,
a context size below ``incontext.min_context``, and subjects written with their ``sub-`` prefix.
Nothing is trained or downloaded: layers come from ``features.backbones.<name>.layers`` or the
architecture's default layers (a randomly initialised network where no default is listed).

With a BIDS root set (``fmri`` / ``eeg``, format ``bids``; fMRIPrep's raw root too),
:func:`check_data` also reads the dataset's file names and events tables: a task or subject
absent from the data, and EEG classes (``eeg.events`` given as a list or mapping) that no events
table of a subject holds. :func:`backbone_objective` decides, from the stimulus table, what a
``weights: train`` backbone will learn (``backbone_training.objective: auto``).
"""
from __future__ import annotations

import difflib

__all__ = ["check_semantics", "check_data", "backbone_objective", "backbone_layers", "arch_layers",
           "known_arch"]


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
    from .features.planning import DEFAULT_LAYERS

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
    problems += check_data(config)
    return problems


# --------------------------------------------------------------------------------------------
# checks against the data (file names and events tables only; nothing is loaded)
# --------------------------------------------------------------------------------------------
_DATATYPE = {"fmri": "func", "eeg": "eeg"}


def _bids_root(config: dict, section: str):
    """The section's BIDS root when it is a readable BIDS folder the checks apply to, else None
    (empty = simulated; a missing folder is :func:`neuroattn.config.check_bids_root`'s error)."""
    from pathlib import Path

    sec = config.get(section) or {}
    mods = config.get("modalities") or ["fmri", "eeg"]
    fmt = sec.get("format", "bids")
    if section not in mods or not sec.get("bids_root") or fmt not in ("bids", "fmriprep"):
        return None
    if section == "eeg" and fmt != "bids":
        return None
    root = Path(str(sec["bids_root"])).expanduser()
    return root if (root / "dataset_description.json").is_file() else None


def _data_files(root, subject: str, datatype: str):
    return [*root.glob(f"sub-{subject}/{datatype}/sub-{subject}_*"),
            *root.glob(f"sub-{subject}/ses-*/{datatype}/sub-{subject}_*")]


def _entity(name: str, key: str):
    for part in name.split("_"):
        if part.startswith(f"{key}-"):
            return part[len(key) + 1:]
    return None


def _data_tasks(root, subjects, datatype: str) -> dict:
    """``{task: [subjects with files of it]}`` from the file names under ``<datatype>/`` (bold /
    eeg recordings or their events: an fMRIPrep raw root may hold the events only)."""
    tasks: dict = {}
    for s in subjects:
        for f in _data_files(root, s, datatype):
            t = _entity(f.name, "task")
            if t:
                tasks.setdefault(t, set()).add(s)
    return {t: sorted(v) for t, v in sorted(tasks.items())}


def _shown(values, n: int = 20) -> str:
    values = list(values)
    return ", ".join(values[:n]) + (f", ... ({len(values)} in all)" if len(values) > n else "") if values else "none"


def _eeg_classes(config: dict, root, subjects, task: str, problems: list) -> None:
    """Each class of an explicit ``eeg.events`` must have a ``trial_type`` in every subject's events."""
    import pandas as pd

    events = (config.get("eeg") or {}).get("events")
    if not isinstance(events, (list, dict)):
        return  # auto: every trial type found
    mapping = ({str(k): [str(v)] if isinstance(v, (str, int)) else [str(x) for x in v] for k, v in events.items()}
               if isinstance(events, dict) else {str(e): [str(e)] for e in events})
    absent: dict = {}  # class -> [(subject, its events files, the trial types they hold)]
    for s in subjects:
        files = sorted(f for f in _data_files(root, s, "eeg")
                       if f.name.endswith("_events.tsv") and _entity(f.name, "task") == task)
        if not files:
            continue  # the epoching stage names the missing events file
        seen: set = set()
        for f in files:
            try:
                seen |= set(pd.read_csv(f, sep="\t", usecols=["trial_type"], dtype=str)["trial_type"].dropna())
            except (ValueError, OSError):
                return  # an unreadable table is the epoching stage's error, with its own message
        for label, types in mapping.items():
            if not set(types) & seen:
                absent.setdefault(label, []).append((s, files, seen))
    for i, (label, types) in enumerate(mapping.items()):
        if label not in absent:
            continue
        key = f"eeg.events.{label}" if isinstance(events, dict) else f"eeg.events.{i}"
        what = f"class {label!r}" + (f" (trial_type {', '.join(map(repr, types))})" if isinstance(events, dict) else "")
        first, files, seen = absent[label][0]
        problems.append(f"config key {key}: {what} is absent from the events of "
                        f"{_shown(f'sub-{s}' for s, _, _ in absent[label])} (e.g. "
                        f"{_shown(str(f.relative_to(root)) for f in files)}: trial types "
                        f"{_shown(sorted(seen))})")


def check_data(config: dict) -> list[str]:
    """Problems of ``config`` against its BIDS datasets (empty when none, or no root is set): a
    task or configured subject absent from the data, a subject without a recording of the task,
    and EEG classes absent from a subject's events tables. Each names its key, the value and the
    ones the data have."""
    problems: list[str] = []
    for section, datatype in _DATATYPE.items():
        root = _bids_root(config, section)
        if root is None:
            continue
        sec = config[section]
        have = sorted(p.name[4:] for p in root.glob("sub-*") if p.is_dir())
        configured = [str(x) for x in sec.get("subjects") or []]
        for i, s in enumerate(configured):
            if s not in have and not s.startswith("sub-"):  # a sub- prefix is its own problem
                problems.append(f"config key {section}.subjects.{i}: subject {s!r} is not in {root} "
                                f"(its subjects: {_shown(have)})")
        subjects = [s for s in configured if s in have] or ([] if configured else have)
        tasks = _data_tasks(root, subjects, datatype)
        task = str(sec.get("task", ""))
        if task == "auto":
            if len(tasks) != 1:
                continue  # resolve_task names the tasks
            task = next(iter(tasks))
        if task not in tasks:
            problems.append(f"config key {section}.task: {task!r} is not in {root} "
                            f"(tasks with {datatype}/ data: {_shown(tasks)})")
            continue
        lacking = [s for s in subjects if s not in tasks[task]]
        if lacking:
            key = f"{section}.subjects" + ("" if configured else " (empty: every subject)")
            problems.append(f"config key {key}: sub-{', sub-'.join(lacking)} of {root} have no {datatype}/ "
                            f"recording of task {task!r} (those with one: {_shown(tasks[task])}); list those "
                            f"under {section}.subjects")
        if section == "eeg":
            _eeg_classes(config, root, [s for s in subjects if s in tasks[task]], task, problems)
    return problems


# --------------------------------------------------------------------------------------------
# what a trained backbone learns, decided before any job
# --------------------------------------------------------------------------------------------
def backbone_objective(config: dict, stimuli_tsv=None) -> tuple[str, str]:
    """The objective of ``weights: train`` backbones (``backbone_training.objective``, ``auto``
    resolved) and why, from the stimulus table.

    Parameters
    ----------
    config : dict
        The validated configuration.
    stimuli_tsv : path, optional
        The dataset's ``stimuli/stimuli.tsv`` (None: simulated stimuli, which carry categories; a
        path that does not exist: a dataset without the table, hence without categories).

    Returns
    -------
    (str, str)
        ``category`` or ``rotation``, and the reason (:func:`neuroattn.features.training.choose_objective`).

    Raises
    ------
    ValueError
        Naming the key: ``category`` without categories in the data, or objective ``rotation``
        with a rotating ``regime`` of a trained backbone.
    """
    from pathlib import Path

    import pandas as pd

    from .features.planning import choose_objective

    objective = (config.get("backbone_training") or {}).get("objective", "auto")
    if stimuli_tsv is None:
        cats, source = ["simulated", "categories"], "the simulated stimuli"
    else:
        path = Path(stimuli_tsv)
        cats, source = None, f"{path} (absent)"  # no table: no categories
        if path.is_file():
            table = pd.read_csv(path, sep="\t", dtype=str)
            cats, source = (table["category"] if "category" in table.columns else None), str(path)
    try:
        chosen, why = choose_objective(objective, cats)
    except ValueError as exc:
        raise ValueError(f"config key backbone_training.objective: {exc} ({source})") from None
    if stimuli_tsv is None and chosen == "category":
        why = "the simulated stimuli carry categories"
    elif stimuli_tsv is not None and chosen == "rotation" and objective == "auto":
        why = (f"{source}: {why}" if Path(stimuli_tsv).is_file()
               else f"no {stimuli_tsv}, so no stimulus categories: label-free rotation prediction")
    for name, entry in sorted(((config.get("features") or {}).get("backbones") or {}).items()):
        if (entry or {}).get("weights") != "train":
            continue
        own = (entry or {}).get("training") or {}
        regime = own.get("regime", (config.get("backbone_training") or {}).get("regime", "standard"))
        if own.get("objective", chosen) == "rotation" and regime in ("rotation", "joint"):
            key = (f"features.backbones.{name}.training.regime" if "regime" in own else "backbone_training.regime")
            raise ValueError(f"config key {key}: {regime!r} rotates the images at random, which erases the label "
                             f"of the rotation objective ({why}); use standard or adversarial")
    return chosen, why
