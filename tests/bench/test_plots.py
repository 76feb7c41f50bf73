"""The side-by-side figure is drawn from run outcomes."""

from __future__ import annotations

from pathlib import Path

from bench.harness import Outcome, Run, Scenario
from bench.plots import plot_runs


def run_with(latencies: list[float]) -> Run:
    scenario = Scenario(limits={}, warmup_s=10, measure_s=60)
    outcomes = [
        Outcome("light-1", False, 100.0 + i, finished=100.0 + i + lat, status="completed")
        for i, lat in enumerate(latencies)
    ]
    outcomes.append(Outcome("light-2", False, 150.0))
    return Run(scenario, outcomes, window=(110.0, 170.0))


def test_plot_writes_a_png_per_comparison(tmp_path: Path) -> None:
    path = plot_runs(
        "cmp", {"seed plan": run_with([50.0]), "gateway": run_with([2, 3, 5])}, tmp_path
    )
    assert path == tmp_path / "cmp.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000


def test_plot_copes_with_a_system_that_completed_nothing(tmp_path: Path) -> None:
    path = plot_runs("none", {"seed plan": run_with([]), "gateway": run_with([1.0])}, tmp_path)
    assert path.exists()
