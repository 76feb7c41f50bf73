"""``python -m agents``: the plan as one JSON line, and a full run on claude_sim in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.agents.test_page import sample_page


def run(*args: str, tmp: Path, hash_seed: str = "random") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env["PYTHONHASHSEED"] = hash_seed
    return subprocess.run(
        [sys.executable, "-m", "agents", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=tmp,
        check=False,
    )


def test_plan_prints_one_json_line(tmp_path: Path) -> None:
    done = run("plan", "Change the primary colour to dark green", tmp=tmp_path)
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.strip().splitlines()
    plan = json.loads(line)
    assert set(plan) == {"needs", "agents", "confidence", "reasons"}
    assert "styles" in plan["needs"]
    assert plan["agents"][-1] == "review"
    assert set(plan["reasons"]) == set(plan["needs"])
    assert "score" in plan["reasons"]["styles"]
    assert 0 <= plan["confidence"] <= 1


def test_plan_explains_an_instruction_alike_in_every_process(tmp_path: Path) -> None:
    """The reasons rank the words that decided a group; ties must not follow set order,
    which changes with the process's hash seed."""
    instruction = "Collapse the three feature sections into one"
    lines = {run("plan", instruction, tmp=tmp_path, hash_seed=seed).stdout for seed in "123"}
    assert len(lines) == 1, lines


def test_generate_edits_a_page_file_on_the_simulator(tmp_path: Path) -> None:
    page_file = tmp_path / "page.json"
    page_file.write_text(sample_page().model_dump_json())
    done = run(
        "add a pricing section",
        "--page",
        str(page_file),
        "--index",
        str(tmp_path / "index.lance"),
        tmp=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["page"]["id"] == "home"
    assert "layout_generator" in out["plan"]
    assert out["patch"]
    assert out["cost_usd"] == out["usage"]["total"]["cost_usd"] > 0


def test_unknown_group_is_a_clear_error(tmp_path: Path) -> None:
    done = run("hello", "--agents", "layout,magic", tmp=tmp_path)
    assert done.returncode != 0
    assert "unknown agent groups ['magic']" in done.stderr
