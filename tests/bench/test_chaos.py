"""A worker node dies under load: every accepted generation still ends, once.

The chaos benchmark's own harness in a subprocess (it needs a Ray cluster of three nodes,
which cannot share this process with the session's Ray): a head and two worker nodes,
the gateway over a real Redis, claude_sim injecting its faults, and the worker node that
hosts the most agent replicas SIGKILLed mid-load. Ground truth is outside the gateway:
what the clients received, the event logs in Redis, claude_sim's counters.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.redis]

ROOT = Path(__file__).resolve().parents[2]
GENERATIONS = 16


def test_removing_a_worker_node_under_load_leaves_every_generation_ended_once(
    tmp_path: Path,
) -> None:
    out = tmp_path / "chaos.json"
    command = [sys.executable, "-m", "bench.chaos", "--generations", str(GENERATIONS)]
    command += ["--load", "30", "--drain", "240", "--faults", "node", "--out", str(out)]
    subprocess.run(command, cwd=ROOT, check=True, timeout=900, capture_output=True)
    run = json.loads(out.read_text())
    before = run["placement_before"]
    with_agents = [n for n, actors in before.items() if any(a.startswith("agent_") for a in actors)]
    assert len(with_agents) >= 2, f"agent replicas were not spread over the nodes: {before}"
    assert sum(actors.get("BudgetKeeper", 0) for actors in before.values()) == 1
    (fault,) = run["gateway_faults"]
    assert fault["fault"] == "worker node removed"
    assert not fault["what"].startswith("node with 0 "), "the node removed hosted agents"
    assert run["accepted"] == GENERATIONS
    assert run["lost"] == 0, run["samples"]
    assert run["jobs_by_terminal_events"] == {"1": GENERATIONS}
    assert run["succeeded"] + sum(run["errors"].values()) == GENERATIONS
    assert run["upstream_429s"] == 0
