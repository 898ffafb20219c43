"""Simulated motor-imagery EEG written as a BIDS dataset, with its ground truth.

The recording follows the BCI Competition IV 2a design: 22 scalp channels (10-20 names), 250 Hz,
four imagined movements (``left_hand``, ``right_hand``, ``feet``, ``tongue``), one cue per trial
followed by 4 s of imagery. Sources are current dipoles in MNE's three-shell sphere head model
(:func:`mne.make_sphere_model` fitted to the ``standard_1020`` montage, lead fields from
:func:`mne.make_forward_dipole`); nothing is downloaded.

Signal model (per subject, session and run)
-------------------------------------------
* Sensorimotor sources, radially oriented with a subject-specific tilt, about 2.5 cm under their
  electrode: ``hand_left`` (under C3), ``hand_right`` (under C4), ``foot`` (deeper, under Cz),
  ``tongue_left`` / ``tongue_right`` (lateral-inferior, between C5/C6 and FT7/FT8). Each carries
  a mu (subject frequency in 9-12.5 Hz) and a beta (17-25 Hz) rhythm with slow spontaneous
  amplitude fluctuations.
* Event-related desynchronisation (ERD) during imagery: the source(s) of the imagined body part
  lose a fraction ``depth`` of their rhythm amplitude from ~0.5 s after the cue until the end of
  the 4-s trial (left hand: ``hand_right`` i.e. C4, with a weaker ipsilateral ERD; right hand:
  ``hand_left`` i.e. C3; feet: ``foot`` i.e. Cz, with a slight ERS of the hand areas; tongue:
  both tongue sources, with a slight hand-area ERS). A post-imagery beta rebound follows hand
  trials. Depth varies from trial to trial and a fraction of trials are lapses (no ERD).
* An occipital alpha source (not class related), ``n_background`` randomly placed dipoles with
  1/f (pink) time courses, white sensor noise, 50 Hz line noise, blinks (frontal pattern decaying
  with distance from Fpz), and rare electrode pops (large steps, for amplitude rejection).
* Subject-to-subject variation: source positions (6 mm jitter) and orientations, mu/beta
  frequencies, rhythm gains, ERD depth, SNR, blink rate. Session-to-session shifts: a 3-mm cap
  displacement, channel gains, mu frequency drift, background level and ERD depth changes.

Layout (``root``)
-----------------
``sub-<s>/ses-<k>/eeg/sub-<s>_ses-<k>_task-<t>_run-<r>_eeg.edf`` (or ``.vhdr``) with ``_eeg.json``,
``_channels.tsv``, ``_events.tsv`` (``trial_type`` = class name, one event per cue, duration 4 s)
written by :func:`mne_bids.write_raw_bids`; ``dataset_description.json``, ``participants.tsv``,
``README``. Ground truth (never read by models) in ``derivatives/truth/``:

* ``truth.json``: classes, nominal channels per class, and per subject the class-discriminative
  channels (top 3 by lead-field magnitude of the class's ERD sources), mu/beta frequencies,
  ERD depth, SNR (rhythm / background power in 8-30 Hz at C3/C4), per-session shifts.
* ``sources.tsv``: one row per subject, session and sensorimotor/alpha source: position and
  orientation (m, MNE head coordinates), frequencies, amplitude (nAm).
* ``sub-<s>/sub-<s>_ses-<k>_task-<t>_run-<r>_trials.tsv``: onset, trial_type, erd_depth (0 for a
  lapse), lapse, artifact (an electrode pop inside the trial window).

Everything is a function of ``seed`` (subject parameters do not depend on the number of
sessions, runs or trials), and the written files are byte-identical for the same arguments.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import warnings
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from .simulate_eeg_signal import (  # noqa: F401 (CHANNELS, simulate_run, standard_1020_name re-exported)
    CHANNELS, CLASSES, NOMINAL_CHANNELS, _SOURCES, _MEAS_DATE, TRIAL_DURATION, _info,
    _subject_params, _session_params, _lead_fields, simulate_run, discriminative_channels, standard_1020_name,
    montage_channels,
)

logger = logging.getLogger("neuroattn.simulate_eeg")


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _r(x, nd=6):
    return np.round(np.asarray(x, float), nd).tolist()


def simulate_eeg_dataset(
    root: str | os.PathLike,
    *,
    n_subjects: int = 4,
    n_sessions: int = 2,
    n_runs: int = 2,
    trials_per_class_per_run: int = 12,
    sfreq: float = 250.0,
    classes=CLASSES,
    trial_types: dict | None = None,
    task: str = "motorimagery",
    format: str = "edf",
    snr: float = 2.0,
    n_background: int = 30,
    artifact_rate: float = 0.02,
    seed: int = 0,
    mrcp: float = 0.0,
    n_channels: int = 22,
    session_shift: float = 1.0,
    gain_shift: float = 0.05,
) -> Path:
    """Simulate a motor-imagery EEG BIDS dataset at ``root`` (see the module docstring).

    Parameters
    ----------
    root : path
        Dataset root; created. An existing directory is replaced only if it is empty or holds
        a dataset this function wrote (its ``dataset_description.json`` names it).
    n_subjects, n_sessions, n_runs, trials_per_class_per_run : int
        Sizes; subjects are labelled ``01``, ``02``..., sessions and runs likewise.
    sfreq : float
        Sampling rate (Hz); must be an integer and above 100 Hz (50 Hz line noise).
    classes : sequence of str
        A subset of :data:`CLASSES`, in the order of the config's ``eeg.events``.
    trial_types : dict, optional
        ``trial_type`` written to events.tsv for each class (default: the class name).
    task : str
        BIDS task label.
    format : {"edf", "brainvision"}
        File format of the recordings.
    snr : float
        Mean ratio of sensorimotor-rhythm to background power in 8-30 Hz at C3/C4.
    n_background : int
        Number of 1/f background dipoles.
    artifact_rate : float
        Fraction of trials with an electrode pop (rejected by amplitude thresholds).
    seed : int
        Random seed; the same arguments give byte-identical files.
    mrcp : float
        Peak of the movement-related cortical potential (a slow negative shift of the class's
        motor sources around the cue, phase-locked) relative to the rhythm amplitude; 0 = none
        (:func:`~neuroattn.data.simulate_eeg_signal.simulate_run`).
    n_channels : int
        Electrodes (5-64, 10-10 names; :func:`~neuroattn.data.simulate_eeg_signal.montage_channels`):
        22 is the 2a montage.
    session_shift : float
        Scale of every session-to-session change (cap displacement, channel gains, mu drift,
        background level, ERD depth); 0 = sessions alike but for their noise, 1 = the default.
    gain_shift : float
        Standard deviation of the log channel gains of each session (before ``session_shift``):
        0.05 = about 5 % per channel.

    Returns
    -------
    pathlib.Path
        The dataset root.
    """
    classes = list(classes)
    unknown = [c for c in classes if c not in CLASSES]
    if unknown:
        raise ValueError(f"simulate.eeg: cannot simulate event types {unknown}; known: {list(CLASSES)}")
    if len(set(classes)) != len(classes) or len(classes) < 2:
        raise ValueError(f"simulate.eeg: need at least two distinct classes, got {classes}")
    if format not in ("edf", "brainvision"):
        raise ValueError(f"simulate.eeg.format must be 'edf' or 'brainvision', got {format!r}")
    if session_shift < 0 or gain_shift < 0:
        raise ValueError(f"simulate.eeg: session_shift and gain_shift must be >= 0, got {session_shift}, {gain_shift}")
    if float(sfreq) != int(sfreq) or sfreq <= 100:
        raise ValueError(f"simulate.eeg.sfreq must be an integer above 100 Hz, got {sfreq}")
    root = Path(root)
    _check_replaceable(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}.tmp"))
    try:
        _write_dataset(
            tmp, n_subjects, n_sessions, n_runs, trials_per_class_per_run, float(sfreq), classes,
            task, format, snr, n_background, artifact_rate, seed, dict(trial_types or {}), mrcp=float(mrcp),
            channels=montage_channels(n_channels), shift=float(session_shift), gain_shift=float(gain_shift),
        )
        if root.exists():
            old = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}.old"))
            os.replace(root, old / "d")
            os.replace(tmp, root)
            shutil.rmtree(old)
        else:
            os.replace(tmp, root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return root


_DATASET_NAME = "neuroattn simulated motor-imagery EEG"


def _check_replaceable(root: Path) -> None:
    if not root.exists():
        return
    if not root.is_dir():
        raise ValueError(f"{root}: exists and is not a directory")
    entries = [p for p in root.iterdir() if p.name != "dataset_description.json"]
    desc = root / "dataset_description.json"
    ours = desc.exists() and _DATASET_NAME in desc.read_text(errors="replace")
    if entries and not ours:
        raise ValueError(f"{root}: not empty and not a simulated EEG dataset; refusing to overwrite it")


def _write_dataset(
    root, n_subjects, n_sessions, n_runs, trials_per_class, sfreq, classes, task, fmt, snr,
    n_background, artifact_rate, seed, trial_types, mrcp=0.0, channels=CHANNELS, shift=1.0, gain_shift=0.05,
):
    import mne
    from mne_bids import BIDSPath, make_dataset_description, update_sidecar_json, write_raw_bids

    make_dataset_description(
        path=root,
        name=_DATASET_NAME,
        dataset_type="raw",
        data_license="CC0",
        authors=["neuroattn simulator", "neuroattn contributors"],
        generated_by=[{"Name": "neuroattn.data.simulate_eeg", "Description": "forward-modelled sphere-head EEG"}],
        overwrite=True,
        verbose=False,
    )
    info = _info(sfreq, channels)
    truth = {
        "classes": classes,
        "nominal_channels": {c: NOMINAL_CHANNELS[c] for c in classes},
        "channels": list(channels),
        "sfreq": sfreq,
        "seed": seed,
        "subjects": {},
    }
    source_rows = []
    fmt_name = {"edf": "EDF", "brainvision": "BrainVision"}[fmt]
    from tqdm.auto import tqdm

    for s in tqdm(range(1, n_subjects + 1), desc="simulate EEG", unit="subject", disable=None):
        sub = f"{s:02d}"
        subj = _subject_params(seed, s, n_background, snr)
        st = {
            "mu_freq": round(subj["mu_freq"], 4),
            "beta_freq": round(subj["beta_freq"], 4),
            "erd_depth": round(subj["erd_depth"], 4),
            "lapse_rate": round(subj["lapse_rate"], 4),
            "snr": round(subj["snr"], 4),
            "sessions": {},
        }
        for k in range(1, n_sessions + 1):
            ses = f"{k:02d}"
            sess = _session_params(seed, s, k - 1, channels, shift, gain_shift)
            gains = _lead_fields(subj, sess, info)
            if k == 1:
                st["discriminative_channels"] = discriminative_channels(gains[0], classes, channels=channels)
            st["sessions"][ses] = {
                "cap_shift_m": _r(sess["cap_shift"]),
                "channel_gain": _r(sess["channel_gain"], 4),
                "mu_freq": round(subj["mu_freq"] + sess["mu_shift"], 4),
                "bg_scale": round(sess["bg_scale"], 4),
                "erd_depth": round(subj["erd_depth"] * sess["depth_scale"], 4),
            }
            for j, (name, _, _) in enumerate(_SOURCES):
                p = subj["sources"][name]
                source_rows.append(
                    {
                        "subject": sub,
                        "session": ses,
                        "source": name,
                        **dict(zip(("x", "y", "z"), _r(p["pos"] + sess["cap_shift"]))),
                        **dict(zip(("ori_x", "ori_y", "ori_z"), _r(p["ori"]))),
                        "mu_freq": round(subj["alpha_freq"] if name == "alpha_occipital" else subj["mu_freq"] + sess["mu_shift"], 4),
                        "beta_freq": "n/a" if name == "alpha_occipital" else round(subj["beta_freq"], 4),
                        "amplitude_nAm": round(30 * subj["gains"][name], 3),
                    }
                )
            for r in range(1, n_runs + 1):
                run = f"{r:02d}"
                rng = np.random.default_rng([seed, 4, s, k, r])
                data, trials = simulate_run(subj, sess, gains, classes, trials_per_class, sfreq, rng, artifact_rate, mrcp=mrcp)
                raw = mne.io.RawArray(data, info.copy(), verbose=False)
                raw.set_meas_date(_MEAS_DATE + timedelta(days=7 * (k - 1), hours=r - 1))
                raw.set_annotations(
                    mne.Annotations(trials["onset"].to_numpy(), TRIAL_DURATION, [trial_types.get(c, c) for c in trials["trial_type"]])
                )
                bp = BIDSPath(subject=sub, session=ses, task=task, run=run, datatype="eeg", root=root)
                event_id = {trial_types.get(c, c): i + 1 for i, c in enumerate(classes)}
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    write_raw_bids(
                        raw, bp, event_id=event_id, format=fmt_name, allow_preload=True,
                        overwrite=True, verbose=False,
                    )
                    update_sidecar_json(
                        bp.copy().update(suffix="eeg", extension=".json"),
                        {
                            "EEGReference": "simulated potentials referenced to infinity",
                            "TaskDescription": "cued motor imagery of " + ", ".join(classes),
                            "Manufacturer": "neuroattn simulator",
                        },
                        verbose=False,
                    )
                tdir = root / "derivatives" / "truth" / f"sub-{sub}"
                tdir.mkdir(parents=True, exist_ok=True)
                trials.to_csv(
                    tdir / f"sub-{sub}_ses-{ses}_task-{task}_run-{run}_trials.tsv", sep="\t", index=False,
                    float_format="%.4f",
                )
        truth["subjects"][sub] = st
        logger.info("simulated EEG sub-%s (%d sessions x %d runs)", sub, n_sessions, n_runs)
    droot = root / "derivatives" / "truth"
    _write_json(droot / "truth.json", truth)
    pd.DataFrame(source_rows).to_csv(droot / "sources.tsv", sep="\t", index=False)
    _write_json(
        droot / "dataset_description.json",
        {
            "Name": "ground truth of the simulated EEG",
            "BIDSVersion": "1.9.0",
            "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "neuroattn.data.simulate_eeg"}],
        },
    )
    (root / "README").write_text(
        "Simulated motor-imagery EEG (neuroattn). "
        + ("22 channels of the BCI Competition IV 2a montage,\n" if tuple(channels) == tuple(CHANNELS)
           else f"{len(channels)} channels (10-10 names),\n")
        + f"{len(classes)} imagined movements ({', '.join(classes)}), 4-s trials after each cue.\n"
        + "Sources are dipoles in a three-shell sphere head model; see neuroattn/data/simulate_eeg.py.\n"
        "Ground truth (never used by models) is under derivatives/truth/.\n"
    )
    _fix_participants(root)


def _fix_participants(root: Path) -> None:
    """Drop the empty demographic columns mne-bids writes for simulated subjects (deterministic)."""
    p = root / "participants.tsv"
    if p.exists():
        df = pd.read_csv(p, sep="\t", dtype=str).sort_values("participant_id")
        df.to_csv(p, sep="\t", index=False, na_rep="n/a")


def simulate_from_config(root, sim: dict, *, task: str, events, seed: int) -> Path:
    """Run :func:`simulate_eeg_dataset` from the ``simulate.eeg`` config section.

    ``events`` is config ``eeg.events``: a list of class names, or a mapping label ->
    trial_type value(s), in which case events.tsv uses each label's first value; ``auto``: every
    class of :data:`~neuroattn.data.simulate_eeg_signal.CLASSES`.
    """
    keys = {
        "n_subjects", "n_sessions", "n_runs", "trials_per_class_per_run", "sfreq", "format", "snr",
        "n_background", "artifact_rate", "mrcp", "n_channels", "session_shift", "gain_shift",
    }
    unknown = set(sim) - keys
    if unknown:
        raise KeyError(f"simulate.eeg: unknown key(s) {sorted(unknown)}")
    kw = dict(sim)
    if "trials_per_class_per_run" in kw:
        kw["trials_per_class_per_run"] = int(kw["trials_per_class_per_run"])
    trial_types = None
    if events == "auto":  # classes from the data: every class the simulator makes
        from .simulate_eeg_signal import CLASSES

        events = list(CLASSES)
    if isinstance(events, dict):  # label -> trial_type value(s): write the first one
        trial_types = {k: str(v if isinstance(v, (str, int)) else list(v)[0]) for k, v in events.items()}
    return simulate_eeg_dataset(root, classes=list(events), trial_types=trial_types, task=task, seed=seed, **kw)


def simulate_eeg_from_config(root, config: dict) -> dict:
    """Simulate the EEG dataset of a full workflow ``config`` at ``root`` (the CLI's entry point).

    Returns
    -------
    dict
        A summary: root, subjects, number of recordings and trials, classes.
    """
    root = simulate_from_config(
        root, config["simulate"]["eeg"], task=config["eeg"]["task"], events=config["eeg"]["events"],
        seed=int(config["seed"]),
    )
    truth = json.loads((root / "derivatives" / "truth" / "truth.json").read_text())
    trials = sorted((root / "derivatives" / "truth").rglob("*_trials.tsv"))
    return {
        "root": str(root),
        "subjects": sorted(truth["subjects"]),
        "classes": truth["classes"],
        "n_recordings": len(trials),
        "n_trials": int(sum(len(pd.read_csv(p, sep="\t")) for p in trials)),
    }
