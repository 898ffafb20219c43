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
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger("neuroattn.simulate_eeg")

#: The 22-channel BCI Competition IV 2a montage (10-20 names).
CHANNELS = (
    "Fz FC3 FC1 FCz FC2 FC4 C5 C3 C1 Cz C2 C4 C6 CP3 CP1 CPz CP2 CP4 P1 Pz P2 POz".split()
)
#: Classes the simulator knows how to generate.
CLASSES = ("left_hand", "right_hand", "feet", "tongue")
#: Channels over the sources each class desynchronises (by design).
NOMINAL_CHANNELS = {
    "left_hand": ["C4"],
    "right_hand": ["C3"],
    "feet": ["Cz"],
    "tongue": ["C5", "C6"],
}
# (source name, electrode(s) it lies under, depth as a fraction of the head radius)
_SOURCES = (
    ("hand_left", ("C3",), 0.74),
    ("hand_right", ("C4",), 0.74),
    ("foot", ("Cz",), 0.62),
    ("tongue_left", ("C5", "FT7"), 0.70),
    ("tongue_right", ("C6", "FT8"), 0.70),
    ("alpha_occipital", ("Oz", "POz"), 0.65),
)
# ERD depth of each source per class, as a multiple of the subject's depth (negative: ERS)
_ERD = {
    "left_hand": {"hand_right": 1.0, "hand_left": 0.3},
    "right_hand": {"hand_left": 1.0, "hand_right": 0.3},
    "feet": {"foot": 1.0, "hand_left": -0.2, "hand_right": -0.2},
    "tongue": {"tongue_left": 1.0, "tongue_right": 1.0, "hand_left": -0.15, "hand_right": -0.15},
}
_MEAS_DATE = datetime(2020, 1, 6, 9, 0, 0, tzinfo=timezone.utc)
TRIAL_DURATION = 4.0


def _montage():
    import mne

    return mne.channels.make_standard_montage(standard_1020_name())


def standard_1020_name() -> str:
    """Name of MNE's built-in 10-20 montage (``standard_1020``, renamed ``colin27_1020`` in MNE 1.13)."""
    import mne

    builtin = mne.channels.get_builtin_montages()
    return "colin27_1020" if "colin27_1020" in builtin else "standard_1020"


def _head_geometry():
    """Electrode positions (head coordinates) of the full 10-20 montage and the fitted sphere."""
    import mne

    mon = _montage()
    info = mne.create_info(mon.ch_names, 1000.0, "eeg")
    info.set_montage(mon)
    radius, r0, _ = mne.bem.fit_sphere_to_headshape(info, dig_kinds=("eeg",), units="m", verbose=False)
    pos = {ch["ch_name"]: ch["loc"][:3].copy() for ch in info["chs"]}
    return pos, np.asarray(r0, float), float(radius)


def _info(sfreq: float):
    import mne

    info = mne.create_info(list(CHANNELS), float(sfreq), "eeg")
    info.set_montage(_montage())
    info["line_freq"] = 50.0
    return info


def _unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _subject_params(seed: int, s: int, n_background: int, snr: float) -> dict:
    """Subject-level parameters: depend on (seed, subject index) only."""
    rng = np.random.default_rng([seed, 2, s])
    pos, r0, radius = _head_geometry()
    src = {}
    for name, under, depth in _SOURCES:
        u = _unit(np.mean([_unit(pos[ch] - r0) for ch in under], axis=0))
        spread = 0.5 if name == "foot" else 1.0  # the medial foot area varies less across people
        p = r0 + depth * radius * u + rng.normal(0, 0.006 * spread, 3)
        ori = _unit(u + rng.normal(0, 0.25 * spread, 3))  # radial, tilted ~15 degrees
        src[name] = {"pos": p, "ori": ori}
    # background: uniform directions in the upper half, 40-85 % of the radius, random orientation
    d = _unit(rng.normal(size=(n_background, 3)))
    d[:, 2] = np.abs(d[:, 2]) * 0.8 + 0.2
    bg_pos = r0 + _unit(d) * radius * rng.uniform(0.4, 0.82, (n_background, 1))
    bg_ori = _unit(rng.normal(size=(n_background, 3)))
    gains = {name: float(np.exp(rng.normal(0, 0.2))) for name, _, _ in _SOURCES}
    return {
        "sources": src,
        "bg_pos": bg_pos,
        "bg_ori": bg_ori,
        "mu_freq": float(rng.uniform(9.0, 12.5)),
        "beta_freq": float(rng.uniform(17.0, 25.0)),
        "alpha_freq": float(rng.uniform(9.5, 11.0)),
        "gains": gains,
        "erd_depth": float(rng.uniform(0.55, 0.8)),
        "lapse_rate": float(rng.uniform(0.03, 0.1)),
        "snr": float(snr * rng.uniform(0.7, 1.4)),
        "blink_rate": float(rng.uniform(0.1, 0.3)),
        "blink_amp": float(rng.uniform(150e-6, 300e-6)),
    }


def _session_params(seed: int, s: int, k: int) -> dict:
    rng = np.random.default_rng([seed, 3, s, k])
    return {
        "cap_shift": rng.normal(0, 0.003, 3) if k > 0 else np.zeros(3),
        "channel_gain": np.exp(rng.normal(0, 0.05, len(CHANNELS))),
        "mu_shift": float(rng.normal(0, 0.3)) if k > 0 else 0.0,
        "bg_scale": float(rng.uniform(0.85, 1.15)),
        "depth_scale": float(rng.uniform(0.85, 1.1)),
        "line_amp": rng.uniform(2e-6, 10e-6, len(CHANNELS)),
        "line_phase": rng.uniform(0, 2 * np.pi, len(CHANNELS)),
    }


def _lead_fields(subj: dict, sess: dict, info) -> tuple[np.ndarray, np.ndarray]:
    """Lead fields (n_channels, n_sources) in V/(A m) of the named and background sources."""
    import mne

    _, r0, radius = _head_geometry()
    names = [n for n, _, _ in _SOURCES]
    pos = np.vstack([subj["sources"][n]["pos"] for n in names] + [subj["bg_pos"]]) + sess["cap_shift"]
    rel = pos - r0  # keep every dipole well inside the inner skull (radius 0.9 R)
    norm = np.linalg.norm(rel, axis=1, keepdims=True)
    pos = r0 + rel * np.minimum(1.0, 0.85 * radius / norm)
    ori = np.vstack([subj["sources"][n]["ori"] for n in names] + [subj["bg_ori"]])
    n = len(pos)
    dip = mne.Dipole(np.zeros(n), pos, np.ones(n), ori, np.ones(n))
    sphere = mne.make_sphere_model(r0, radius, info, verbose=False)
    fwd, _ = mne.make_forward_dipole(dip, sphere, info, verbose=False)
    gain = fwd["sol"]["data"]
    return gain[:, : len(names)], gain[:, len(names) :]


def _spectral_noise(rng, n_sig: int, n: int, sfreq: float, shape) -> np.ndarray:
    """Gaussian noise with amplitude spectrum ``shape(f)``, each row scaled to unit variance."""
    freqs = np.fft.rfftfreq(n, 1 / sfreq)
    spec = rng.normal(size=(n_sig, len(freqs))) + 1j * rng.normal(size=(n_sig, len(freqs)))
    x = np.fft.irfft(spec * shape(freqs), n=n, axis=-1)
    return x / x.std(axis=-1, keepdims=True)


def _band_fraction(n: int, sfreq: float, shape, lo: float = 8.0, hi: float = 30.0) -> float:
    """Fraction of the variance of ``_spectral_noise(shape)`` that falls in [lo, hi] Hz."""
    f = np.fft.rfftfreq(n, 1 / sfreq)
    p = shape(f) ** 2
    return float(p[(f >= lo) & (f <= hi)].sum() / p.sum())


def _pink(f):
    return 1.0 / np.sqrt(np.maximum(f, 0.5)) * (f > 0)


def _window(t: np.ndarray, start: float, stop: float, ramp: float) -> np.ndarray:
    """0 outside [start, stop], 1 inside, with raised-cosine ramps of length ``ramp``."""
    up = np.clip((t - start) / ramp, 0, 1)
    down = np.clip((stop - t) / ramp, 0, 1)
    return 0.5 - 0.5 * np.cos(np.pi * np.minimum(up, down))


def _trial_schedule(rng, classes, trials_per_class: int, sfreq: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Random class order and cue onsets (s, on the sample grid): 3 s lead-in, then per trial 2 s
    fixation, cue, 4 s imagery, 1.5-2.5 s rest."""
    labels = np.repeat(np.arange(len(classes)), trials_per_class)
    rng.shuffle(labels)
    onsets, t = [], 3.0
    for _ in labels:
        t += 2.0
        onsets.append(t)
        t += TRIAL_DURATION + rng.uniform(1.5, 2.5)
    return labels, np.round(np.asarray(onsets) * sfreq) / sfreq, float(np.ceil(t + 2.0))


def simulate_run(
    subj: dict,
    sess: dict,
    gains: tuple[np.ndarray, np.ndarray],
    classes,
    trials_per_class: int,
    sfreq: float,
    rng: np.random.Generator,
    artifact_rate: float = 0.02,
):
    """Simulate one run.

    Returns
    -------
    data : ndarray, shape (n_channels, n_times)
        Scalp potentials in volts.
    trials : pandas.DataFrame
        Columns onset, trial_type, erd_depth, lapse, artifact.
    """
    g_named, g_bg = gains
    names = [n for n, _, _ in _SOURCES]
    labels, onsets, duration = _trial_schedule(rng, classes, trials_per_class, sfreq)
    n = int(round(duration * sfreq))
    t = np.arange(n) / sfreq

    # trial-wise ERD depths (0 for lapses)
    depth = subj["erd_depth"] * sess["depth_scale"] * np.clip(rng.normal(1, 0.25, len(labels)), 0.3, 1.6)
    lapse = rng.random(len(labels)) < subj["lapse_rate"]
    depth = np.where(lapse, 0.0, np.minimum(depth, 0.95))
    latency = rng.uniform(0.3, 0.8, len(labels))

    # amplitude modulation per named source: 1 - sum_trials depth * window
    mod_mu = np.ones((len(names), n))
    mod_beta = np.ones((len(names), n))
    for i, (c, on) in enumerate(zip(labels, onsets)):
        sl = slice(int((on - 0.5) * sfreq), min(n, int((on + TRIAL_DURATION + 2.0) * sfreq)))
        w = _window(t[sl], on + latency[i], on + TRIAL_DURATION, 0.5)
        for src, rel in _ERD[classes[c]].items():
            j = names.index(src)
            mod_mu[j, sl] -= rel * depth[i] * w
            mod_beta[j, sl] -= 0.8 * rel * depth[i] * w
        if classes[c] in ("left_hand", "right_hand"):  # post-imagery beta rebound
            j = names.index("hand_right" if classes[c] == "left_hand" else "hand_left")
            mod_beta[j, sl] += 0.4 * depth[i] * _window(t[sl], on + TRIAL_DURATION + 0.3, on + TRIAL_DURATION + 1.3, 0.3)
    np.clip(mod_mu, 0.05, None, out=mod_mu)
    np.clip(mod_beta, 0.05, None, out=mod_beta)

    # spontaneous slow amplitude fluctuations (mean ~1)
    slow = np.exp(0.3 * _spectral_noise(rng, 2 * len(names), n, sfreq, lambda f: np.exp(-0.5 * (f / 0.15) ** 2)))
    mu_f = subj["mu_freq"] + sess["mu_shift"]
    mu = _spectral_noise(rng, len(names), n, sfreq, lambda f: np.exp(-0.5 * ((f - mu_f) / 0.7) ** 2))
    beta = _spectral_noise(rng, len(names), n, sfreq, lambda f: np.exp(-0.5 * ((f - subj["beta_freq"]) / 1.8) ** 2))
    amp = np.array([subj["gains"][nm] for nm in names])[:, None] * 30e-9  # A m (30 nAm)
    src = amp * (mu * mod_mu * slow[: len(names)] + 0.5 * beta * mod_beta * slow[len(names) :])
    j_alpha = names.index("alpha_occipital")
    af = subj["alpha_freq"]
    src[j_alpha] = amp[j_alpha] * 1.2 * slow[j_alpha] * _spectral_noise(
        rng, 1, n, sfreq, lambda f: np.exp(-0.5 * ((f - af) / 0.6) ** 2)
    )[0]
    data = g_named @ src

    # 1/f background, scaled so that rhythm/background 8-30 Hz power at C3/C4 equals the subject SNR
    hand = [names.index("hand_left"), names.index("hand_right")]
    ch = [CHANNELS.index("C3"), CHANNELS.index("C4")]
    rhythm_pow = np.mean([(g_named[c, h] * amp[h, 0]) ** 2 * 1.25 for c, h in zip(ch, hand)])
    bg_frac = _band_fraction(n, sfreq, _pink)
    bg_unit = np.mean((g_bg[ch] ** 2).sum(axis=1)) * bg_frac
    bg_amp = np.sqrt(rhythm_pow / (subj["snr"] * bg_unit)) * sess["bg_scale"]
    data += g_bg @ (bg_amp * _spectral_noise(rng, g_bg.shape[1], n, sfreq, _pink))

    # blinks: frontal pattern decaying with distance from Fpz
    pos, _, _ = _head_geometry()
    dist = np.array([np.linalg.norm(pos[c] - pos["Fpz"]) for c in CHANNELS])
    pattern = np.exp(-dist / 0.04)
    n_blinks = rng.poisson(subj["blink_rate"] * duration)
    blink = np.zeros(n)
    half = int(0.15 * sfreq)
    shape = np.hanning(2 * half + 1)
    for b_on in rng.integers(half, n - half - 1, n_blinks):
        blink[b_on - half : b_on + half + 1] += subj["blink_amp"] * rng.uniform(0.7, 1.3) * shape
    data += pattern[:, None] * blink

    # electrode pops: a large step on one channel decaying over ~1 s, inside the trial window
    artifact = rng.random(len(labels)) < artifact_rate
    for i in np.flatnonzero(artifact):
        c = rng.integers(len(CHANNELS))
        on = int((onsets[i] + rng.uniform(0.5, 3.0)) * sfreq)
        data[c, on:] += rng.choice([-1, 1]) * 1.5e-3 * np.exp(-(t[on:] - t[on]) / 1.0)

    data *= sess["channel_gain"][:, None]
    data += sess["line_amp"][:, None] * np.sin(2 * np.pi * 50.0 * t + sess["line_phase"][:, None])
    data += rng.normal(0, 0.5e-6, data.shape)
    trials = pd.DataFrame(
        {
            "onset": onsets,
            "trial_type": [classes[c] for c in labels],
            "erd_depth": np.round(depth, 4),
            "lapse": lapse,
            "artifact": artifact,
        }
    )
    return data, trials


def discriminative_channels(g_named: np.ndarray, classes, top: int = 3) -> dict[str, list[str]]:
    """Per class, the ``top`` channels with the largest lead field of the class's ERD sources."""
    names = [n for n, _, _ in _SOURCES]
    out = {}
    for c in classes:
        cols = [names.index(s) for s, rel in _ERD[c].items() if rel > 0.5]
        w = np.abs(g_named[:, cols]).sum(axis=1)
        out[c] = [CHANNELS[i] for i in np.argsort(-w, kind="stable")[:top]]
    return out


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
    if float(sfreq) != int(sfreq) or sfreq <= 100:
        raise ValueError(f"simulate.eeg.sfreq must be an integer above 100 Hz, got {sfreq}")
    root = Path(root)
    _check_replaceable(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}.tmp"))
    try:
        _write_dataset(
            tmp, n_subjects, n_sessions, n_runs, trials_per_class_per_run, float(sfreq), classes,
            task, format, snr, n_background, artifact_rate, seed, dict(trial_types or {}),
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
    n_background, artifact_rate, seed, trial_types,
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
    info = _info(sfreq)
    truth = {
        "classes": classes,
        "nominal_channels": {c: NOMINAL_CHANNELS[c] for c in classes},
        "channels": list(CHANNELS),
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
            sess = _session_params(seed, s, k - 1)
            gains = _lead_fields(subj, sess, info)
            if k == 1:
                st["discriminative_channels"] = discriminative_channels(gains[0], classes)
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
                data, trials = simulate_run(subj, sess, gains, classes, trials_per_class, sfreq, rng, artifact_rate)
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
        "Simulated motor-imagery EEG (neuroattn). 22 channels of the BCI Competition IV 2a montage,\n"
        f"{len(classes)} imagined movements ({', '.join(classes)}), 4-s trials after each cue.\n"
        "Sources are dipoles in a three-shell sphere head model; see neuroattn/data/simulate_eeg.py.\n"
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
    trial_type value(s), in which case events.tsv uses each label's first value.
    """
    keys = {
        "n_subjects", "n_sessions", "n_runs", "trials_per_class_per_run", "sfreq", "format", "snr",
        "n_background", "artifact_rate",
    }
    unknown = set(sim) - keys
    if unknown:
        raise KeyError(f"simulate.eeg: unknown key(s) {sorted(unknown)}")
    kw = dict(sim)
    if "trials_per_class_per_run" in kw:
        kw["trials_per_class_per_run"] = int(kw["trials_per_class_per_run"])
    trial_types = None
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
