"""Provenance shown on every report: versions, seed, config, backbone weights."""
from __future__ import annotations

import json
import platform
from importlib import metadata

PACKAGES = ["neuroattn", "numpy", "scipy", "scikit-learn", "torch", "torchvision", "nilearn",
            "nibabel", "mne", "mne-bids", "himalaya", "pyriemann", "snakemake"]


def versions() -> dict:
    """Installed versions of the packages the results depend on."""
    out = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "not installed"
    return out


def backbone_weights(feature_paths) -> dict:
    """``{backbone: weights}`` read from feature caches: random, trained:<path> or pretrained:<path>."""
    from ..features.store import FeatureStore

    out = {}
    for p in feature_paths:
        s = FeatureStore(p)
        out[str(s.attrs.get("backbone", p))] = str(s.attrs.get("weights", "unknown"))
    return out


def provenance(config: dict, feature_paths=()) -> dict:
    """Key/value pairs for the provenance table of a report."""
    prov = {"seed": config.get("seed"), "device": config.get("device")}
    for name, w in backbone_weights(feature_paths).items():
        note = " (random weights: features carry no learned visual knowledge)" if w == "random" else ""
        prov[f"backbone {name} weights"] = w + note
    prov["fMRI data"] = config.get("fmri", {}).get("bids_root") or "simulated (ground truth known)"
    prov["EEG data"] = config.get("eeg", {}).get("bids_root") or "simulated (ground truth known)"
    prov.update({f"version {k}": v for k, v in versions().items()})
    prov["config"] = json.dumps(config, sort_keys=True, default=str)
    return prov
