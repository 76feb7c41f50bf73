"""bench.profile: py-spy's samples of a real process, put down to packages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.profile import Sampler, package_of, summarise

LOOP = "MainThread;run (asyncio/base_events.py:600)"
STACKS = f"""\
{LOOP};follow (/w/serve_app/event_feed.py:90) 30
{LOOP};__call__ (/s/site-packages/ray/serve/_private/proxy.py:10) 50
{LOOP};_select (selectors.py:468) 20
"""


def test_each_sample_goes_to_the_package_of_its_innermost_frame() -> None:
    spent = summarise(STACKS, seconds=4)
    assert spent["samples"] == 100
    assert spent["busy"] == 0.5  # 100 samples of the 200 due at 50 Hz over 4 s
    assert spent["by_package"] == {"Serve": 0.5, "gateway": 0.3, "asyncio, threads": 0.2}
    assert spent["top_frames"][0] == ["__call__ (ray/serve/_private/proxy.py)", 0.5]
    assert package_of("/x/site-packages/ray/_private/worker.py") == "Ray core"
    assert package_of("/x/site-packages/starlette/routing.py") == "FastAPI, Starlette"


def test_a_busy_process_is_sampled_where_it_spins(tmp_path: Path) -> None:
    script = tmp_path / "spin.py"
    script.write_text("def spin():\n    while True:\n        pass\n\nspin()\n")
    child = subprocess.Popen([sys.executable, str(script)])
    try:
        spent = Sampler(child.pid, seconds=2).result()
    finally:
        child.kill()
        child.wait()
    assert spent["busy"] > 0.5
    assert spent["top_frames"][0][0].startswith("spin (")
