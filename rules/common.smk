# Shared set-up: config validation, subjects, output paths. Imported by the Snakefile first.
import os
import sys
from pathlib import Path

sys.path.insert(0, workflow.basedir)
from neuroattn.config import ConfigError, check_bids_root, validate_config

try:
    validate_config(config)
    from neuroattn.data import formats

    # modalities: the parts the workflow runs ([eeg]: no fMRI rule is planned, and vice versa)
    MODALITIES = list(config.get("modalities") or ["fmri", "eeg"])
    FMRI_FORMAT = config["fmri"].get("format", "bids")
    EEG_FORMAT = config["eeg"].get("format", "bids")
    FMRI_ROOT = check_bids_root(config["fmri"]["bids_root"], "fmri") if FMRI_FORMAT == "bids" and "fmri" in MODALITIES else None
    EEG_ROOT = check_bids_root(config["eeg"]["bids_root"], "eeg") if EEG_FORMAT == "bids" and "eeg" in MODALITIES else None
    for _sec, _fmt in (("fmri", FMRI_FORMAT), ("eeg", EEG_FORMAT)):
        if _sec not in MODALITIES:
            continue
        if _fmt != "bids":  # a released layout (neuroattn.data.formats): its root is required
            _root = config[_sec]["bids_root"]
            if not _root and _fmt != "moabb":
                raise ConfigError(f"config key {_sec}.bids_root: empty, but {_sec}.format {_fmt!r} needs the dataset's folder")
            try:
                formats.check_root(_fmt, Path(_root).expanduser() if _root else _root)
            except FileNotFoundError as exc:
                raise ConfigError(f"config key {_sec}.bids_root: {exc}")
    if FMRI_FORMAT != "bids" and "fmri" in MODALITIES:
        FMRI_ROOT = Path(config["fmri"]["bids_root"]).expanduser()
    if EEG_FORMAT != "bids" and "eeg" in MODALITIES:
        EEG_ROOT = Path(config["eeg"]["bids_root"] or ".").expanduser()
    # task: auto = the dataset's only task (neuroattn.data.eeg.resolve_task; several: an error listing them)
    for _sec, _root, _fmt in (("fmri", FMRI_ROOT, FMRI_FORMAT), ("eeg", EEG_ROOT, EEG_FORMAT)):
        if config[_sec]["task"] != "auto" or _sec not in MODALITIES:
            continue
        if _root is None:
            raise ConfigError(f"config key {_sec}.task: 'auto' reads the task from a dataset, but {_sec}.bids_root "
                              "is empty (simulated data); name the task")
        if _fmt in ("bids", "fmriprep"):
            from neuroattn.data.eeg import resolve_task

            config[_sec]["task"] = resolve_task(_root, "auto", _sec)
    if FMRI_ROOT is None and "fmri" in MODALITIES:  # simulated data: check the simulator's own constraints up front
        from neuroattn.data.simulate import params_from_config

        params_from_config(config["simulate"], task=config["fmri"]["task"], seed=config["seed"])
except (ConfigError, KeyError, ValueError) as exc:
    raise WorkflowError(f"configuration refused: {exc}")

def _sorted(d):
    return {k: _sorted(d[k]) for k in sorted(d)} if isinstance(d, dict) else d


# Params are compared as text between runs: sort every mapping so that the order of keys in a
# config file never triggers a rerun.
_canonical = _sorted(config)
config.clear()
config.update(_canonical)

R = config["results_dir"].rstrip("/")
SIM = f"{R}/simulated"
FMRI_TASK = config["fmri"]["task"]
EEG_TASK = config["eeg"]["task"]


def _subjects(section, root, n_sim):
    """Configured subjects, else the simulated ones, else those the BIDS dataset has (mne-bids)."""
    if config[section].get("subjects"):
        return list(config[section]["subjects"])
    if root is None:
        return [f"{i:02d}" for i in range(1, n_sim + 1)]
    fmt = config[section].get("format", "bids")
    if fmt != "bids":
        return formats.list_subjects(fmt, root, config[section].get("adapter"))
    from neuroattn.data.eeg import list_subjects

    return list_subjects(root)


FMRI_SUBJECTS = _subjects("fmri", FMRI_ROOT, config["simulate"]["fmri"]["n_subjects"]) if "fmri" in MODALITIES else []
EEG_SUBJECTS = _subjects("eeg", EEG_ROOT, config["simulate"]["eeg"]["n_subjects"]) if "eeg" in MODALITIES else []
ALL_SUBJECTS = sorted(set(FMRI_SUBJECTS) | set(EEG_SUBJECTS))


wildcard_constraints:
    subject="[a-zA-Z0-9]+",
    backbone="[a-zA-Z0-9]+(_[a-zA-Z0-9]+)*",  # crossvit_joint: no "-" (BIDS entity separator)
    layer="[a-zA-Z0-9_.]+",
    model="[a-z0-9_]+",
    protocol="within_session|within|loso",


def fmri_root():
    """The fMRI BIDS root: the user's dataset, or the simulated one."""
    return str(FMRI_ROOT) if FMRI_ROOT else f"{SIM}/fmri"


def eeg_root():
    return str(EEG_ROOT) if EEG_ROOT else f"{SIM}/eeg"


def fmri_dataset(wildcards=None):
    """Input function: the simulated dataset (a rule output) or the user's dataset description
    (another format: the file or folder marking its root, neuroattn.data.formats.root_marker)."""
    if FMRI_FORMAT != "bids":
        return str(formats.root_marker(FMRI_FORMAT, fmri_root()))
    return f"{fmri_root()}/dataset_description.json"


def eeg_dataset(wildcards=None):
    if EEG_FORMAT != "bids":
        marker = formats.root_marker(EEG_FORMAT, eeg_root())
        return [] if marker is None else str(marker)
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


# Voxelwise r maps (rules/score.smk voxel_maps): only formats with volumetric bold runs.
VOXEL_MAP_FORMATS = ("bids", "fmriprep")


def voxel_map_files(subject):
    """The subject's per-encoder ``_stat-r_statmap.nii.gz`` (one per encoded layer x model)."""
    b = config["encode"]["backbone"]
    return [f"{R}/sub-{subject}/scores/sub-{subject}_backbone-{b}_layer-{layer}_model-{model}_stat-r_statmap.nii.gz"
            for layer in config["encode"]["layers"] for model in config["encode"]["models"]]


def subject_report_inputs(wildcards):
    """Everything one subject's report reads: scores, betas, attention maps, decoding, EEG."""
    s = wildcards.subject
    inputs = {"leaderboard": f"{R}/scores/leaderboard.tsv"}
    if s in FMRI_SUBJECTS:
        backbone = config["encode"]["backbone"]
        inputs["betas"] = [betas_path(s)]
        inputs["split"] = [f"{R}/splits/images.tsv"]
        inputs["features"] = [f"{R}/features/{backbone}/features.h5"]
        if "routing" in config["encode"]["models"]:
            inputs["routing"] = [
                f"{R}/sub-{s}/encode/sub-{s}_backbone-{backbone}_layer-{layer}_model-routing_pred.h5"
                for layer in config["encode"]["layers"]
            ]
            inputs["routing_truth"] = routing_truth_files(s)  # simulated only: maps vs the true routing
        if FMRI_FORMAT in VOXEL_MAP_FORMATS:  # rules/score.smk voxel_maps: per-voxel r on the bold reference
            inputs["voxel_maps"] = voxel_map_files(s)
            inputs["boldref"] = [f"{R}/sub-{s}/scores/sub-{s}_desc-boldref.nii.gz"]
        if len(FMRI_SUBJECTS) > 1:
            inputs["decode"] = [f"{R}/sub-{s}/decode/sub-{s}_model-incontext_pred.h5"]
    if s in EEG_SUBJECTS:
        inputs["epochs"] = [epochs_path(s)]
        inputs["epochs_table"] = [f"{R}/sub-{s}/eeg/sub-{s}_task-{EEG_TASK}_desc-epochs.tsv"]
        protocols = [p for p in config["eeg_models"]["protocols"] if p != "loso" or len(EEG_SUBJECTS) > 1]
        inputs["eeg_preds"] = [f"{R}/sub-{s}/eeg/models/sub-{s}_protocol-{p}_pred.h5" for p in protocols]
    return inputs


def backbone_cfg(name):
    return config["features"]["backbones"][name]


def backbone_weights(wildcards):
    """The trained weights (weights: train), the local weights file (a path), or none (null/random)."""
    w = backbone_cfg(wildcards.backbone).get("weights")
    if w == "train":
        return [f"{R}/features/{wildcards.backbone}/weights.pt"]
    return [w] if w and w != "random" else []


# Stimuli: BIDS datasets hold <root>/stimuli; NSD and Algonauts images are written by rule stimuli.
STIMULI_FORMATS = ("nsd", "algonauts")


def stimuli_dir():
    """The folder of the stimulus PNGs (+ stimuli.tsv) every stage reads the images from."""
    return f"{R}/stimuli" if FMRI_FORMAT in STIMULI_FORMATS else f"{fmri_root()}/stimuli"


def stimuli_input(wildcards=None):
    """Input function: the stimuli rule's table when an adapter writes the stimuli, else nothing."""
    return [f"{R}/stimuli/stimuli.tsv"] if FMRI_FORMAT in STIMULI_FORMATS else []


def fmri_dseg(subject):
    """The subject's ROI label volume for the report ('' when the format has none: no ROI map)."""
    if FMRI_FORMAT not in ("bids", "fmriprep"):
        return ""
    return f"{fmri_root()}/derivatives/rois/sub-{subject}/anat/sub-{subject}_desc-rois_dseg.nii.gz"


def check_backbone_weights():
    """weights: train learns stimulus categories, which NSD/Algonauts stimuli lack: refuse it up front."""
    if FMRI_FORMAT not in STIMULI_FORMATS or "fmri" not in MODALITIES:
        return
    for section in ("encode", "incontext"):
        name = config.get(section, {}).get("backbone")
        if name and backbone_cfg(name).get("weights") == "train":
            raise WorkflowError(
                f"configuration refused: config key features.backbones.{name}.weights: 'train' needs stimulus "
                f"categories, which fmri.format {FMRI_FORMAT!r} has not ({section}.backbone is {name!r}); "
                "give a local weights file, or 'random'"
            )


check_backbone_weights()


def resolve_backbone_objective():
    """What weights: train backbones learn, decided here from the stimulus table (before any job) and
    written into the config the rules read: category labels, or label-free rotation prediction."""
    trains = [n for n, b in config["features"]["backbones"].items() if b.get("weights") == "train"]
    if not trains or "fmri" not in MODALITIES or FMRI_FORMAT in STIMULI_FORMATS:
        return
    from neuroattn.config_checks import backbone_objective

    try:
        objective, why = backbone_objective(config, None if FMRI_ROOT is None else FMRI_ROOT / "stimuli" / "stimuli.tsv")
    except ValueError as exc:
        raise WorkflowError(f"configuration refused: {exc}")
    config["backbone_training"]["objective"] = objective
    print(f"neuroattn: backbone training objective {objective} for {', '.join(trains)}: {why}", file=sys.stderr)


resolve_backbone_objective()


def eeg_model_inputs(wildcards):
    subjects = EEG_SUBJECTS if wildcards.protocol == "loso" else [wildcards.subject]
    return [epochs_path(s) for s in subjects]


# Simulated EEG (empty eeg.bids_root, format bids): the simulator's truth lets rule eeg_truth check
# the channel maps. A real dataset has none.
EEG_SIMULATED = EEG_FORMAT == "bids" and EEG_ROOT is None


def routing_truth_files(subject=None):
    """The routing truth-check tables of one fMRI subject (else all) per encoded layer; none unless
    the fMRI data are simulated and the routing encoder is fitted."""
    if FMRI_ROOT is not None or "routing" not in config["encode"]["models"]:
        return []
    b = config["encode"]["backbone"]
    subjects = FMRI_SUBJECTS if subject is None else [subject]
    return [f"{R}/sub-{s}/encode/sub-{s}_backbone-{b}_layer-{layer}_model-routing_desc-truthcheck.tsv"
            for s in subjects for layer in config["encode"]["layers"]]


def fmri_truth_path(subject):
    """The simulation's truth file of an fMRI subject ("" on real data or for a subject without fMRI)."""
    if FMRI_ROOT is not None or subject not in FMRI_SUBJECTS:
        return ""
    return f"{fmri_root()}/derivatives/truth/sub-{subject}/sub-{subject}_desc-truth.h5"


def eeg_truth_files(wildcards=None):
    """The truth-check tables (simulated EEG): one subject's with ``wildcards``, else all; none on real data."""
    if not EEG_SIMULATED:
        return []
    subjects = EEG_SUBJECTS if wildcards is None else [s for s in EEG_SUBJECTS if s == wildcards.subject]
    return [f"{R}/sub-{s}/eeg/models/sub-{s}_desc-truthcheck.tsv" for s in subjects]
