"""Each quick bench runs end to end on a tiny workload and prints its table.

The benches are how speed and quality are measured (README "Measured"); nothing else runs
them, and one (latency) once broke unnoticed when the worker's sink grew a field. These runs
check that they work and print what they promise, never how fast anything was.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the latency and replay benches read ../shared's PETS clip


def bench(*args: str, timeout: float = 300) -> str:
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done.stdout


def test_latency_bench_reports_alert_latency():
    out = bench("bench/latency.py", "--cameras", "2", "--fps", "2", "--seconds", "25",
                "--model", "models/bondwatch-person.pt")  # fmt: skip
    assert "p95" in out and "median" in out, out


def test_replay_speed_bench_prints_the_ratio_to_the_plain_loop():
    out = bench("bench/replay_speed.py", "--frames", "12", "--model", "bondwatch-person")
    assert "ratio" in out, out


def test_sim_render_bench_prints_the_real_time_factor():
    out = bench("bench/sim_render.py", "--seconds", "2")
    assert "real-time x" in out, out
