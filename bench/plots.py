"""PNG figures of load runs, side by side: completions over time and latency spread."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt
from matplotlib.ticker import NullFormatter

from bench.harness import Run
from bench.report import RESULTS


def plot_runs(name: str, runs: dict[str, Run], out: Path = RESULTS) -> Path:
    """Cumulative completed generations over the run, and latency percentiles, per system."""
    figure, (timeline, spread) = plt.subplots(1, 2, figsize=(11, 4))
    for label, run in runs.items():
        # Time 0 is when the users started: the measured window opens after the warm-up.
        origin = run.window[0] - run.scenario.warmup_s
        done = [o for o in run.outcomes if o.status == "completed" and o.finished is not None]
        finished = sorted(o.finished - origin for o in done if o.finished is not None)
        timeline.step(finished, range(1, len(finished) + 1), where="post", label=label)
        latency = sorted(o.finished - o.submitted for o in done if o.finished and not o.cached)
        if latency:
            shares = [100 * (i + 1) / len(latency) for i in range(len(latency))]
            spread.plot(latency, shares, label=label)
    first = next(iter(runs.values())).scenario
    timeline.axvspan(first.warmup_s, first.warmup_s + first.measure_s, alpha=0.06)
    timeline.set(xlabel="seconds since the first request", ylabel="generations completed")
    timeline.set_title("Completions (shaded: measured window)")
    spread.set(xlabel="end-to-end latency (s)", ylabel="% of fresh generations", xscale="log")
    spread.xaxis.set_minor_formatter(NullFormatter())
    spread.set_title("Latency, cumulative")
    for axis in (timeline, spread):
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
