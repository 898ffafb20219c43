"""fMRIPrep derivatives as input to the single-trial GLM of :mod:`neuroattn.data.fmri`.

Expected folder tree (raw BIDS for the events and stimuli, fMRIPrep's outputs for the data)::

    <bids_root>/stimuli/<images>
    <bids_root>/sub-01/[ses-1/]func/sub-01_[ses-1_]task-<t>_run-1_events.tsv   (+ raw _bold.json)
    <fmriprep>/sub-01/[ses-1/]func/
        sub-01_task-<t>_run-1_space-<space>[_res-<r>]_desc-preproc_bold.nii.gz   (+ .json)
        sub-01_task-<t>_run-1_space-<space>[_res-<r>]_desc-brain_mask.nii.gz
        sub-01_task-<t>_run-1_desc-confounds_timeseries.tsv
    <bids_root>/derivatives/rois/sub-01/anat/sub-01_desc-rois_dseg.nii.gz (+ .tsv)   ROIs in <space>

``<fmriprep>`` defaults to ``<bids_root>/derivatives/fmriprep``. The ROI image must be on the
grid of the preprocessed bold (same space and resolution). Events and raw sidecars are matched
to each preprocessed run by its run entities (sub, ses, task, acq, rec, dir, run, echo); the
derivative's own ``_bold.json`` (RepetitionTime) overrides the raw ones. The brain mask gives the
voxels kept as ``other`` when ``fmri.keep_other`` is on.

Confounds (``fmri.glm.confounds``) are fMRIPrep column names or presets (:data:`CONFOUND_PRESETS`)
expanded by :func:`expand_confounds`; a column missing from a run's TSV is an error naming the
file and the columns. ``n/a`` (first row of derivatives) is filled with the column mean.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..bids import FmriRun

log = logging.getLogger("neuroattn.formats.fmriprep")

_MOTION = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
#: Confound presets, expanded to fMRIPrep column names.
CONFOUND_PRESETS = {
    "motion6": _MOTION,
    # Friston 24: parameters, their temporal derivatives, and the squares of both
    "motion24": [f"{m}{s}" for m in _MOTION for s in ("", "_derivative1", "_power2", "_derivative1_power2")],
    # anatomical CompCor: the first five combined WM+CSF components
    "acompcor": [f"a_comp_cor_{i:02d}" for i in range(5)],
    "wm_csf": ["white_matter", "csf"],
    "global_signal": ["global_signal"],
    "fd": ["framewise_displacement"],
}
_RUN_ENTITIES = ("sub", "ses", "task", "acq", "ce", "rec", "dir", "run", "echo")


def expand_confounds(spec) -> list[str]:
    """Column names from a list of fMRIPrep columns and preset names (order kept, no duplicates).

    >>> expand_confounds(["motion6", "csf", "trans_x"])[:2], len(expand_confounds(["motion24"]))
    (['trans_x', 'trans_y'], 24)
    """
    out: list[str] = []
    for item in spec or []:
        for col in CONFOUND_PRESETS.get(str(item), [str(item)]):
            if col not in out:
                out.append(col)
    return out


def _bids_run(path) -> dict:
    from nilearn.interfaces.bids import parse_bids_filename

    ents = parse_bids_filename(str(path))["entities"]
    return {k: v for k, v in ents.items() if k in _RUN_ENTITIES}


def _entities(path) -> dict:
    from nilearn.interfaces.bids import parse_bids_filename

    return parse_bids_filename(str(path))["entities"]


@dataclass(frozen=True)
class FmriprepRun(FmriRun):
    """A preprocessed run: a :class:`neuroattn.data.bids.FmriRun` plus its brain mask."""

    mask: Path | None = None

    def files(self) -> list[Path]:
        return super().files() + ([self.mask] if self.mask else [])


def find_fmriprep_runs(bids_root, subject: str, task: str, space: str = "MNI152NLin2009cAsym",
                       res: str | None = None, fmriprep_dir: str | None = None) -> list[FmriprepRun]:
    """Every preprocessed run of ``subject``/``task`` in ``space``, with events, sidecars, confounds, mask.

    Parameters
    ----------
    bids_root : path
        Raw BIDS dataset (events, raw sidecars, ``stimuli/``).
    subject, task : str
        Labels without ``sub-`` / ``task-``.
    space : str
        fMRIPrep output space (``MNI152NLin2009cAsym``, ``T1w``, ...).
    res : str, optional
        ``res-`` entity when fMRIPrep wrote several resolutions.
    fmriprep_dir : path, optional
        fMRIPrep output folder (default ``<bids_root>/derivatives/fmriprep``).

    Raises
    ------
    FileNotFoundError
        No preprocessed bold in that space (the spaces found are listed), or a run without its
        events, brain mask or confounds file (named).
    """
    from nilearn.interfaces.bids import get_bids_files

    root = Path(bids_root)
    deriv = Path(fmriprep_dir) if fmriprep_dir else root / "derivatives" / "fmriprep"
    filters = [("task", task), ("space", space), ("desc", "preproc")] + ([("res", str(res))] if res else [])
    bolds = [p for p in get_bids_files(deriv, file_tag="bold", file_type="nii*", sub_label=subject,
                                        modality_folder="func", filters=filters)
             if _entities(p).get("task") == task and _entities(p).get("space") == space]
    if not bolds:
        found = sorted({_entities(p).get("space") for p in get_bids_files(
            deriv, file_tag="bold", file_type="nii*", sub_label=subject, modality_folder="func",
            filters=[("desc", "preproc")])} - {None})
        raise FileNotFoundError(f"{deriv}: no sub-{subject}/[ses-*/]func/*task-{task}*_space-{space}"
                                f"{'_res-' + str(res) if res else ''}*_desc-preproc_bold.nii[.gz] "
                                f"(spaces found for this subject: {found or 'none'})")
    keys = [tuple(sorted(_bids_run(b).items())) for b in bolds]
    if len(set(keys)) != len(keys):
        raise ValueError(f"{deriv}: several preprocessed bold files per run in space {space} "
                         f"(set fmri.adapter.res): {[Path(b).name for b in bolds]}")
    events = get_bids_files(root, file_tag="events", file_type="tsv", sub_label=subject, modality_folder="func")
    raw_json = get_bids_files(root, file_tag="bold", file_type="json", sub_label=subject, modality_folder="func")
    raw_json += get_bids_files(root, file_tag="bold", file_type="json", sub_folder=False)
    masks = get_bids_files(deriv, file_tag="mask", file_type="nii*", sub_label=subject, modality_folder="func",
                           filters=[("space", space), ("desc", "brain")])
    confs = []
    for tag in ("timeseries", "regressors"):
        confs += get_bids_files(deriv, file_tag=tag, file_type="tsv", sub_label=subject, modality_folder="func",
                                filters=[("desc", "confounds")])
    runs = []
    for bold in bolds:
        ents = _bids_run(bold)
        full = _entities(bold)

        def same(paths, extra=()):
            return [Path(p) for p in paths if _bids_run(p) == ents
                    and all(_entities(p).get(k) == full.get(k) for k in extra)]

        ev = same(events)
        if not ev:
            raise FileNotFoundError(f"{bold}: no matching raw _events.tsv under {root}")
        mask = same(masks, ("space", "res"))
        if not mask:
            raise FileNotFoundError(f"{bold}: no matching *_space-{space}_desc-brain_mask.nii[.gz] next to it")
        conf = same(confs)
        if not conf:
            raise FileNotFoundError(f"{bold}: no matching *_desc-confounds_timeseries.tsv next to it")
        side = sorted({Path(p) for p in raw_json if all(ents.get(k) == v for k, v in _bids_run(p).items())},
                      key=lambda p: (len(_bids_run(p)), len(p.parts)))
        own = Path(str(bold).split(".nii")[0] + ".json")
        if own.is_file():
            side.append(own)
        runs.append(FmriprepRun(subject=subject, session=ents.get("ses") or "", task=task, run=ents.get("run") or "",
                                bold=Path(bold), events=ev[0], sidecars=tuple(side), confounds=conf[0], mask=mask[0]))
    log.info("sub-%s: %d fMRIPrep run(s) in space %s", subject, len(runs), space)
    return sorted(runs, key=lambda r: (r.session, (0, int(r.run)) if r.run.isdigit() else (1, r.run), str(r.bold)))


def load_brain_mask(path, ref) -> np.ndarray:
    """The fMRIPrep brain mask as a boolean array on the grid of ``ref`` (checked)."""
    import nibabel as nib

    try:
        img = nib.load(path)
        data = np.squeeze(np.asarray(img.dataobj))
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"{path}: cannot read brain mask ({type(exc).__name__}: {exc})") from exc
    if data.shape != ref.shape[:3] or not np.allclose(img.affine, ref.affine, atol=1e-3):
        raise ValueError(f"{path}: brain mask grid {data.shape} differs from the bold grid {ref.shape[:3]}")
    return data > 0
