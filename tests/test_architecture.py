"""The package's import rules (ARCHITECTURE.md): array-level code never reaches for files.

``models``, ``metrics`` and ``features`` take and return arrays: they must not import the data
readers (``neuroattn.data``), the stages, the reports or the leaderboard file writer. Only the
stages and the command line import the stages.
"""
import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "neuroattn"

# package -> subpackages/modules of neuroattn it may not import
FORBIDDEN = {
    "models": {"data", "stages", "report", "leaderboard", "cli"},
    "metrics": {"data", "stages", "report", "leaderboard", "cli", "models", "features"},
    "features": {"data", "stages", "report", "leaderboard", "cli", "models"},
    "data": {"stages", "report", "cli"},
    "report": {"stages", "cli"},
}
NOT_STAGES = {"stages", "cli"}  # every other module is forbidden to import neuroattn.stages


def imported_modules(path: Path, root: Path = PKG.parent) -> set[str]:
    """Top-level neuroattn subpackages imported by ``path`` (absolute and relative imports);
    ``root`` is the folder holding the ``neuroattn`` package."""
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)  # e.g. ["neuroattn", "models", "routing"]
    if parts[-1] == "__init__":
        parts = parts[:-1]
        pkg_parts = parts
    else:
        pkg_parts = parts[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg_parts[:len(pkg_parts) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
                names = [mod] if node.module else [f"{mod}.{a.name}" for a in node.names]
            else:
                names = [node.module or ""]
        for n in names:
            bits = n.split(".")
            if bits[0] == "neuroattn" and len(bits) > 1:
                out.add(bits[1])
    return out


def _modules():
    return sorted(p for p in PKG.rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_import_rules(path):
    own = path.relative_to(PKG).parts[0].removesuffix(".py")
    imported = imported_modules(path) - {own}
    bad = imported & FORBIDDEN.get(own, set())
    if own == "features" and path.name == "store.py":
        bad -= {"data"}
    if own not in NOT_STAGES:
        bad |= imported & {"stages"}
    assert not bad, f"neuroattn/{path.relative_to(PKG)} imports neuroattn.{sorted(bad)} (forbidden for {own}/)"


def test_the_checker_sees_relative_and_absolute_imports(tmp_path):
    # a check that cannot fail is no check: a models/ module importing data must be caught
    fake = tmp_path / "neuroattn" / "models" / "probe.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("from ..data.betas import Betas\nimport neuroattn.stages\nfrom . import routing\n"
                    "from .. import leaderboard\n")
    assert imported_modules(fake, root=tmp_path) == {"data", "stages", "models", "leaderboard"}


RULES = PKG.parent / "rules"


def test_every_rule_script_is_a_stage_call():
    """Rule scripts hold no logic: each one calls its registered stage by the rule's name."""
    import re

    from neuroattn.stages import STAGES, _load_all

    _load_all()
    scripts = sorted((RULES / "scripts").glob("*.py"))
    assert scripts
    rules_text = "\n".join(p.read_text() for p in RULES.glob("*.smk"))
    for script in scripts:
        code = [ln for ln in script.read_text().splitlines()
                if ln.strip() and not ln.lstrip().startswith(("#", '"""')) and '"""' not in ln]
        assert len(code) <= 2, f"{script.name}: {len(code)} lines of code (a rule script only calls its stage)"
        m = re.search(r'from_snakemake\(snakemake, "(\w+)"\)', script.read_text())
        assert m, f"{script.name} does not call from_snakemake"
        assert m.group(1) in STAGES, f"{script.name}: stage {m.group(1)!r} is not registered"
        assert re.search(rf"rule {m.group(1)}:", rules_text), f"stage {m.group(1)!r} names no rule"


def test_stage_command_lists_and_refuses(capsys):
    from neuroattn.cli import main

    assert main(["stage"]) == 0
    listed = capsys.readouterr().out
    assert "encode " in listed and "eeg_model " in listed
    assert main(["stage", "no_such_rule"]) == 2
    assert "unknown stage 'no_such_rule'" in capsys.readouterr().err
    assert main(["stage", "image_split", "betas=[]"]) == 2  # missing arguments are named
    assert "missing argument(s)" in capsys.readouterr().err


def test_stage_index_matches_the_registry():
    """The source index that finds a stage without importing the others names exactly the stages
    the modules register, each under its own module."""
    from neuroattn.stages import STAGES, _load_all, stage_index

    _load_all()
    assert {n: m.split(":")[0] for n, m in STAGES.items()} == stage_index()


def _fresh(code: str) -> str:
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=PKG.parent, timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_a_job_imports_only_its_own_stage_module():
    """A workflow job looks its stage up without importing the other rule families: finding
    ``leaderboard`` must not bring in the EEG, encoder or in-context modules (nor torch)."""
    out = _fresh("import sys\nfrom neuroattn.stages import get_stage\nget_stage('leaderboard')\n"
                 "print(sorted(m for m in sys.modules if m.startswith('neuroattn.stages.')))\n"
                 "print('torch' in sys.modules)")
    mods, torch_loaded = out.split("\n")[:2]
    assert mods == "['neuroattn.stages.scoring']"
    assert torch_loaded == "False"


def test_stage_modules_do_not_import_torch_at_module_level():
    """torch costs each job ~2 s to import: stage modules import it inside the stages that train
    or run a network, so the jobs that only read tables and write reports never pay it."""
    from neuroattn.stages import _MODULES

    out = _fresh("import sys\n"
                 + "".join(f"import neuroattn.stages.{m}\n" for m in _MODULES)
                 + "print('torch' in sys.modules)")
    assert out.strip() == "False"


def test_a_ridge_encoder_job_does_not_import_torch():
    """The ridge baselines (half the encode jobs) fit and predict without torch: importing it cost
    each such job ~2.5 s, more than its fit."""
    code = """
import sys
import numpy as np
from neuroattn.models.encoding import EncodingData, fit_encoder
rng = np.random.default_rng(0)
X = rng.normal(size=(40, 4, 3)).astype(np.float32)
Y = X.mean(1) @ rng.normal(size=(3, 6)) + 0.1 * rng.normal(size=(40, 6))
d = EncodingData('01', X[:30], X[30:], Y[:30], Y[30:], np.arange(30), np.arange(30, 40), np.ones(10),
                 np.array(['V1'] * 3 + ['V4'] * 3), np.array(['L'] * 6), np.ones(6), (2, 2))
for model in ('ridge_pooled', 'ridge_grid'):
    out = fit_encoder(d, model, {'alphas': [1.0, 10.0], 'cv': 3})
    assert out['predictions'].shape == (10, 6), out['predictions'].shape
print('torch' in sys.modules)
"""
    assert _fresh(code).strip() == "False"
