"""A smoke run of the benchmarks with tiny sizes: every benchmark runs and the page is written.

It checks the results' shape and plain facts, never their speed: speed
belongs to `make bench`.
"""

import json
import subprocess
import sys
from pathlib import Path

from bench.report import SECTIONS

REPOSITORY = Path(__file__).resolve().parent.parent


def run_bench(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``python -m bench`` with ``args`` from the repository."""
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_quick_bench_writes_results(tmp_path: Path, incident_log: Path) -> None:
    output = tmp_path / "benchmarks.md"

    finished = run_bench(
        "--quick", "--output", str(output), "--log", str(incident_log), timeout=280
    )

    assert finished.returncode == 0, finished.stderr[-3000:]
    results = json.loads(output.with_suffix(".json").read_text())
    assert results["errors"] == {}
    for name in ("lifecycle", "timers", "latency", "replay", "memory"):
        assert len(results["runs"][name]) == 1, name
    lifecycle = results["runs"]["lifecycle"][0]
    assert lifecycle["casedesk_cases_per_second"] > 0
    assert lifecycle["baseline_cases_per_second"] > 0
    assert lifecycle["notices_baseline_cases_per_second"] > 0
    timers = results["runs"]["timers"][0]
    cases = results["sizes"]["timer_cases"]
    assert timers["timed_actions"] + timers["reminders_left_out"] == 2 * cases
    assert timers["timed_actions"] >= cases
    assert timers["casedesk_p99_seconds"] >= 0
    assert timers["baseline_p99_seconds"] >= 0
    replay = results["runs"]["replay"][0]
    assert replay["summary"]["incidents"] == results["sizes"]["replay_limit"]
    assert replay["rows"] == replay["summary"]["rows_read"]
    memory = results["runs"]["memory"][0]
    assert memory["casedesk_loaded_mib"] > 0
    page = output.read_text()
    for name in ("lifecycle", "timers", "latency", "replay", "memory"):
        assert SECTIONS[name][0] in page
    assert "load average" in page
    assert results["versions"]["temporalio"] in page


def test_render_rewrites_page_from_json(tmp_path: Path) -> None:
    # The committed results: rendering them again gives the committed page.
    results = REPOSITORY / "docs" / "benchmarks.json"
    output = tmp_path / "benchmarks.md"

    finished = run_bench("--render", str(results), "--output", str(output))

    assert finished.returncode == 0, finished.stderr[-3000:]
    assert output.read_text() == (REPOSITORY / "docs" / "benchmarks.md").read_text()


def test_render_rejects_other_json(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    results.write_text('{"lifecycle": 1}')

    finished = run_bench(
        "--render", str(results), "--output", str(tmp_path / "page.md")
    )

    assert finished.returncode == 2
    assert str(results) in finished.stderr
    assert not (tmp_path / "page.md").exists()
