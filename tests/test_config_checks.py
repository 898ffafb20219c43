"""A bad config is refused before any job runs, naming the key and the allowed values (issue 18).

Every case goes through ``neuroattn check-config`` (merged over config/config.yaml as snakemake
merges ``--configfile`` files): exit code 2 and the message on stderr.
"""
import pytest
import yaml

from neuroattn.cli import main
from neuroattn.config import ConfigError, default_config, merge_config, validate_config


def check(tmp_path, capsys, overlay: dict):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(overlay))
    rc = main(["check-config", str(path)])
    return rc, capsys.readouterr().err


def test_the_default_and_the_tiny_preset_pass(capsys):
    assert main(["check-config", "config/tiny.yaml"]) == 0
    assert "valid" in capsys.readouterr().out


@pytest.mark.parametrize("overlay, expect", [
    # a layer the backbone lacks: refused now, not after the 4-minute backbone training
    ({"encode": {"layers": ["layer7"]}},
     ["encode.layers", "'layer7'", "layer1, layer2, layer3, layer4"]),
    ({"incontext": {"layer": "layer9"}}, ["incontext.layer", "'layer9'", "layer4"]),
    # an undefined backbone: no raw KeyError, the defined ones listed
    ({"encode": {"backbone": "resnet50"}},
     ["encode.backbone", "'resnet50'", "not defined under features.backbones", "defined: smallcnn"]),
    ({"scoring": {"backbones": ["vgg"]}}, ["scoring.backbones.0", "'vgg'", "defined: smallcnn"]),
    ({"eeg": {"tmin": 4.0, "tmax": 1.0}}, ["eeg.tmin", "below eeg.tmax"]),
    ({"eeg": {"tmin": 2.0, "tmax": 2.0}}, ["eeg.tmin"]),
    ({"incontext": {"context_sizes": [5, 50]}}, ["incontext.context_sizes", "[5]", "min_context (10)"]),
    ({"incontext": {"default_k": 4}}, ["incontext.default_k", "min_context"]),
    ({"fmri": {"subjects": ["sub-01", "02"]}}, ["fmri.subjects.0", "'sub-01'", "'sub-' prefix", "'01'"]),
    ({"eeg": {"subjects": ["sub-A"]}}, ["eeg.subjects.0", "'A'"]),
    # schema enums / patterns print the allowed names, not a regex
    ({"device": "gpu"}, ["device", "'gpu'", "allowed: auto, cpu, cuda"]),
    ({"scoring": {"regression": "lasso"}}, ["scoring.regression", "allowed: pls, ridge, ridgecv, linear"]),
    ({"eeg_models": {"models": ["basenet_xx"]}}, ["basenet_xx", "basenet_se", "csp_lda"]),
])
def test_bad_config_is_refused_naming_the_key(tmp_path, capsys, overlay, expect):
    rc, err = check(tmp_path, capsys, overlay)
    assert rc == 2, err
    for text in expect:
        assert text in err, f"{text!r} not in: {err}"
    assert "^(" not in err and "[a-zA-Z0-9]" not in err  # no regex shown


def test_unknown_torchvision_arch_is_refused_with_close_names(tmp_path, capsys):
    rc, err = check(tmp_path, capsys, {"features": {"backbones": {"smallcnn": {"arch": "resnet5O"}}}})
    assert rc == 2 and "features.backbones.smallcnn.arch" in err and "'resnet5O'" in err
    assert "resnet50" in err  # a close name suggested


def test_a_known_torchvision_arch_passes_and_its_layers_are_checked():
    bb = {"features": {"backbones": {"r18": {"arch": "resnet18", "weights": None, "layers": ["layer1", "layer2"],
                                             "image_size": 64}}},
          "scoring": {"backbones": ["r18"]}}
    assert validate_config(merge_config(default_config(), bb))
    bad = merge_config(bb, {"incontext": {"backbone": "r18", "layer": "layer3"}})
    with pytest.raises(ConfigError, match=r"incontext.layer: backbone 'r18' has no layer 'layer3' \(its layers: layer1, layer2"):
        validate_config(merge_config(default_config(), bad))


def test_a_configured_layer_the_architecture_lacks_is_refused_without_training(tmp_path, capsys):
    rc, err = check(tmp_path, capsys, {"features": {"backbones": {"smallcnn": {"layers": ["layer1", "layer7"]}}},
                                       "encode": {"layers": ["layer1"]}, "incontext": {"layer": "layer1"}})
    assert rc == 2 and "features.backbones.smallcnn.layers" in err and "['layer7']" in err and "layer4" in err


# --- against the data: a task, subject or class the BIDS dataset lacks (file names and events only) ---
def _bids(root, subjects=("01", "02"), task="vision", datatype="func", trial_types=("left_hand", "right_hand")):
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text('{"Name": "t", "BIDSVersion": "1.8.0"}')
    for s in subjects:
        d = root / f"sub-{s}" / "ses-1" / datatype
        d.mkdir(parents=True, exist_ok=True)
        if datatype == "func":
            (d / f"sub-{s}_ses-1_task-{task}_run-1_bold.nii.gz").write_bytes(b"")
        else:
            (d / f"sub-{s}_ses-1_task-{task}_run-1_eeg.edf").write_bytes(b"")
            (d / f"sub-{s}_ses-1_task-{task}_run-1_events.tsv").write_text(
                "onset\tduration\ttrial_type\n" + "".join(f"{i}\t1\t{t}\n" for i, t in enumerate(trial_types)))
    return root


def _with(root, section, extra=None):
    other = "eeg" if section == "fmri" else "fmri"
    return {section: {"bids_root": str(root), **(extra or {})}, "modalities": [section], other: {"bids_root": ""}}


def test_a_dataset_that_matches_passes(tmp_path, capsys):
    f = _bids(tmp_path / "f")
    e = _bids(tmp_path / "e", task="mi", datatype="eeg", trial_types=("left_hand", "right_hand", "769"))
    overlay = {"fmri": {"bids_root": str(f)}, "eeg": {"bids_root": str(e), "task": "mi",
                                                      "events": ["left_hand", "right_hand"]}}
    rc, err = check(tmp_path, capsys, overlay)
    assert rc == 0, err
    # the same checks run inside validate_config (rules/common.smk calls it before any job)
    validate_config(merge_config(default_config(), overlay))


@pytest.mark.parametrize("section, extra, expect", [
    # a task the data do not have: the ones they have listed
    ("fmri", {"task": "faces"}, ["config key fmri.task", "'faces'", "tasks with func/ data: vision"]),
    # a subject the data do not have
    ("fmri", {"subjects": ["01", "07"]}, ["config key fmri.subjects.1", "'07'", "its subjects: 01, 02"]),
    ("eeg", {"task": "vision", "subjects": ["03"]}, ["config key eeg.subjects.0", "'03'", "01, 02"]),
])
def test_task_or_subject_absent_from_the_data_is_refused(tmp_path, capsys, section, extra, expect):
    root = _bids(tmp_path / "d", datatype="func" if section == "fmri" else "eeg")
    rc, err = check(tmp_path, capsys, _with(root, section, extra))
    assert rc == 2, err
    for text in expect:
        assert text in err, f"{text!r} not in: {err}"
    assert str(root) in err


def test_a_subject_without_a_recording_of_the_task_is_refused(tmp_path, capsys):
    root = _bids(tmp_path / "d")
    (root / "sub-03" / "anat").mkdir(parents=True)  # every subject found: sub-03 has no func data
    rc, err = check(tmp_path, capsys, _with(root, "fmri"))
    assert rc == 2 and "config key fmri.subjects (empty: every subject)" in err and "sub-03" in err
    assert "those with one: 01, 02" in err


@pytest.mark.parametrize("events, expect", [
    (["left_hand", "feet"], ["config key eeg.events.1", "class 'feet'", "events of sub-01, sub-02",
                             "trial types left_hand, right_hand"]),
    ({"left": ["769"], "right": ["right_hand"]}, ["config key eeg.events.left", "trial_type '769'", "sub-02"]),
])
def test_eeg_classes_absent_from_the_events_are_refused(tmp_path, capsys, events, expect):
    root = _bids(tmp_path / "e", task="mi", datatype="eeg")
    rc, err = check(tmp_path, capsys, _with(root, "eeg", {"task": "mi", "events": events}))
    assert rc == 2, err
    for text in expect:
        assert text in err, f"{text!r} not in: {err}"
    assert "_events.tsv" in err  # the events files it read are named


def test_eeg_auto_events_and_auto_task_are_not_checked_against_the_data(tmp_path, capsys):
    root = _bids(tmp_path / "e", task="mi", datatype="eeg")
    rc, err = check(tmp_path, capsys, _with(root, "eeg", {"task": "auto", "events": "auto"}))
    assert rc == 0, err
