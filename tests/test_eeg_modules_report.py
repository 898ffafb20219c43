"""Group page: attention modules vs plain BaseNet as paired differences over subjects."""
import numpy as np
import pandas as pd
import pytest

from neuroattn.leaderboard import score_row
from neuroattn.report.eeg_modules import module_differences, module_section


def _lb(effects, n_sub=6, seed=0, subject_sd=0.08, noise=0.01, seed_sd=None):
    """Leaderboard rows: plain BaseNet varies a lot across subjects; module m adds effects[m]
    plus small per-subject noise (so only the pairing reveals a consistent effect)."""
    rng = np.random.default_rng(seed)
    base = 0.7 + subject_sd * rng.standard_normal(n_sub)
    rows = []
    for s in range(n_sub):
        sub = f"{s + 1:02d}"
        rows.append(score_row(sub, "eeg", "basenet", "within", "accuracy", base[s], error=seed_sd, n_classes=4))
        for m, eff in effects.items():
            v = base[s] + eff + noise * rng.standard_normal()
            rows.append(score_row(sub, "eeg", f"basenet_{m}", "within", "accuracy", v, error=seed_sd, n_classes=4))
        rows.append(score_row(sub, "eeg", "csp_lda", "within", "accuracy", 0.6, n_classes=4))
    rows.append(score_row("group", "eeg", "basenet_se", "within", "accuracy", 0.0, n_classes=4))
    return pd.DataFrame(rows)


def test_planted_consistent_difference_exceeds_spread_and_null_does_not():
    df = module_differences(_lb({"se": 0.05, "cbam": -0.04, "eca": 0.0}))
    got = df.set_index("module")
    assert set(got.index) == {"se", "cbam", "eca"}  # csp_lda is no module; the group row is ignored
    assert got.loc["se", "exceeds spread"] == "yes: better"
    assert got.loc["cbam", "exceeds spread"] == "yes: worse"
    assert got.loc["eca", "exceeds spread"] == "no"
    assert got.loc["se", "mean diff"] == pytest.approx(0.05, abs=0.015)
    assert (got["subjects"] == 6).all() and (got["seeds"] == "1").all() and got["seed SD"].isna().all()
    # the same +0.05 without pairing would drown in the 0.08 subject spread: SD is of the differences
    assert got.loc["se", "SD"] < 0.03


def test_unpaired_noise_as_large_as_the_effect_does_not_exceed():
    """A module whose per-subject differences are noise of SD 0.08 around +0.02 stays 'no'."""
    df = module_differences(_lb({"se": 0.02}, noise=0.08, seed=3))
    assert df.loc[0, "exceeds spread"] == "no"


def test_seed_spread_and_section():
    lb = _lb({"se": 0.05}, seed_sd=0.03)
    df = module_differences(lb)
    assert df.loc[0, "seeds"] == ">1" and df.loc[0, "seed SD"] == pytest.approx(0.03)
    sec = module_section(lb)
    assert "1 of 1 differences exceed" in sec["text"] and sec["table"]["rows"][0][1] == "se"
    assert module_section(lb[lb.model == "csp_lda"]) is None


def test_seeds_preset_validates_and_runs_every_module_with_several_seeds():
    from pathlib import Path

    import yaml

    from neuroattn import config as nconfig
    from neuroattn.models.eeg_attention import ATTENTION
    from neuroattn.stages.eeg import protocol_settings

    root = Path(__file__).resolve().parent.parent / "config"
    cfg = yaml.safe_load((root / "config.yaml").read_text())
    over = yaml.safe_load((root / "eeg_seeds.yaml").read_text())
    cfg["modalities"] = over["modalities"]
    cfg["eeg_models"].update(over["eeg_models"])
    cfg = nconfig.validate_config(cfg)
    models, seeds, _ = protocol_settings(cfg["eeg_models"], "within", cfg["seed"], "cpu")
    assert {f"basenet_{a}" for a in ATTENTION} | {"basenet"} <= set(models)
    assert len(set(seeds)) == 3
