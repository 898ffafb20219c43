"""Adapters from the released layouts of real datasets to neuroattn's contracts.

fMRI adapters give a :class:`~neuroattn.data.betas.Betas` (packaged as
``neuroattn.data.fmri.SubjectBetas`` by their ``preprocess_subject``, written with
``neuroattn.data.fmri.write_subject``) and write the stimuli as PNGs for the feature stage:

=============  ================================================================================
``nsd``        :mod:`.nsd`: Natural Scenes Dataset session betas, design, ROI volumes, 73k brick
``algonauts``  :mod:`.algonauts`: Algonauts 2023 challenge folders (hemispheres, challenge ROIs)
``fmriprep``   :mod:`.fmriprep`: fMRIPrep derivatives (preproc bold, brain mask, confounds) as
               input to the single-trial GLM of ``neuroattn.data.fmri``
=============  ================================================================================

EEG adapters give ``(mne.Epochs, table)`` exactly like ``neuroattn.data.eeg.preprocess_subject``
(written with ``neuroattn.data.eeg.write_epochs``, read with ``neuroattn.data.eeg.load_epochs``):

=============  ================================================================================
``bnci2a``     :mod:`.bnci2a`: BCI Competition IV 2a GDF files + evaluation labels (.mat)
``eegmmidb``   :mod:`.eegmmidb`: PhysioNet EEG Motor Movement/Imagery EDF files
``moabb``      :mod:`.moabb`: any MOABB motor-imagery dataset (optional extra ``moabb``)
=============  ================================================================================

Every format is one entry of :data:`FORMATS` (a :class:`neuroattn.registry.Registry`): its subject
reader (the factory), its config section (``fmri.adapter`` / ``eeg.adapter``), the modality, the
file marking a usable root, how subjects are found, its adapter options and their defaults, and
(fMRI) how its stimuli are written. The functions below are lookups in it; the schema's
``fmri.format`` / ``eeg.format`` enums list the same names (tests/test_formats_configs.py).

Adapter defaults have one home per format: ``nsd.ADAPTER_DEFAULTS`` and
``algonauts.ADAPTER_DEFAULTS`` (also the modules' own ``adapter_params``), the signature defaults
of ``fmriprep.find_fmriprep_runs``, ``bnci2a.preprocess_subject`` and
``eegmmidb.preprocess_subject``, and the ``moabb`` entry below. They are not in config.yaml: the
keys of ``<section>.adapter`` depend on ``<section>.format``, and a default ``adapter`` mapping in
config.yaml would be merged into every user's adapter section, whatever its format.

Submodules are imported on use (``from neuroattn.data.formats import nsd``).
"""
from __future__ import annotations

import inspect as _inspect
import re as _re
from pathlib import Path as _Path

from ...registry import Registry

__all__ = ["FORMATS", "FMRI_FORMATS", "EEG_FORMATS", "formats_of", "adapter_params", "list_subjects",
           "fmri_subject", "eeg_subject", "write_stimuli", "root_marker", "check_root"]

#: Every data format (fMRI and EEG): name -> subject reader, config section, what it needs.
FORMATS = Registry("data format")


def _signature_defaults(func, names) -> dict:
    """The defaults of ``func``'s parameters ``names`` (where such an adapter's defaults live)."""
    params = _inspect.signature(func).parameters
    return {n: params[n].default for n in names}


# ---------------------------------------------------------------------------------------------
# subject readers: fMRI ones take (root, subject, task, *, glm, keep_other, seed, adapter) and
# return a neuroattn.data.fmri.SubjectBetas; EEG ones take (root, subject, cfg, adapter) and
# return (mne.Epochs, table). ``adapter`` arrives checked and completed by adapter_params.


def _read_bids_fmri(root, subject, task, *, glm=None, keep_other=False, seed=0, adapter=None):
    from ..fmri import preprocess_subject

    return preprocess_subject(root, subject, task, glm=glm, keep_other=keep_other, seed=seed, fmriprep=None)


def _read_fmriprep(root, subject, task, *, glm=None, keep_other=False, seed=0, adapter=None):
    from ..fmri import preprocess_subject

    # None means "the default of find_fmriprep_runs" (its signature is this format's one home)
    fp = {k: v for k, v in (adapter or {}).items() if v is not None}
    return preprocess_subject(root, subject, task, glm=glm, keep_other=keep_other, seed=seed, fmriprep=fp)


def _released(module: str):
    """Reader of a released layout whose module exposes ``preprocess_subject(root, subject, adapter, task)``."""
    def read(root, subject, task, *, glm=None, keep_other=False, seed=0, adapter=None):
        from importlib import import_module

        mod = import_module(f".{module}", __name__)
        return mod.preprocess_subject(root, subject, {**(adapter or {}), "keep_other": bool(keep_other)}, task=task)
    read.__name__ = f"_read_{module}"
    return read


def _read_bids_eeg(root, subject, cfg=None, adapter=None):
    from ..eeg import preprocess_subject

    return preprocess_subject(root, subject, cfg)


def _read_bnci2a(root, subject, cfg=None, adapter=None):
    from .bnci2a import preprocess_subject

    return preprocess_subject(root, subject, cfg, **adapter)


def _read_eegmmidb(root, subject, cfg=None, adapter=None):
    from .eegmmidb import preprocess_subject

    return preprocess_subject(root, subject, cfg, **adapter)


def _read_moabb(root, subject, cfg=None, adapter=None):
    from .moabb import preprocess_subject

    return preprocess_subject(adapter["dataset"], subject, cfg)


def _moabb_subjects(root, adapter):
    from .moabb import get_dataset

    return [f"{s:02d}" for s in get_dataset(adapter["dataset"]).subject_list]


# ---------------------------------------------------------------------------------------------
# stimuli writers (fMRI formats without their own <root>/stimuli)


def _nsd_stimuli(root, subjects, folder, adapter):
    import numpy as np

    from . import nsd

    p = nsd.adapter_params(adapter)
    design = nsd.read_expdesign(nsd.expdesign_path(root))
    idx = np.unique(np.concatenate([
        design.trial_images(s, list(nsd.session_files(root, s, p["space"], p["betas"], p["sessions"])))
        for s in subjects]))
    return nsd.write_stimuli(nsd.stimuli_path(root), nsd.image_name(idx), folder)


def _algonauts_stimuli(root, subjects, folder, adapter):
    from . import algonauts

    return sorted({p for s in subjects for p in algonauts.write_stimuli(root, s, folder)})


def _defaults(module: str, attr: str = "ADAPTER_DEFAULTS", drop=("keep_other",)):
    """A module's adapter defaults, read when needed (``keep_other`` comes from ``fmri.keep_other``)."""
    def get():
        from importlib import import_module

        d = dict(getattr(import_module(f".{module}", __name__), attr))
        return {k: v for k, v in d.items() if k not in drop}
    return get


def _fmriprep_defaults():
    from .fmriprep import find_fmriprep_runs

    return _signature_defaults(find_fmriprep_runs, ("space", "res", "fmriprep_dir"))


def _bnci2a_defaults():
    from .bnci2a import preprocess_subject

    return _signature_defaults(preprocess_subject, ("drop_rejected",))


def _eegmmidb_defaults():
    from .eegmmidb import preprocess_subject

    return _signature_defaults(preprocess_subject, ("runs",))


_SUB = ("sub-*", r"sub-([a-zA-Z0-9]+)")
FORMATS.register("bids", _read_bids_fmri, config_section="fmri.adapter", produces=("betas",), modality="fmri",
                 marker="dataset_description.json", layout="a BIDS dataset", subjects=_SUB,
                 adapter_defaults=dict, stimuli=None)
FORMATS.register("nsd", _released("nsd"), config_section="fmri.adapter", produces=("betas",), modality="fmri",
                 marker="nsddata/experiments/nsd/nsd_expdesign.mat", layout="the NSD release root",
                 subjects=("nsddata_betas/ppdata/subj*", r"subj(\d+)"), adapter_defaults=_defaults("nsd"),
                 stimuli=_nsd_stimuli)
FORMATS.register("algonauts", _released("algonauts"), config_section="fmri.adapter", produces=("betas",),
                 modality="fmri", marker=None, layout="the Algonauts 2023 folder holding subjXX/",
                 subjects=("subj*", r"subj(\d+)"), adapter_defaults=_defaults("algonauts"), stimuli=_algonauts_stimuli)
FORMATS.register("fmriprep", _read_fmriprep, config_section="fmri.adapter", produces=("betas",), modality="fmri",
                 marker="dataset_description.json",
                 layout="a raw BIDS dataset (fMRIPrep outputs in derivatives/fmriprep)", subjects=_SUB,
                 adapter_defaults=_fmriprep_defaults, stimuli=None)
# EEG formats: "bids" is shared with fMRI (one name, one marker); its EEG reader is meta["eeg_reader"]
FORMATS.register("bnci2a", _read_bnci2a, config_section="eeg.adapter", produces=("epochs",), modality="eeg",
                 marker=None, layout="the folder with A0xT.gdf / A0xE.gdf", subjects=("A*.gdf", r"A(\d+)[TE]\.gdf"),
                 adapter_defaults=_bnci2a_defaults)
FORMATS.register("eegmmidb", _read_eegmmidb, config_section="eeg.adapter", produces=("epochs",), modality="eeg",
                 marker=None, layout="the folder holding SXXX/SXXXRYY.edf", subjects=("S*", r"S(\d{3})"),
                 adapter_defaults=_eegmmidb_defaults)
FORMATS.register("moabb", _read_moabb, config_section="eeg.adapter", produces=("epochs",), modality="eeg",
                 marker=None, layout="nothing (MOABB manages its own cache)", subjects=_moabb_subjects,
                 adapter_defaults=lambda: {"dataset": "BNCI2014_001"}, local_root=False)
FORMATS["bids"].meta.update(eeg_reader=_read_bids_eeg, eeg_adapter_defaults=dict)


def formats_of(modality: str) -> tuple:
    """The format names of ``modality`` (``"fmri"`` or ``"eeg"``), in registration order."""
    return tuple(n for n in FORMATS if FORMATS[n].meta["modality"] == modality or
                 (n == "bids" and modality == "eeg"))


FMRI_FORMATS = formats_of("fmri")
EEG_FORMATS = formats_of("eeg")


def _check(fmt, allowed, section):
    if fmt not in allowed:
        raise ValueError(f"config {section}.format must be one of {list(allowed)}, got {fmt!r}")


def adapter_params(fmt: str, adapter: dict | None, modality: str | None = None) -> dict:
    """``<section>.adapter`` laid over format ``fmt``'s defaults; unknown keys are refused, naming
    them and the allowed ones (never dropped)."""
    _check(fmt, tuple(FORMATS), "fmri/eeg")
    meta = FORMATS[fmt].meta
    eeg_bids = fmt == "bids" and modality == "eeg"
    defaults = (meta["eeg_adapter_defaults"] if eeg_bids else meta["adapter_defaults"])()
    adapter = dict(adapter or {})
    unknown = sorted(set(adapter) - set(defaults))
    if unknown:
        section = "eeg.adapter" if eeg_bids else FORMATS[fmt].config_section
        raise KeyError(f"{section}: unknown key(s) {unknown} for format {fmt!r} "
                       f"(allowed: {sorted(defaults) if defaults else 'none'})")
    return {**defaults, **adapter}


def list_subjects(fmt: str, root, adapter: dict | None = None) -> list[str]:
    """Subject labels found in ``root`` for a data format (what ``<section>.subjects: []`` means).

    ``bids``/``fmriprep``: ``sub-*`` folders; ``nsd``: ``nsddata_betas/ppdata/subjXX``;
    ``algonauts``: ``subjXX``; ``bnci2a``: ``A0xT.gdf``/``A0xE.gdf``; ``eegmmidb``: ``SXXX``;
    ``moabb``: the dataset's ``subject_list`` (needs moabb).
    """
    _check(fmt, tuple(FORMATS), "fmri/eeg")
    how = FORMATS[fmt].meta["subjects"]
    if callable(how):
        return how(root, adapter_params(fmt, adapter))
    root = _Path(root) if root else None
    glob, rx = how
    found = set()
    for p in root.glob(glob) if root is not None and root.is_dir() else []:
        m = _re.fullmatch(rx, p.name)
        if m:
            found.add(m.group(1))
    if not found:
        raise FileNotFoundError(f"{root}: no subject found for format {fmt!r} (looked for {glob})")
    return sorted(found)


def fmri_subject(fmt: str, root, subject: str, task: str, *, glm=None, keep_other=False, seed=0, adapter=None):
    """One subject's ``SubjectBetas`` for any fMRI format (write it with ``fmri.write_subject``)."""
    _check(fmt, FMRI_FORMATS, "fmri")
    return FORMATS[fmt].factory(root, subject, task, glm=glm, keep_other=keep_other, seed=seed,
                                adapter=adapter_params(fmt, adapter))


def eeg_subject(fmt: str, root, subject: str, cfg: dict | None = None, adapter: dict | None = None):
    """One subject's ``(mne.Epochs, table)`` for any EEG format (write with ``eeg.write_epochs``)."""
    _check(fmt, EEG_FORMATS, "eeg")
    reader = FORMATS[fmt].meta["eeg_reader"] if fmt == "bids" else FORMATS[fmt].factory
    return reader(root, subject, cfg, adapter_params(fmt, adapter, modality="eeg"))


def write_stimuli(fmt: str, root, subjects, folder, adapter: dict | None = None) -> list:
    """Put the stimuli of ``subjects`` as PNGs in ``folder`` (nsd: from the brick; algonauts: copies).

    NSD: the images of the sessions that ``adapter`` selects (default every session file found).
    ``bids``/``fmriprep`` datasets already hold ``<root>/stimuli``: nothing is written. Unknown
    adapter keys are refused.
    """
    _check(fmt, FMRI_FORMATS, "fmri")
    writer = FORMATS[fmt].meta["stimuli"]
    if writer is None:
        return []
    return writer(root, subjects, folder, adapter_params(fmt, adapter))


def root_marker(fmt: str, root):
    """The path a workflow rule can depend on for a dataset root (a file, or the root folder itself).

    ``None`` for ``moabb`` (no local root).
    """
    _check(fmt, tuple(FORMATS), "fmri/eeg")
    meta = FORMATS[fmt].meta
    if not meta.get("local_root", True):
        return None
    rel = meta["marker"]
    return _Path(root) / rel if rel else _Path(root)


def check_root(fmt: str, root) -> None:
    """Raise ``FileNotFoundError`` naming the root and the expected layout when it is not usable."""
    marker = root_marker(fmt, root)
    if marker is None:
        return
    layout = FORMATS[fmt].meta["layout"]
    if not root or not _Path(root).is_dir():
        raise FileNotFoundError(f"{root}: folder not found (expected {layout}, format {fmt!r})")
    if not marker.exists():
        raise FileNotFoundError(f"{root}: no {marker.name} (expected {layout}, format {fmt!r})")
    list_subjects(fmt, root)
