"""Workflow configuration: loading, schema validation and early checks of input paths.

Errors name the offending key (``fmri.glm.method``) or file so that a bad config is refused
before any job runs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "config" / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration value or an input path named by the configuration is invalid."""


def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    """Read the JSON schema (YAML-encoded) of the workflow configuration."""
    with open(path) as f:
        return yaml.safe_load(f)


def _key(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<top level>"


def _describe(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        where = _key(error)
        keys = ", ".join(f"{where}.{k}" if where != "<top level>" else k for k in extra)
        return f"unknown config key(s): {keys} (allowed here: {', '.join(allowed)})"
    if error.validator == "required":
        return f"config key {_key(error)}: {error.message}"
    if error.validator == "enum":
        allowed = ", ".join("null" if v is None else str(v) for v in error.validator_value)
        return f"config key {_key(error)}: {error.instance!r} is not allowed (allowed: {allowed})"
    if error.validator == "pattern":
        return f"config key {_key(error)}: {error.instance!r} {_pattern_hint(error)}"
    return f"config key {_key(error)}: {error.message}"


def _pattern_hint(error: jsonschema.ValidationError) -> str:
    """A pattern failure in words: the allowed names (EEG models) or the form, never the regex."""
    value = str(error.instance)
    if value.startswith("sub-"):
        return f"has the 'sub-' prefix: write the label only ({value[4:]!r})"
    if "basenet" in error.validator_value:
        names = _pattern_names(error.validator_value)
        return f"is not an EEG model (allowed: {', '.join(names)})"
    if error.validator_value == "^[a-zA-Z0-9]+$":
        return "is not a label (letters and digits only)"
    if error.validator_value.startswith("^[a-zA-Z0-9]+(_"):
        return "is not a name (letters and digits, words joined by '_')"
    return f"does not have the expected form ({error.validator_value})"


def _pattern_names(pattern: str) -> list[str]:
    """The names an anchored alternation pattern such as ``^(a(_(b|c))?|d)$`` matches."""
    import re

    body = pattern.strip("^$")
    m = re.fullmatch(r"\((\w+)\(_\(([\w|]+)\)\)\?\|([\w|]+)\)", body)
    if not m:
        return [body]
    base, suffixes, rest = m.groups()
    return [base, *(f"{base}_{s}" for s in suffixes.split("|")), *rest.split("|")]


def validate_config(config: dict, schema: dict | None = None, semantics: bool = True) -> dict:
    """Validate ``config`` against the workflow schema, then (``semantics``) the checks the schema
    cannot express (:func:`neuroattn.config_checks.check_semantics`: backbones and layers named
    but not defined, unknown architectures, ``eeg.tmin >= eeg.tmax``, context sizes below
    ``incontext.min_context``, ``sub-`` prefixed subjects).

    Parameters
    ----------
    config : dict
        The parsed configuration.
    schema : dict, optional
        Defaults to ``config/config.schema.yaml``.

    Returns
    -------
    dict
        ``config`` itself, unchanged.

    Raises
    ------
    ConfigError
        Listing every violation, each naming its dotted key.
    """
    schema = schema or load_schema()
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(_describe(e) for e in errors))
    if semantics:
        from .config_checks import check_semantics

        problems = check_semantics(config)
        if problems:
            raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    return config


def check_bids_root(root: str, modality: str) -> Path | None:
    """Check that a configured BIDS root exists and looks like a BIDS dataset.

    Parameters
    ----------
    root : str
        The configured ``<modality>.bids_root``; empty means "simulate" and returns None.
    modality : {"fmri", "eeg"}
        Which section the path came from, for the error message.

    Raises
    ------
    ConfigError
        When the folder is missing, has no ``dataset_description.json`` or no ``sub-*`` folder.
    """
    if not root:
        return None
    path = Path(root).expanduser()
    if not path.is_dir():
        raise ConfigError(f"config key {modality}.bids_root: folder {path} does not exist")
    if not (path / "dataset_description.json").is_file():
        raise ConfigError(
            f"config key {modality}.bids_root: {path} has no dataset_description.json (not a BIDS dataset)"
        )
    if not any(p.is_dir() for p in path.glob("sub-*")):
        raise ConfigError(f"config key {modality}.bids_root: {path} has no sub-* folders")
    return path


DEFAULT_CONFIG_PATH = SCHEMA_PATH.parent / "config.yaml"


def merge_config(base: dict, override: dict | None) -> dict:
    """``override`` laid over ``base`` recursively, as Snakemake merges ``--configfile`` files
    (mappings merge key by key; any other value replaces). Neither input is modified. The one
    merge helper of the package."""
    out = dict(base)
    for k, v in (override or {}).items():
        out[k] = merge_config(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def default_config() -> dict:
    """``config/config.yaml``: the only source of defaults (with the schema that checks it)."""
    with open(DEFAULT_CONFIG_PATH) as f:
        return yaml.safe_load(f)


def section_defaults(*keys: str) -> dict:
    """A copy of one section of the default config, e.g. ``section_defaults("fmri", "glm")``."""
    import copy

    node = default_config()
    for i, k in enumerate(keys):
        if not isinstance(node, dict) or k not in node:
            raise KeyError(f"config/config.yaml has no key {'.'.join(keys[:i + 1])}")
        node = node[k]
    return copy.deepcopy(node)


def with_defaults(section: dict | None, *keys: str, strict: bool = True) -> dict:
    """``section`` (a user's config section) laid over :func:`section_defaults` ``(*keys)``.

    With ``strict``, keys the default section lacks are refused, naming the section and the
    allowed keys (never dropped silently).
    """
    defaults = section_defaults(*keys)
    section = dict(section or {})
    if strict:
        unknown = sorted(set(section) - set(defaults))
        if unknown:
            raise KeyError(f"{'.'.join(keys)}: unknown key(s) {unknown} (allowed: {sorted(defaults)})")
    return merge_config(defaults, section)


def load_config(path: str | Path) -> dict[str, Any]:
    """Read and validate a YAML configuration file; errors name the file."""
    path = Path(path)
    try:
        with open(path) as f:
            config = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc}") from exc
    try:
        return validate_config(config)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
