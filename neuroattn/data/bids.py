"""BIDS discovery for fMRI: runs (bold, events, sidecar metadata, confounds) and ROI images.

Files are found with :func:`nilearn.interfaces.bids.get_bids_files` and matched on their parsed
entities (:func:`nilearn.interfaces.bids.parse_bids_filename`), so an optional ``ses-`` level,
optional ``run-`` entities and any task name work without hand-built paths. JSON sidecars follow
the BIDS inheritance principle: a ``task-<t>_bold.json`` at the dataset root applies to every
run, a file closer to the data with more entities overrides it key by key.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from nilearn.interfaces.bids import get_bids_files, parse_bids_filename

#: entities that name a run of one task (used to match events, sidecars and confounds to a bold file)
_RUN_ENTITIES = ("sub", "ses", "task", "acq", "ce", "rec", "dir", "run", "echo")
CONFOUNDS_PIPELINE = "fmriprep"
ROIS_PIPELINE = "rois"


@dataclass(frozen=True)
class FmriRun:
    """The files of one functional run.

    Attributes
    ----------
    subject, session, task, run : str
        BIDS labels ('' when the entity is absent).
    bold : Path
        The 4D NIfTI.
    events : Path
        Its ``_events.tsv``.
    sidecars : tuple of Path
        ``_bold.json`` files that apply to this run, least specific first.
    confounds : Path or None
        fMRIPrep-style ``desc-confounds_timeseries.tsv`` (or ``_regressors.tsv``), when present.
    """

    subject: str
    session: str
    task: str
    run: str
    bold: Path
    events: Path
    sidecars: tuple = ()
    confounds: Path | None = None

    @property
    def key(self) -> str:
        """A short readable name: ``ses-1_run-02`` style ('' parts left out)."""
        parts = [f"ses-{self.session}" if self.session else "", f"run-{self.run}" if self.run else ""]
        return "_".join(p for p in parts if p) or f"task-{self.task}"

    def metadata(self) -> dict:
        """The merged ``_bold.json`` metadata (BIDS inheritance: specific files override general ones)."""
        meta: dict = {}
        for path in self.sidecars:
            try:
                meta.update(json.loads(Path(path).read_text()))
            except (OSError, json.JSONDecodeError) as exc:
                raise ValueError(f"{path}: cannot read JSON sidecar ({exc})") from exc
        return meta

    def files(self) -> list[Path]:
        """Every input file of this run."""
        out = [self.bold, self.events, *self.sidecars]
        return out + ([self.confounds] if self.confounds else [])


def _entities(path) -> dict:
    ents = parse_bids_filename(str(path))["entities"]
    return {k: v for k, v in ents.items() if k in _RUN_ENTITIES}


def _applies(candidate: dict, target: dict) -> bool:
    """A sidecar/events/confounds file applies when its run entities are a subset of the target's."""
    return all(target.get(k) == v for k, v in candidate.items())


def _same_run(candidate: dict, target: dict) -> bool:
    return candidate == target


def _pick_one(paths, target: dict, what: str, bold) -> Path | None:
    matches = [Path(p) for p in paths if _same_run(_entities(p), target)]
    if len(matches) > 1:
        raise ValueError(f"{bold}: several {what} files match this run: {[str(m) for m in matches]}")
    return matches[0] if matches else None


def find_fmri_runs(root: str | Path, subject: str, task: str) -> list[FmriRun]:
    """Every functional run of ``subject`` for ``task``, sorted by session and run.

    Parameters
    ----------
    root : str or Path
        The BIDS dataset root.
    subject : str
        Subject label without ``sub-``.
    task : str
        Task label without ``task-``.

    Returns
    -------
    list of FmriRun

    Raises
    ------
    FileNotFoundError
        No bold file for this subject and task, or a bold file without its events.
    """
    root = Path(root)
    bolds = [
        p for p in get_bids_files(root, file_tag="bold", file_type="nii*", sub_label=subject,
                                  modality_folder="func", filters=[("task", task)])
        if parse_bids_filename(p)["entities"].get("task") == task
    ]
    if not bolds:
        raise FileNotFoundError(f"{root}: no sub-{subject}/[ses-*/]func/*task-{task}*_bold.nii[.gz] file")
    events = get_bids_files(root, file_tag="events", file_type="tsv", sub_label=subject, modality_folder="func")
    # sidecars: subject-level files and dataset-level ones (inheritance principle)
    jsons = get_bids_files(root, file_tag="bold", file_type="json", sub_label=subject, modality_folder="func")
    jsons += get_bids_files(root, file_tag="bold", file_type="json", sub_folder=False)
    jsons += get_bids_files(root, file_tag="bold", file_type="json", sub_label=subject, modality_folder="")
    conf_root = root / "derivatives" / CONFOUNDS_PIPELINE
    confounds = []
    if conf_root.is_dir():
        for tag in ("timeseries", "regressors"):
            confounds += get_bids_files(conf_root, file_tag=tag, file_type="tsv", sub_label=subject,
                                        modality_folder="func", filters=[("desc", "confounds")])
    runs = []
    for bold in bolds:
        ents = _entities(bold)
        ev = _pick_one(events, ents, "events", bold)
        if ev is None:
            raise FileNotFoundError(f"{bold}: no matching _events.tsv for this run")
        side = sorted({Path(p) for p in jsons if _applies(_entities(p), ents)},
                      key=lambda p: (len(_entities(p)), len(p.parts)))
        runs.append(FmriRun(
            subject=subject, session=ents.get("ses") or "", task=task, run=ents.get("run") or "",
            bold=Path(bold), events=ev, sidecars=tuple(side),
            confounds=_pick_one(confounds, ents, "confounds", bold),
        ))
    return sorted(runs, key=lambda r: (r.session, _run_order(r.run), str(r.bold)))


def _run_order(run: str):
    return (0, int(run), "") if run.isdigit() else (1, 0, run)


def find_roi_files(root: str | Path, subject: str) -> tuple[Path, Path]:
    """The ROI label image (``desc-rois_dseg.nii[.gz]``) of ``subject`` and its TSV.

    Looked up under ``<root>/derivatives/rois`` (``anat/``, with or without a session level).

    Raises
    ------
    FileNotFoundError
        When no dseg image is found, or the image has no ``.tsv`` next to it.
    ValueError
        When several dseg images match.
    """
    droot = Path(root) / "derivatives" / ROIS_PIPELINE
    imgs = get_bids_files(droot, file_tag="dseg", file_type="nii*", sub_label=subject,
                          modality_folder="anat", filters=[("desc", "rois")]) if droot.is_dir() else []
    if not imgs:
        raise FileNotFoundError(f"{droot}: no sub-{subject}/[ses-*/]anat/sub-{subject}*_desc-rois_dseg.nii[.gz]")
    if len(imgs) > 1:
        raise ValueError(f"{droot}: several ROI images for sub-{subject}: {imgs}")
    img = Path(imgs[0])
    stem = img.name.split(".", 1)[0]
    tsvs = [Path(p) for p in get_bids_files(droot, file_tag="dseg", file_type="tsv", sub_label=subject,
                                               modality_folder="anat", filters=[("desc", "rois")])
            if Path(p).name.split(".", 1)[0] == stem]
    if not tsvs:
        raise FileNotFoundError(f"{img}: ROI image without its label table {stem}.tsv (columns index, name[, hemi])")
    return img, tsvs[0]


def stimuli_dir(root: str | Path) -> Path:
    """The ``stimuli/`` folder at the dataset root."""
    return Path(root) / "stimuli"
