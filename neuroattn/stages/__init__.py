"""Workflow stages: one function per Snakemake rule; the only code that reads and writes files.

Each module holds one rule family (``encode``, ``incontext``, ``eeg``, ...). A stage function
takes plain keyword arguments named after its rule's ``input``, ``output``, ``params`` and
``wildcards`` (paths as ``str``, params as config values) plus ``threads``, and returns nothing:
it writes its outputs. Rule scripts call it through :func:`from_snakemake`; the ``neuroattn
stage`` command calls the same function without Snakemake (:func:`run_stage`).

Stages may import every other subpackage; ``models``, ``metrics`` and ``features`` (apart from
its feature store) take and return arrays and never import ``data`` or ``stages``.
"""
from __future__ import annotations

import ast
import functools
import importlib
import inspect
import logging
from pathlib import Path
from typing import Callable

__all__ = ["STAGES", "get_stage", "from_snakemake", "run_stage"]

# Stage name (the rule's name) -> "module:function" in this package. Rules and the CLI read this.
STAGES: dict[str, str] = {}


def register(name: str) -> Callable:
    """Decorator: list a stage function under its rule's name in :data:`STAGES`."""
    def deco(func):
        STAGES[name] = f"{func.__module__}:{func.__name__}"
        return func
    return deco


_MODULES = ("simulate", "fmri", "features", "encode", "incontext", "eeg", "scoring", "report")


def _load_all() -> None:
    for mod in _MODULES:
        try:
            importlib.import_module(f"{__name__}.{mod}")
        except ModuleNotFoundError as exc:  # a stage module not written yet
            if exc.name != f"{__name__}.{mod}":
                raise


@functools.lru_cache(maxsize=None)
def stage_index() -> dict[str, str]:
    """Stage name -> the module that registers it, read from the ``@register("...")`` lines of
    the stage modules' source without importing them.

    A workflow job needs one stage; importing every rule family to find it cost each job the
    imports of all the others (torch, h5py, MNE) before its own work started.
    """
    index: dict[str, str] = {}
    here = Path(__file__).parent
    for mod in _MODULES:
        path = here / f"{mod}.py"
        if not path.exists():  # a stage module not written yet
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(node, ast.FunctionDef):
                continue
            for dec in node.decorator_list:
                if (isinstance(dec, ast.Call) and isinstance(dec.func, ast.Name) and dec.func.id == "register"
                        and dec.args and isinstance(dec.args[0], ast.Constant)):
                    index[dec.args[0].value] = f"{__name__}.{mod}"
    return index


def get_stage(name: str) -> Callable:
    """The stage function of rule ``name``; an unknown name lists the known ones.

    Only the module that registers ``name`` is imported (:func:`stage_index`).
    """
    index = stage_index()
    if name not in index:
        raise KeyError(f"unknown stage {name!r} (known: {', '.join(sorted(index))})")
    module = importlib.import_module(index[name])  # registers its stages
    return getattr(module, STAGES[name].split(":")[1])


def _named(items) -> dict:
    """The named entries of a snakemake ``input``/``output``/``params``/``wildcards`` object."""
    return {k: items[k] for k in items.keys()} if items is not None and hasattr(items, "keys") else {}


def call_stage(func: Callable, kwargs: dict, threads: int = 1):
    """Call ``func`` with the entries of ``kwargs`` it accepts; unknown ones are refused."""
    sig = inspect.signature(func)
    accepts_var = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    if "threads" in sig.parameters:
        kwargs = {**kwargs, "threads": int(threads)}
    unknown = sorted(set(kwargs) - set(sig.parameters)) if not accepts_var else []
    if unknown:
        raise TypeError(f"stage {func.__name__}: unexpected argument(s) {unknown} "
                        f"(accepted: {', '.join(sig.parameters)})")
    missing = [n for n, p in sig.parameters.items()
               if p.default is p.empty and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and n not in kwargs]
    if missing:
        raise TypeError(f"stage {func.__name__}: missing argument(s) {missing}")
    return func(**kwargs)


def from_snakemake(smk, func: Callable | str):
    """Run stage ``func`` (a function or a stage name) with a rule's named inputs, outputs,
    params and wildcards as keyword arguments; logging goes to the rule's log file. The rule's
    ``threads`` bound torch, BLAS and OpenMP (:func:`neuroattn.utils.set_threads`): Snakemake
    sets no thread variables for ``script:`` rules.

    A name used twice (an input and an output both called ``pred``) is an error: rename one in
    the rule.
    """
    from ..utils import set_threads, setup_logging

    func = get_stage(func) if isinstance(func, str) else func
    log_file = smk.log[0] if len(smk.log) else None
    setup_logging(log_file)
    set_threads(smk.threads)
    kwargs: dict = {}
    for what in ("input", "output", "params", "wildcards"):
        for k, v in _named(getattr(smk, what)).items():
            if k in kwargs:
                raise TypeError(f"stage {func.__name__}: {what} name {k!r} is used twice in its rule")
            kwargs[k] = v
    try:
        return call_stage(func, kwargs, threads=smk.threads)
    except Exception as exc:
        logging.getLogger("neuroattn.stages").error("stage %s failed: %s", func.__name__, exc)
        raise


def run_stage(name: str, kwargs: dict, threads: int = 1, log_file=None):
    """Run a stage by name outside Snakemake (the ``neuroattn stage`` command)."""
    from ..utils import set_threads, setup_logging

    setup_logging(log_file)
    set_threads(threads)
    return call_stage(get_stage(name), kwargs, threads=threads)
