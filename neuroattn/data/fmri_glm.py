"""Single-trial GLM of one run (nilearn): the LSA design, LSA / LSS fits inside the ROI mask, and the
per-session z-scoring of the betas. Parameters come from ``fmri.glm`` of config/config.yaml
(:func:`glm_params`)."""
from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pandas as pd

from ..config import with_defaults
from .formats.fmriprep import expand_confounds


def glm_params(glm: dict | None) -> dict:
    """``fmri.glm`` of the config laid over its defaults in config/config.yaml; unknown keys are
    refused (naming the allowed ones), confound presets (``motion6``, ``motion24``, ...) expanded."""
    out = with_defaults(glm, "fmri", "glm")
    if out["method"] not in ("lsa", "lss"):
        raise ValueError(f"fmri.glm.method must be 'lsa' or 'lss', got {out['method']!r}")
    out["confounds"] = expand_confounds(out["confounds"] or [])  # presets: motion6, motion24, acompcor...
    return out


def trial_design(events: pd.DataFrame, n_scans: int, tr: float, glm: dict,
                 confounds: pd.DataFrame | None = None) -> tuple[pd.DataFrame, list[str]]:
    """LSA design matrix of one run: one column per trial (``trial0000``...), nuisance conditions,
    confounds, drift and constant.

    Returns
    -------
    design : DataFrame (n_scans, n_regressors)
    trial_columns : list of str
        The trial columns, in the order of the trials in ``events``.
    """
    from nilearn.glm.first_level import make_first_level_design_matrix

    ev = events.copy()
    trial_cols = [f"trial{i:04d}" for i in range(int(ev.is_trial.sum()))]
    ev["name"] = "nuis_" + ev.trial_type.astype(str)
    ev.loc[ev.is_trial, "name"] = trial_cols
    design = make_first_level_design_matrix(
        np.arange(n_scans) * tr,
        events=pd.DataFrame({"onset": ev.onset, "duration": ev.duration, "trial_type": ev.name}),
        hrf_model=glm["hrf_model"],
        drift_model=glm["drift_model"],
        high_pass=glm["high_pass"],
        add_regs=None if confounds is None else confounds.to_numpy(),
        add_reg_names=None if confounds is None else [f"conf_{c}" for c in confounds.columns],
    )
    return design, trial_cols


def _theta(labels: np.ndarray, results: dict, rows) -> np.ndarray:
    """Rows ``rows`` of the GLM parameters, assembled over nilearn's AR(1) label groups."""
    out = np.empty((len(rows), len(labels)), dtype=np.float32)
    for lab, res in results.items():
        sel = labels == lab
        out[:, sel] = res.theta[rows]
    return out


def fit_trial_betas(img: nib.Nifti1Image, design: pd.DataFrame, trial_cols: list[str],
                    mask_img: nib.Nifti1Image, glm: dict, seed: int = 0) -> np.ndarray:
    """Single-trial betas of one run inside ``mask_img``.

    Parameters
    ----------
    img : Nifti1Image
        4D bold (in memory).
    design : DataFrame
        The LSA design from :func:`trial_design`.
    trial_cols : list of str
        Trial columns of ``design``.
    mask_img : Nifti1Image
        Voxels to fit; the output's voxel order is the C order of the mask.
    glm : dict
        :func:`glm_params` output (``method`` lsa/lss, ``smoothing_fwhm``, ``noise_model``...).
    seed : int

    Returns
    -------
    ndarray (n_trials, n_voxels) float32
    """
    from nilearn.glm.first_level import FirstLevelModel, mean_scaling, run_glm

    # HRF, drift and TR live in ``design`` (trial_design); the model masks, smooths, mean-scales
    # (percent signal change) and fits the noise model
    model = FirstLevelModel(
        smoothing_fwhm=glm["smoothing_fwhm"], noise_model=glm["noise_model"], mask_img=mask_img,
        signal_scaling=0, minimize_memory=True, random_state=seed, reports=False,
    )
    cols = list(design.columns)
    rows = [cols.index(c) for c in trial_cols]

    def fit(dm):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*(will be ignored|Given mask will be used).*")
            model.fit(img, design_matrices=dm)

    if glm["method"] == "lsa":
        fit(design)
        return _theta(model.labels_[0], model.results_[0], rows)
    # LSS: the same masked, mean-scaled data; per trial a design [trial, all other trials, nuisance]
    fit(design.drop(columns=trial_cols))  # nuisance-only fit sets up the masker
    Y, _ = mean_scaling(model.masker_.transform(img), 0)
    X = design.to_numpy()
    trials = X[:, rows]
    nuisance = np.delete(X, rows, axis=1)
    total = trials.sum(axis=1, keepdims=True)
    out = np.empty((len(rows), Y.shape[1]), dtype=np.float32)
    for i in range(len(rows)):
        Xi = np.column_stack([trials[:, i], total[:, 0] - trials[:, i], nuisance])
        labels, results = run_glm(Y, Xi, noise_model=glm["noise_model"], random_state=seed)
        out[i] = _theta(labels, results, [0])[0]
    return out


def zscore_by_session(betas: np.ndarray, sessions: np.ndarray) -> np.ndarray:
    """Z-score each voxel's trial betas within each session (NSD); constant voxels become 0."""
    out = np.empty_like(betas, dtype=np.float32)
    for s in np.unique(sessions):
        idx = sessions == s
        b = betas[idx].astype(np.float64)
        sd = b.std(axis=0)
        out[idx] = np.where(sd > 0, (b - b.mean(axis=0)) / np.where(sd > 0, sd, 1.0), 0.0)
    return out
