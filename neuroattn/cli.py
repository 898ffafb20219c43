"""The ``neuroattn`` command: checks and simulations outside Snakemake.

Examples
--------
neuroattn check-config config/config.yaml my.yaml
neuroattn simulate fmri out/fmri --config config/tiny.yaml
neuroattn simulate eeg out/eeg
neuroattn stage                 # list the stages (one per Snakemake rule)
neuroattn stage image_split betas=... output=...
neuroattn summary results/      # the README's "What to expect" table from the leaderboard
neuroattn info
"""
from __future__ import annotations

import argparse
import json
import sys

from . import __version__


def _cmd_check_config(args) -> int:
    from .config import ConfigError, check_bids_root

    try:
        cfg = _merged_config(*args.config)
        fmri_root = check_bids_root(cfg["fmri"]["bids_root"], "fmri")
        check_bids_root(cfg["eeg"]["bids_root"], "eeg")
        objective = _objective(cfg, fmri_root)
    except ConfigError as exc:
        print(f"neuroattn: {exc}", file=sys.stderr)
        return 2
    print(f"{' + '.join(['config/config.yaml', *args.config])}: valid")
    if objective:
        print(f"backbone training objective: {objective}")
    return 0


def _objective(cfg, fmri_root) -> str | None:
    """``<objective> (<why>)`` of the ``weights: train`` backbones, as the workflow decides it
    (:func:`neuroattn.config_checks.backbone_objective`); None when nothing is trained here."""
    from .config import ConfigError
    from .config_checks import backbone_objective

    trains = any((b or {}).get("weights") == "train" for b in cfg["features"]["backbones"].values())
    mods = cfg.get("modalities") or ["fmri", "eeg"]
    if not trains or "fmri" not in mods or cfg["fmri"].get("format", "bids") not in ("bids", "fmriprep"):
        return None
    try:
        obj, why = backbone_objective(cfg, None if fmri_root is None else fmri_root / "stimuli" / "stimuli.tsv")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return f"{obj} ({why})"


def _merged_config(*paths):
    """config/config.yaml overlaid with each of ``paths`` in turn, as Snakemake merges
    ``--configfile`` files, then validated; errors name the file that could not be read."""
    import yaml

    from .config import ConfigError, default_config, merge_config, validate_config

    cfg = default_config()
    for path in paths:
        if not path:
            continue
        try:
            with open(path) as f:
                cfg = merge_config(cfg, yaml.safe_load(f) or {})
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read configuration: {exc}") from exc
    return validate_config(cfg)


def _parse_value(text: str):
    """A ``key=value`` argument's value: YAML (numbers, lists, mappings), else the plain string."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _cmd_stage(args) -> int:
    from .stages import STAGES, _load_all, run_stage

    if args.name is None:
        _load_all()
        for name in sorted(STAGES):
            print(f"{name:18s} {STAGES[name]}")
        return 0
    kwargs = {}
    for item in args.args:
        if "=" not in item:
            print(f"neuroattn: stage argument {item!r} is not key=value", file=sys.stderr)
            return 2
        k, v = item.split("=", 1)
        kwargs[k] = _parse_value(v)
    try:
        run_stage(args.name, kwargs, threads=args.threads, log_file=args.log)
    except (KeyError, TypeError) as exc:
        print(f"neuroattn: {exc}", file=sys.stderr)
        return 2
    return 0


def _cmd_simulate(args) -> int:
    from .utils import setup_logging

    setup_logging()
    cfg = _merged_config(args.config)
    if args.modality == "fmri":
        from .data.simulate import simulate_fmri_from_config

        summary = simulate_fmri_from_config(args.out, cfg["simulate"], task=cfg["fmri"]["task"], seed=cfg["seed"])
    else:
        from .data.simulate_eeg import simulate_eeg_from_config

        summary = simulate_eeg_from_config(args.out, cfg)
    print(json.dumps(summary, indent=1, default=str))
    return 0


def _cmd_summary(args) -> int:
    from pathlib import Path

    from .leaderboard import read_scores
    from .report.expect import summary_markdown

    path = Path(args.results)
    if path.is_dir():
        path = path / "scores" / "leaderboard.tsv"
    if not path.is_file():
        print(f"neuroattn: {path}: no leaderboard (give a results folder, e.g. results/, or a leaderboard.tsv)",
              file=sys.stderr)
        return 2
    try:
        text = summary_markdown(read_scores(path))
    except ValueError as exc:
        print(f"neuroattn: {exc}", file=sys.stderr)
        return 2
    if not text:
        print(f"neuroattn: {path}: none of the summarised metrics (per-subject rows)", file=sys.stderr)
        return 2
    print(text)
    return 0


def _cmd_info(args) -> int:
    from .report.provenance import versions

    for k, v in versions().items():
        print(f"{k:14s} {v}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="neuroattn", description="Attention-based brain models: checks and simulations "
                                "(the workflow itself runs with `snakemake`, see README).")
    p.add_argument("--version", action="version", version=f"neuroattn {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check-config", help="validate configuration files (merged over config/config.yaml, "
                       "as snakemake --configfile merges them) and their BIDS roots")
    c.add_argument("config", nargs="+", help="config files, later ones overriding earlier ones")
    c.set_defaults(func=_cmd_check_config)
    s = sub.add_parser("simulate", help="write a simulated BIDS dataset with ground truth")
    s.add_argument("modality", choices=["fmri", "eeg"])
    s.add_argument("out", help="output folder (the BIDS root)")
    s.add_argument("--config", help="config file overriding config/config.yaml (e.g. config/tiny.yaml)")
    s.set_defaults(func=_cmd_simulate)
    st = sub.add_parser("stage", help="run one workflow stage without Snakemake (no name: list the stages)",
                        description="Run the function behind one Snakemake rule, with its inputs, outputs, "
                        "params and wildcards as key=value arguments (values are YAML).")
    st.add_argument("name", nargs="?", help="stage (rule) name")
    st.add_argument("args", nargs="*", help="key=value arguments of the stage function")
    st.add_argument("--threads", type=int, default=1)
    st.add_argument("--log", help="log file (default: stderr)")
    st.set_defaults(func=_cmd_stage)
    m = sub.add_parser("summary", help="print the ranked summary of a run's leaderboard as markdown "
                       "(the README's 'What to expect' table)",
                       description="Per model and target kind: mean +- SEM over subjects, chance and ceiling, "
                       "one table per modality and metric (the group page's ranked summary).")
    m.add_argument("results", nargs="?", default="results",
                   help="results folder (reads <folder>/scores/leaderboard.tsv) or a leaderboard TSV")
    m.set_defaults(func=_cmd_summary)
    i = sub.add_parser("info", help="print the versions of the packages results depend on")
    i.set_defaults(func=_cmd_info)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
