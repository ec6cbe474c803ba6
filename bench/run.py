"""Run the casedesk benchmarks and write the results page.

    python -m bench [--quick] [--output docs/benchmarks.md]

The lifecycle, timer, latency and memory benchmarks run against a Temporal
dev server started on free loopback ports; the replay starts its own
time-skipping test server. See docs/benchmarks.md for what each one measures.
"""

import argparse
import asyncio
import json
import shlex
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from bench import cases, memory, replay
from bench.machine import REPOSITORY, describe_machine, describe_versions, load_average
from bench.report import write_report
from starter.devserver import temporal_binary
from starter.logs import configure_logging, exit_without_teardown
from workflows.search_attributes import ALL_SEARCH_ATTRIBUTES

DEFAULT_LOG = (
    REPOSITORY.parent
    / "shared"
    / "data"
    / "uci-incident-event-log"
    / "incident_event_log.zip"
)
BENCHMARKS = ("lifecycle", "timers", "latency", "replay", "memory")


@dataclass
class Sizes:
    repeats: int = 3
    lifecycle_cases: int = 300
    concurrency: int = 50
    timer_cases: int = 1000
    # The cases' due times lie within this many seconds of each other.
    timer_spread_seconds: float = 60
    reminder_seconds: int = 40
    closure_seconds: int = 60
    latency_samples: int = 200
    memory_cases: int = 10_000
    replay_limit: int | None = None
    replay_timeout: float = 3600
    replay_compare_limit: int = 500
    replay_before: str | None = None


QUICK = Sizes(
    repeats=1,
    lifecycle_cases=4,
    concurrency=4,
    timer_cases=4,
    timer_spread_seconds=1,
    reminder_seconds=2,
    closure_seconds=4,
    latency_samples=5,
    memory_cases=20,
    replay_limit=5,
    replay_timeout=300,
    replay_compare_limit=5,
)


@dataclass
class Results:
    """Everything the results page shows, also written as JSON beside it."""

    command: str
    sizes: dict[str, Any]
    machine: dict[str, str]
    versions: dict[str, str]
    started_at: str = ""
    finished_at: str = ""
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=REPOSITORY / "docs" / "benchmarks.md",
        help="results page to write; the JSON goes beside it",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes and one run each, to check that the benchmarks work",
    )
    parser.add_argument(
        "--only",
        choices=BENCHMARKS,
        action="append",
        help="run only this benchmark (repeatable)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        help="runs of each benchmark except memory, which runs once (default 3)",
    )
    parser.add_argument(
        "--lifecycle-cases", type=int, help="cases per lifecycle run (default 300)"
    )
    parser.add_argument(
        "--timer-cases", type=int, help="cases per timer run (default 1000)"
    )
    parser.add_argument(
        "--memory-cases",
        type=int,
        help="open cases the memory worker holds (default 10000)",
    )
    parser.add_argument(
        "--replay-limit",
        type=int,
        help="replay only the first N incidents (default: all)",
    )
    parser.add_argument(
        "--replay-timeout",
        type=float,
        help="seconds one replay may take before it is stopped (default 3600)",
    )
    parser.add_argument(
        "--replay-before",
        metavar="COMMIT",
        help="also replay this commit's code, in turns with the current code, on --replay-compare-limit incidents",
    )
    parser.add_argument(
        "--replay-compare-limit",
        type=int,
        help="incidents per before/after replay (default 500)",
    )
    parser.add_argument(
        "--render",
        metavar="JSON",
        type=Path,
        help="run nothing; write the page again from the results in JSON, after a change to its text",
    )
    parser.add_argument(
        "--log",
        type=Path,
        default=DEFAULT_LOG,
        help="incident event log for the replay (CSV or ZIP)",
    )
    return parser.parse_args(argv)


def sizes_from(args: argparse.Namespace) -> Sizes:
    sizes = Sizes(**asdict(QUICK)) if args.quick else Sizes()
    for name in (
        "repeats",
        "lifecycle_cases",
        "timer_cases",
        "memory_cases",
        "replay_limit",
        "replay_timeout",
        "replay_compare_limit",
        "replay_before",
    ):
        value = getattr(args, name)
        if value is not None:
            setattr(sizes, name, value)
    if sizes.repeats < 1:
        raise ValueError(f"invalid --repeats {sizes.repeats}: give 1 or more")
    return sizes


async def repeat(
    results: Results,
    name: str,
    count: int,
    measure: Callable[[], Awaitable[dict[str, Any]]],
) -> None:
    """Run ``measure`` ``count`` times, storing each result with the load average before it."""
    runs = results.runs.setdefault(name, [])
    for index in range(count):
        load = load_average()
        started = time.perf_counter()
        print(
            f"bench: {name} run {index + 1} of {count} (load {load})",
            file=sys.stderr,
            flush=True,
        )
        try:
            measured = await measure()
        except Exception as err:  # noqa: BLE001 - one failed benchmark must not lose the others
            results.errors[name] = f"{type(err).__name__}: {err}"
            print(
                f"bench: {name} failed: {results.errors[name]}",
                file=sys.stderr,
                flush=True,
            )
            return
        measured["load_before"] = load
        measured["wall_seconds"] = time.perf_counter() - started
        runs.append(measured)


async def run_dev_server_benchmarks(
    results: Results, sizes: Sizes, selected: set[str], scratch: Path
) -> None:
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=temporal_binary(),
        search_attributes=ALL_SEARCH_ATTRIBUTES,
        dev_server_log_level="error",
    )
    async with env:
        client = env.client
        setup, workers = cases.build_workers(
            client,
            scratch / "outbox",
            max_cached_workflows=max(2000, sizes.timer_cases * 2),
        )
        async with workers[0], workers[1], workers[2]:
            if "lifecycle" in selected:
                await repeat(
                    results,
                    "lifecycle",
                    sizes.repeats,
                    lambda: cases.lifecycle_throughput(
                        setup, sizes.lifecycle_cases, sizes.concurrency
                    ),
                )
            if "timers" in selected:
                await repeat(
                    results,
                    "timers",
                    sizes.repeats,
                    lambda: cases.timer_precision(
                        setup,
                        sizes.timer_cases,
                        sizes.timer_spread_seconds,
                        sizes.reminder_seconds,
                        sizes.closure_seconds,
                    ),
                )
            if "latency" in selected:
                await repeat(
                    results,
                    "latency",
                    sizes.repeats,
                    lambda: cases.status_latency(setup, sizes.latency_samples),
                )
        if "memory" in selected:
            address = client.service_client.config.target_host
            # Resident memory varies little between runs, and one run of
            # 10,000 cases takes minutes, so it runs once.
            await repeat(
                results,
                "memory",
                1,
                lambda: memory.worker_memory(
                    client,
                    address,
                    sizes.memory_cases,
                    sizes.concurrency,
                    scratch / "memory-outbox",
                ),
            )


async def run_replay_benchmarks(
    results: Results, sizes: Sizes, log_path: Path, scratch: Path
) -> None:
    async def full() -> dict[str, Any]:
        run = await asyncio.to_thread(
            replay.run_replay,
            log_path,
            limit=sizes.replay_limit,
            timeout_seconds=sizes.replay_timeout,
        )
        return _replay_figures(run)

    await repeat(results, "replay", 1, full)
    if sizes.replay_before is None:
        return
    before_source = replay.export_commit(sizes.replay_before, scratch / "before")

    async def compare() -> dict[str, Any]:
        before = await asyncio.to_thread(
            replay.run_replay,
            log_path,
            limit=sizes.replay_compare_limit,
            timeout_seconds=sizes.replay_timeout,
            source=before_source,
        )
        after = await asyncio.to_thread(
            replay.run_replay,
            log_path,
            limit=sizes.replay_compare_limit,
            timeout_seconds=sizes.replay_timeout,
        )
        if before.summary != after.summary:
            raise RuntimeError(
                f"the replay summaries differ between commit {sizes.replay_before} and this code: {before.summary} != {after.summary}"
            )
        return {
            "before": _replay_figures(before),
            "after": _replay_figures(after),
            "speedup": before.seconds / after.seconds,
        }

    await repeat(results, "replay_compare", sizes.repeats, compare)


def _replay_figures(run: replay.ReplayRun) -> dict[str, Any]:
    return {
        "seconds": run.seconds,
        "rows": run.rows,
        "rows_per_second": run.rows_per_second,
        "peak_driver_mib": run.peak_driver_mib,
        "peak_server_mib": run.peak_server_mib,
        "driver_cpu_seconds": run.driver_cpu_seconds,
        "server_cpu_seconds": run.server_cpu_seconds,
        "summary": run.summary,
    }


async def run_all(args: argparse.Namespace) -> Results:
    sizes = sizes_from(args)
    selected = set(args.only or BENCHMARKS)
    results = Results(
        command=shlex.join(["python", "-m", "bench", *sys.argv[1:]]),
        sizes=asdict(sizes),
        machine=describe_machine(),
        versions=describe_versions(),
        started_at=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    )
    with tempfile.TemporaryDirectory(prefix="casedesk-bench-") as scratch:
        if selected & {"lifecycle", "timers", "latency", "memory"}:
            await run_dev_server_benchmarks(results, sizes, selected, Path(scratch))
        if "replay" in selected:
            if not args.log.exists():
                results.errors["replay"] = (
                    f"the incident log {args.log} was not found; pass --log PATH"
                )
            else:
                await run_replay_benchmarks(results, sizes, args.log, Path(scratch))
    results.finished_at = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    return results


def main(argv: list[str] | None = None) -> int:
    configure_logging("WARNING")
    args = parse_args(argv)
    if args.render is not None:
        try:
            results = Results(**json.loads(args.render.read_text()))
        except (OSError, ValueError, TypeError) as err:
            print(
                f"bench: cannot read results from {args.render}: {err}; give the "
                "JSON file a run of python -m bench wrote",
                file=sys.stderr,
            )
            return 2
        write_report(results, args.output)
        print(f"bench: wrote {args.output}", file=sys.stderr)
        return 0
    try:
        results = asyncio.run(run_all(args))
    except ValueError as err:
        print(f"bench: {err}", file=sys.stderr)
        return 2
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".json").write_text(
        json.dumps(asdict(results), indent=2) + "\n"
    )
    write_report(results, args.output)
    print(
        f"bench: wrote {args.output} and {args.output.with_suffix('.json')}",
        file=sys.stderr,
    )
    return 1 if results.errors else 0


if __name__ == "__main__":
    exit_without_teardown(main())
