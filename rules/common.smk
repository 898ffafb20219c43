# Shared set-up: config validation, subjects, output paths. Imported by the Snakefile first.
import os
import sys
from pathlib import Path

sys.path.insert(0, workflow.basedir)
from neuroattn.config import ConfigError, check_bids_root, validate_config

try:
    validate_config(config)
    FMRI_ROOT = check_bids_root(config["fmri"]["bids_root"], "fmri")
    EEG_ROOT = check_bids_root(config["eeg"]["bids_root"], "eeg")
except ConfigError as exc:
    raise WorkflowError(str(exc))

R = config["results_dir"].rstrip("/")
SIM = f"{R}/simulated"
FMRI_TASK = config["fmri"]["task"]
EEG_TASK = config["eeg"]["task"]


def _subjects(section, root, n_sim):
    if config[section].get("subjects"):
        return list(config[section]["subjects"])
    if root is None:
        return [f"{i:02d}" for i in range(1, n_sim + 1)]
    return sorted(p.name[4:] for p in root.glob("sub-*") if p.is_dir())


FMRI_SUBJECTS = _subjects("fmri", FMRI_ROOT, config["simulate"]["fmri"]["n_subjects"])
EEG_SUBJECTS = _subjects("eeg", EEG_ROOT, config["simulate"]["eeg"]["n_subjects"])
ALL_SUBJECTS = sorted(set(FMRI_SUBJECTS) | set(EEG_SUBJECTS))


wildcard_constraints:
    subject="[a-zA-Z0-9]+",
    backbone="[a-zA-Z0-9]+",
    layer="[a-zA-Z0-9_.]+",
    model="[a-z0-9_]+",
    protocol="within|loso",


def fmri_root():
    """The fMRI BIDS root: the user's dataset, or the simulated one."""
    return str(FMRI_ROOT) if FMRI_ROOT else f"{SIM}/fmri"


def eeg_root():
    return str(EEG_ROOT) if EEG_ROOT else f"{SIM}/eeg"


def fmri_dataset(wildcards=None):
    """Input function: the simulated dataset (a rule output) or the user's dataset description."""
    return f"{fmri_root()}/dataset_description.json"


def eeg_dataset(wildcards=None):
    return f"{eeg_root()}/dataset_description.json"


def betas_path(subject):
    return f"{R}/sub-{subject}/func/sub-{subject}_task-{FMRI_TASK}_desc-betas.h5"


def epochs_path(subject):
    return f"{R}/sub-{subject}/eeg/sub-{subject}_task-{EEG_TASK}_epo.fif"


# Each stage's .smk appends the score TSVs it produces; rules/score.smk gathers them all.
SCORE_FILES = []

# Resources: memory grows with each retry (profiles set retries); a GPU is asked for only when
# config device is cuda.
GPU = 1 if config["device"] == "cuda" else 0


def mem_mb(base):
    """Memory request that doubles on the second attempt, triples on the third."""
    return lambda wildcards, attempt: base * attempt
