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
