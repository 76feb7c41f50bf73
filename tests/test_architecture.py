"""The import contracts of pyproject.toml catch the imports that would break the layering."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("claude_facts", "claude_sim", "agents", "serve_app", "bench")
LINT = Path(sys.executable).with_name("lint-imports")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the sources and pyproject.toml, to break on purpose."""
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    # The copy comes first on the path, so the contracts are checked on it, not the checkout.
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT), "--no-cache"], cwd=tree, env=env, capture_output=True, text=True, timeout=120
    )


def add_import(tree: Path, module: str, line: str) -> None:
    path = tree / module
    source = path.read_text()
    head, sep, rest = source.partition("from __future__ import annotations\n")
    path.write_text(head + sep + line + "\n" + rest if sep else line + "\n" + source)


def test_the_tree_as_it_is_keeps_every_contract(tree: Path) -> None:
    result = lint(tree)
    assert result.returncode == 0, result.stdout
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("serve_app/config.py", "import claude_sim.ratelimit", "never import it"),
        ("serve_app/jobs.py", "from claude_sim.config import SimConfig", "never import it"),
        ("agents/pipeline.py", "from claude_sim import create_app", "never import it"),
        ("claude_sim/engine.py", "import serve_app.errors", "know nothing of the gateway"),
        ("claude_facts/models.py", "import claude_sim.config", "not the emulator's"),
        ("agents/planner.py", "import ray", "plain library"),
        ("agents/page.py", "import serve_app.errors", "builds on the pipeline"),
        ("serve_app/store/base.py", "import serve_app.jobs", "Inside the gateway"),
    ],
)
def test_an_import_across_the_layering_is_refused(
    tree: Path, module: str, line: str, contract: str
) -> None:
    add_import(tree, module, line)
    result = lint(tree)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert contract in " ".join(result.stdout.split())
