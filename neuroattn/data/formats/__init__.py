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

Submodules are imported on use (``from neuroattn.data.formats import nsd``).
"""
FMRI_FORMATS = ("bids", "nsd", "algonauts", "fmriprep")
EEG_FORMATS = ("bids", "bnci2a", "eegmmidb", "moabb")

import re as _re
from pathlib import Path as _Path


def _check(fmt, allowed, section):
    if fmt not in allowed:
        raise ValueError(f"config {section}.format must be one of {list(allowed)}, got {fmt!r}")


def list_subjects(fmt: str, root, adapter: dict | None = None) -> list[str]:
    """Subject labels found in ``root`` for a data format (what ``<section>.subjects: []`` means).

    ``bids``/``fmriprep``: ``sub-*`` folders; ``nsd``: ``nsddata_betas/ppdata/subjXX``;
    ``algonauts``: ``subjXX``; ``bnci2a``: ``A0xT.gdf``/``A0xE.gdf``; ``eegmmidb``: ``SXXX``;
    ``moabb``: the dataset's ``subject_list`` (needs moabb).
    """
    _check(fmt, FMRI_FORMATS + EEG_FORMATS, "fmri/eeg")
    root = _Path(root) if root else None
    if fmt == "moabb":
        from .moabb import get_dataset

        return [f"{s:02d}" for s in get_dataset((adapter or {}).get("dataset", "BNCI2014_001")).subject_list]
    patterns = {
        "bids": ("sub-*", r"sub-([a-zA-Z0-9]+)"), "fmriprep": ("sub-*", r"sub-([a-zA-Z0-9]+)"),
        "nsd": ("nsddata_betas/ppdata/subj*", r"subj(\d+)"), "algonauts": ("subj*", r"subj(\d+)"),
        "bnci2a": ("A*.gdf", r"A(\d+)[TE]\.gdf"), "eegmmidb": ("S*", r"S(\d{3})"),
    }
    glob, rx = patterns[fmt]
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
    adapter = dict(adapter or {})
    from .. import fmri

    if fmt in ("bids", "fmriprep"):
        fp = None
        if fmt == "fmriprep":
            fp = {k: adapter[k] for k in ("space", "res", "fmriprep_dir") if adapter.get(k) is not None}
        return fmri.preprocess_subject(root, subject, task, glm=glm, keep_other=keep_other, seed=seed, fmriprep=fp)
    from importlib import import_module

    mod = import_module(f".{fmt}", __name__)
    return mod.preprocess_subject(root, subject, {**adapter, "keep_other": bool(keep_other)}, task=task)


def eeg_subject(fmt: str, root, subject: str, cfg: dict | None = None, adapter: dict | None = None):
    """One subject's ``(mne.Epochs, table)`` for any EEG format (write with ``eeg.write_epochs``)."""
    _check(fmt, EEG_FORMATS, "eeg")
    adapter = dict(adapter or {})
    if fmt == "bids":
        from ..eeg import preprocess_subject

        return preprocess_subject(root, subject, cfg)
    if fmt == "bnci2a":
        from .bnci2a import preprocess_subject

        return preprocess_subject(root, subject, cfg, drop_rejected=adapter.get("drop_rejected", True))
    if fmt == "eegmmidb":
        from .eegmmidb import IMAGERY_RUNS, preprocess_subject

        return preprocess_subject(root, subject, cfg, runs=adapter.get("runs", IMAGERY_RUNS))
    from .moabb import preprocess_subject

    return preprocess_subject(adapter.get("dataset", "BNCI2014_001"), subject, cfg)


def write_stimuli(fmt: str, root, subjects, folder, adapter: dict | None = None) -> list:
    """Put the stimuli of ``subjects`` as PNGs in ``folder`` (nsd: from the brick; algonauts: copies).

    NSD: the images of the sessions that ``adapter`` selects (default every session file found).
    ``bids``/``fmriprep`` datasets already hold ``<root>/stimuli``: nothing is written.
    """
    _check(fmt, FMRI_FORMATS, "fmri")
    if fmt == "nsd":
        import numpy as np

        from . import nsd

        p = nsd.adapter_params({k: v for k, v in (adapter or {}).items() if k in nsd.ADAPTER_DEFAULTS})
        design = nsd.read_expdesign(nsd.expdesign_path(root))
        idx = np.unique(np.concatenate([
            design.trial_images(s, list(nsd.session_files(root, s, p["space"], p["betas"], p["sessions"])))
            for s in subjects]))
        return nsd.write_stimuli(nsd.stimuli_path(root), nsd.image_name(idx), folder)
    if fmt == "algonauts":
        from . import algonauts

        return sorted({p for s in subjects for p in algonauts.write_stimuli(root, s, folder)})
    return []


#: Per format, the file (relative to the root) whose presence marks a usable root, and the layout.
_MARKERS = {
    "bids": ("dataset_description.json", "a BIDS dataset"),
    "fmriprep": ("dataset_description.json", "a raw BIDS dataset (fMRIPrep outputs in derivatives/fmriprep)"),
    "nsd": ("nsddata/experiments/nsd/nsd_expdesign.mat", "the NSD release root"),
    "algonauts": (None, "the Algonauts 2023 folder holding subjXX/"),
    "bnci2a": (None, "the folder with A0xT.gdf / A0xE.gdf"),
    "eegmmidb": (None, "the folder holding SXXX/SXXXRYY.edf"),
    "moabb": (None, "nothing (MOABB manages its own cache)"),
}


def root_marker(fmt: str, root):
    """The path a workflow rule can depend on for a dataset root (a file, or the root folder itself).

    ``None`` for ``moabb`` (no local root).
    """
    _check(fmt, tuple(_MARKERS), "fmri/eeg")
    if fmt == "moabb":
        return None
    rel = _MARKERS[fmt][0]
    return _Path(root) / rel if rel else _Path(root)


def check_root(fmt: str, root) -> None:
    """Raise ``FileNotFoundError`` naming the root and the expected layout when it is not usable."""
    marker = root_marker(fmt, root)
    if marker is None:
        return
    if not root or not _Path(root).is_dir():
        raise FileNotFoundError(f"{root}: folder not found (expected {_MARKERS[fmt][1]}, format {fmt!r})")
    if not marker.exists():
        raise FileNotFoundError(f"{root}: no {marker.name} (expected {_MARKERS[fmt][1]}, format {fmt!r})")
    list_subjects(fmt, root)
