"""`python -m bench` lists the benchmarks and refuses an unknown name with a sentence.

(The benchmarks themselves run in CI as `python -m bench health --quick`, outside pytest, so
their load does not disturb the tests.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_listing_names_every_benchmark():
    result = bench()
    assert result.returncode == 0
    assert "  health  GET /health requests/s and latency" in result.stdout


def test_an_unknown_benchmark_exits_2_naming_the_known_ones():
    result = bench("nope")
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "error: there is no benchmark named 'nope'; the benchmarks are: health."
    )
