"""The signal model of the simulated motor-imagery EEG (:mod:`neuroattn.data.simulate_eeg` writes
the dataset): montage, head geometry, per-subject and per-session source parameters, lead
fields, background noise, one run's trials (:func:`simulate_run`) and the channels each class's
ERD sources project to most (:func:`discriminative_channels`)."""
from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd

__all__ = ["CHANNELS", "CLASSES", "NOMINAL_CHANNELS", "TRIAL_DURATION", "discriminative_channels",
           "montage_channels", "simulate_run", "standard_1020_name"]

#: The 22-channel BCI Competition IV 2a montage (10-20 names).
CHANNELS = (
    "Fz FC3 FC1 FCz FC2 FC4 C5 C3 C1 Cz C2 C4 C6 CP3 CP1 CPz CP2 CP4 P1 Pz P2 POz".split()
)
# Which of the 2a channels a smaller cap keeps first (the motor strip and every class's
# electrodes), and the 10-10 electrodes a larger cap adds, in order (a 64-channel cap at 64).
_KEEP_FIRST = "C3 C4 Cz C5 C6 C1 C2 FC3 FC4 CP3 CP4 FCz CPz Fz Pz POz FC1 FC2 CP1 CP2 P1 P2".split()
_EXTRA = ("F3 F4 F7 F8 T7 T8 P3 P4 O1 O2 Fp1 Fp2 AF3 AF4 F1 F2 F5 F6 FT7 FT8 FC5 FC6 TP7 TP8 CP5 CP6 "
          "P5 P6 P7 P8 PO3 PO4 PO7 PO8 Oz Fpz AFz AF7 AF8 P9 P10 Iz").split()


def montage_channels(n_channels: int = 22) -> tuple[str, ...]:
    """Channel names of an ``n_channels`` cap (10-10 names): the 2a montage at 22 (:data:`CHANNELS`);
    fewer keeps the motor strip and each class's electrodes (C3, C4, Cz, C5, C6 always, from 5);
    more adds frontal, temporal, parietal and occipital electrodes up to a 64-channel 10-10 cap.

    Raises
    ------
    ValueError
        Outside 5-64 channels.
    """
    n = int(n_channels)
    if not 5 <= n <= len(CHANNELS) + len(_EXTRA):
        raise ValueError(f"simulate.eeg.n_channels must be 5-64, got {n_channels}")
    if n <= len(CHANNELS):
        keep = set(_KEEP_FIRST[:n])
        return tuple(c for c in CHANNELS if c in keep)
    return tuple(CHANNELS) + tuple(_EXTRA[: n - len(CHANNELS)])


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


def _info(sfreq: float, channels=CHANNELS):
    import mne

    info = mne.create_info(list(channels), float(sfreq), "eeg")
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


def _around(v: float, centre: float, shift: float) -> float:
    """``v`` moved ``shift`` times as far from ``centre`` (exactly ``v`` at ``shift`` 1)."""
    return v if shift == 1 else centre + shift * (v - centre)


def _session_params(seed: int, s: int, k: int, channels=CHANNELS, shift: float = 1.0,
                    gain_shift: float = 0.05) -> dict:
    """Session-level parameters. ``shift`` scales every session-to-session change (cap
    displacement, mu drift, background level, ERD depth; 0 = sessions alike but for their noise);
    ``gain_shift``: sd of the log channel gains (amplifier/contact changes), also scaled by ``shift``.
    The random draws are the same whatever ``shift`` / ``gain_shift`` (only their scale changes)."""
    rng = np.random.default_rng([seed, 3, s, k])
    n = len(channels)
    return {
        "channels": tuple(channels),
        "cap_shift": rng.normal(0, 0.003 * shift, 3) if k > 0 else np.zeros(3),
        "channel_gain": np.exp(rng.normal(0, gain_shift * shift, n)),
        "mu_shift": float(rng.normal(0, 0.3 * shift)) if k > 0 else 0.0,
        "bg_scale": _around(float(rng.uniform(0.85, 1.15)), 1.0, shift),
        "depth_scale": _around(float(rng.uniform(0.85, 1.1)), 0.975, shift),
        "line_amp": rng.uniform(2e-6, 10e-6, n),
        "line_phase": rng.uniform(0, 2 * np.pi, n),
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


def _mrcp_sources(g_named, names, classes, labels, onsets, depth, amp, t, mrcp: float,
                  channels=CHANNELS) -> np.ndarray:
    """Source moments (n_sources, n_times) of the movement-related cortical potentials."""
    out = np.zeros((len(names), len(t)))
    elec = {n: e for n, e, _ in _SOURCES}
    ramp = np.clip
    for c, on, d in zip(labels, onsets, depth):
        if d <= 0:
            continue
        shape = (ramp((t - (on - 0.5)) / 1.0, 0, 1) * ramp(((on + 2.5) - t) / 1.0, 0, 1))
        shape = np.sin(0.5 * np.pi * shape) ** 2  # smooth on/offset
        for src, rel in _ERD[classes[c]].items():
            if rel <= 0.5:
                continue
            j = names.index(src)
            sign = np.sign(g_named[channels.index(elec[src][0]), j]) or 1.0
            out[j] -= sign * mrcp * d * amp[j] * shape  # negative at the source's electrode
    return out


def simulate_run(
    subj: dict,
    sess: dict,
    gains: tuple[np.ndarray, np.ndarray],
    classes,
    trials_per_class: int,
    sfreq: float,
    rng: np.random.Generator,
    artifact_rate: float = 0.02,
    mrcp: float = 0.0,
):
    """Simulate one run.

    ``mrcp``: peak of the movement-related cortical potential relative to the rhythm amplitude
    (0 = none): each trial's main ERD sources (``_ERD`` weight > 0.5: the contralateral hand
    area, the foot or tongue areas) carry a slow shift, negative under their electrodes, that
    starts 0.5 s before the cue, peaks 0.5 s after it, holds to 1.5 s and is gone at 2.5 s
    (scaled by the trial's ERD depth, none on lapses). It draws no random numbers, so every
    other part of the run is unchanged.

    Returns
    -------
    data : ndarray, shape (n_channels, n_times)
        Scalp potentials in volts.
    trials : pandas.DataFrame
        Columns onset, trial_type, erd_depth, lapse, artifact.
    """
    g_named, g_bg = gains
    channels = list(sess.get("channels", CHANNELS))
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
    if mrcp:
        src += _mrcp_sources(g_named, names, classes, labels, onsets, depth, amp[:, 0], t, mrcp, channels)
    data = g_named @ src

    # 1/f background, scaled so that rhythm/background 8-30 Hz power at C3/C4 equals the subject SNR
    hand = [names.index("hand_left"), names.index("hand_right")]
    ch = [channels.index("C3"), channels.index("C4")]
    rhythm_pow = np.mean([(g_named[c, h] * amp[h, 0]) ** 2 * 1.25 for c, h in zip(ch, hand)])
    bg_frac = _band_fraction(n, sfreq, _pink)
    bg_unit = np.mean((g_bg[ch] ** 2).sum(axis=1)) * bg_frac
    bg_amp = np.sqrt(rhythm_pow / (subj["snr"] * bg_unit)) * sess["bg_scale"]
    data += g_bg @ (bg_amp * _spectral_noise(rng, g_bg.shape[1], n, sfreq, _pink))

    # blinks: frontal pattern decaying with distance from Fpz
    pos, _, _ = _head_geometry()
    dist = np.array([np.linalg.norm(pos[c] - pos["Fpz"]) for c in channels])
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
        c = rng.integers(len(channels))
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


def discriminative_channels(g_named: np.ndarray, classes, top: int = 3, channels=CHANNELS) -> dict[str, list[str]]:
    """Per class, the ``top`` channels (of ``channels``, the rows of ``g_named``) with the largest
    lead field of the class's ERD sources."""
    names = [n for n, _, _ in _SOURCES]
    out = {}
    for c in classes:
        cols = [names.index(s) for s, rel in _ERD[c].items() if rel > 0.5]
        w = np.abs(g_named[:, cols]).sum(axis=1)
        out[c] = [channels[i] for i in np.argsort(-w, kind="stable")[:top]]
    return out
