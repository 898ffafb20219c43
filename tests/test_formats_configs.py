"""Dataset configs validate against the schema (as overlays of config.yaml); format dispatch helpers."""
import copy
from pathlib import Path

import numpy as np
import pytest
import yaml

from neuroattn import config as nconfig
from neuroattn.data import formats

CONFIG = Path(__file__).resolve().parent.parent / "config"


def _merge(base, over):
    """Snakemake's --configfile semantics: nested dicts updated key by key."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _overlay(name):
    base = yaml.safe_load((CONFIG / "config.yaml").read_text())
    return _merge(base, yaml.safe_load((CONFIG / name).read_text()))


@pytest.mark.parametrize("name, section, fmt", [
    ("nsd.yaml", "fmri", "nsd"), ("algonauts.yaml", "fmri", "algonauts"), ("bnci2014_001.yaml", "eeg", "bnci2a"),
])
def test_dataset_configs_validate(name, section, fmt):
    cfg = nconfig.validate_config(_overlay(name))
    assert cfg[section]["format"] == fmt


def test_schema_refuses_unknown_format_and_adapter_key():
    cfg = _overlay("nsd.yaml")
    cfg["fmri"]["format"] = "hcp"
    cfg["fmri"]["adapter"]["sesions"] = [1]
    with pytest.raises(nconfig.ConfigError) as err:
        nconfig.validate_config(cfg)
    assert "fmri.format" in str(err.value) and "fmri.adapter.sesions" in str(err.value)


def test_schema_adapter_keys_are_what_the_adapters_take():
    from neuroattn.data.formats import algonauts, nsd

    schema = nconfig.load_schema()
    fprops = set(schema["properties"]["fmri"]["properties"]["adapter"]["properties"])
    # keep_other comes from fmri.keep_other (formats.fmri_subject passes it)
    assert set(nsd.ADAPTER_DEFAULTS) - {"keep_other"} <= fprops
    assert set(algonauts.ADAPTER_DEFAULTS) - {"keep_other"} <= fprops
    eprops = set(schema["properties"]["eeg"]["properties"]["adapter"]["properties"])
    assert eprops == {"drop_rejected", "runs", "dataset"}


def test_list_subjects_per_format(tmp_path):
    (tmp_path / "nsddata_betas" / "ppdata" / "subj02").mkdir(parents=True)
    (tmp_path / "subj05").mkdir()
    (tmp_path / "A03T.gdf").write_bytes(b"")
    (tmp_path / "A03E.gdf").write_bytes(b"")
    (tmp_path / "S012").mkdir()
    (tmp_path / "sub-x1").mkdir()
    assert formats.list_subjects("nsd", tmp_path) == ["02"]
    assert formats.list_subjects("algonauts", tmp_path) == ["05"]
    assert formats.list_subjects("bnci2a", tmp_path) == ["03"]
    assert formats.list_subjects("eegmmidb", tmp_path) == ["012"]
    assert formats.list_subjects("bids", tmp_path) == ["x1"]
    with pytest.raises(FileNotFoundError, match="no subject found for format 'nsd'"):
        formats.list_subjects("nsd", tmp_path / "none")
    with pytest.raises(ValueError, match="must be one of"):
        formats.fmri_subject("bnci2a", tmp_path, "01", "x")


def test_fmri_subject_dispatch_and_stimuli(tmp_path):
    import test_formats_algonauts as ta

    root = tmp_path / "alg"
    planted = ta._write(root, np.random.default_rng(0))
    res = formats.fmri_subject("algonauts", root, "01", "algonauts", keep_other=False,
                               adapter={"rois": ["prf-visualrois", "floc-faces"]})
    assert "other" not in set(res.betas.voxel_roi) and res.betas.task == "algonauts"
    out = formats.write_stimuli("algonauts", root, ["01"], tmp_path / "stimuli")
    assert len(out) == len(planted["names"])
    assert formats.write_stimuli("bids", root, ["01"], tmp_path / "s2") == []


def test_root_markers_and_checks(tmp_path):
    assert formats.root_marker("nsd", tmp_path) == tmp_path / "nsddata/experiments/nsd/nsd_expdesign.mat"
    assert formats.root_marker("bnci2a", tmp_path) == tmp_path and formats.root_marker("moabb", "") is None
    with pytest.raises(FileNotFoundError, match=r"no nsd_expdesign\.mat \(expected the NSD release root"):
        formats.check_root("nsd", tmp_path)
    with pytest.raises(FileNotFoundError, match="no subject found for format 'bnci2a'"):
        formats.check_root("bnci2a", tmp_path)
    (tmp_path / "A01T.gdf").write_bytes(b"")
    formats.check_root("bnci2a", tmp_path)
    with pytest.raises(FileNotFoundError, match="folder not found"):
        formats.check_root("algonauts", tmp_path / "missing")


def test_schema_format_enums_are_the_registry():
    schema = nconfig.load_schema()["properties"]
    assert schema["fmri"]["properties"]["format"]["enum"] == list(formats.FMRI_FORMATS)
    assert schema["eeg"]["properties"]["format"]["enum"] == list(formats.EEG_FORMATS)
    assert set(formats.FMRI_FORMATS) | set(formats.EEG_FORMATS) == set(formats.FORMATS.names())
    for name in formats.FORMATS:
        entry = formats.FORMATS[name]
        assert entry.config_section in ("fmri.adapter", "eeg.adapter") and entry.meta["layout"]


def test_schema_adapter_keys_cover_every_format_default():
    schema = nconfig.load_schema()["properties"]
    for section, names in (("fmri", formats.FMRI_FORMATS), ("eeg", formats.EEG_FORMATS)):
        props = set(schema[section]["properties"]["adapter"]["properties"])
        for name in names:
            assert set(formats.adapter_params(name, None, modality=section)) <= props, (section, name)


def test_unknown_adapter_keys_are_refused_not_dropped(tmp_path):
    with pytest.raises(KeyError, match=r"fmri\.adapter: unknown key\(s\) \['sesions'\] for format 'nsd' "
                                       r"\(allowed: \['betas', 'rois', 'sessions', 'space'\]\)"):
        formats.write_stimuli("nsd", tmp_path, ["01"], tmp_path / "s", {"sesions": [1]})
    with pytest.raises(KeyError, match="for format 'algonauts'"):
        formats.fmri_subject("algonauts", tmp_path, "01", "x", adapter={"space": "func1mm"})
    with pytest.raises(KeyError, match=r"eeg\.adapter: unknown key\(s\) \['runs'\] for format 'bnci2a'"):
        formats.eeg_subject("bnci2a", tmp_path, "01", adapter={"runs": [4]})
    assert formats.adapter_params("eegmmidb", {"runs": [4]}) == {"runs": [4]}
    assert formats.adapter_params("moabb", None) == {"dataset": "BNCI2014_001"}


def test_glm_defaults_come_from_config_yaml():
    from neuroattn.data.fmri import glm_params

    assert glm_params(None) == {**nconfig.section_defaults("fmri", "glm"), "confounds": []}
    with pytest.raises(KeyError, match=r"fmri\.glm: unknown key\(s\) \['hrf'\] \(allowed: "):
        glm_params({"hrf": "spm"})
