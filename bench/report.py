"""Write the benchmark results as a Markdown page."""

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.stats import spread

if TYPE_CHECKING:
    from bench.run import Results

GOALS = {
    "lifecycle": "at least 0.8 of the baseline's cases per second",
    "timers": "p99 delay under 1 s with 1,000 cases due in the same minute",
    "replay": "the full log (24,918 incidents, 141,712 rows) in under 10 minutes on a 2-core machine",
}


def _figure(
    runs: Sequence[dict[str, Any]], key: str, digits: int = 2, unit: str = ""
) -> str:
    values = [float(run[key]) for run in runs if key in run]
    if not values:
        return "n/a"
    return spread(values).describe(digits, unit)


def _nested(runs: Sequence[dict[str, Any]], side: str) -> list[dict[str, Any]]:
    return [run[side] for run in runs]


def _loads(runs: Sequence[dict[str, Any]]) -> str:
    return "; ".join(str(run.get("load_before", "?")) for run in runs)


def _table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    header, *body = rows
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return lines


def _lifecycle(runs: list[dict[str, Any]], sizes: dict[str, Any]) -> list[str]:
    return [
        f"{sizes['lifecycle_cases']} cases per run, {sizes['concurrency']} at a time. Each case is opened, moved to In Progress and Pending Customer Input by support, commented on by the customer (Update Received), moved to Awaiting Customer Confirmation and closed by the customer; its run then sends the closure email and completes. Along the way casedesk sends five notices, each an activity on the notification task queue. The baseline workflow accepts five updates and completes. The second baseline also starts one activity that does nothing per update, on a task queue of its own, which is what Temporal itself needs for a case that sends five emails. Its ratio to the plain baseline is the most any workflow that sends those five notices as activities can reach against the goal.",
        "",
        *_table(
            [
                ("figure", "value"),
                ("casedesk, cases/s", _figure(runs, "casedesk_cases_per_second")),
                ("baseline, cases/s", _figure(runs, "baseline_cases_per_second")),
                ("ratio casedesk / baseline", _figure(runs, "ratio")),
                ("goal", GOALS["lifecycle"]),
                (
                    "baseline with five activities, cases/s",
                    _figure(runs, "notices_baseline_cases_per_second"),
                ),
                (
                    "ratio casedesk / baseline with five activities",
                    _figure(runs, "ratio_to_notices_baseline"),
                ),
                (
                    "ratio baseline with five activities / baseline",
                    _figure(
                        [
                            {
                                "ceiling": run["notices_baseline_cases_per_second"]
                                / run["baseline_cases_per_second"]
                            }
                            for run in runs
                            if "notices_baseline_cases_per_second" in run
                        ],
                        "ceiling",
                    ),
                ),
                ("load average before each run (1/5/15 min)", _loads(runs)),
            ]
        ),
    ]


def _timers(runs: list[dict[str, Any]], sizes: dict[str, Any]) -> list[str]:
    return [
        f"{sizes['timer_cases']} cases per run, opened at even intervals over {sizes.get('timer_spread_seconds', 0):g} seconds, so that their reminders come due in the same minute and so do their closures, in Pending Customer Input with `CASE_POLICY_PENDING_CUSTOMER_INPUT_REMINDER={sizes['reminder_seconds']}s` and `CASE_POLICY_PENDING_CUSTOMER_INPUT_CLOSURE={sizes['closure_seconds']}s`. The delay of a reminder runs from its due time to the `reminder_sent` history entry, which is written after the email activity; the delay of a closure runs to the `status_changed` entry to Closed. Both entries carry the workflow time of the task that wrote them. The baseline is a workflow that sleeps until the same kind of due time and returns the workflow time it woke at.",
        "",
        *_table(
            [
                ("figure", "casedesk", "baseline timer"),
                (
                    "p50 delay",
                    _figure(runs, "casedesk_p50_seconds", 3, "s"),
                    _figure(runs, "baseline_p50_seconds", 3, "s"),
                ),
                (
                    "p99 delay",
                    _figure(runs, "casedesk_p99_seconds", 3, "s"),
                    _figure(runs, "baseline_p99_seconds", 3, "s"),
                ),
                (
                    "max delay",
                    _figure(runs, "casedesk_max_seconds", 3, "s"),
                    _figure(runs, "baseline_max_seconds", 3, "s"),
                ),
                (
                    "reminders left out because the closure was due too",
                    _figure(runs, "reminders_left_out", 0),
                    "",
                ),
                ("goal", GOALS["timers"], ""),
                ("load average before each run", _loads(runs), ""),
            ]
        ),
    ]


def _latency(runs: list[dict[str, Any]], sizes: dict[str, Any]) -> list[str]:
    rows: list[tuple[str, ...]] = [("figure", "casedesk", "baseline")]
    for kind in ("update", "signal"):
        for level in ("p50", "p99"):
            rows.append(
                (
                    f"{kind}, {level}",
                    _figure(runs, f"casedesk_{kind}_{level}_ms", 1, "ms"),
                    _figure(runs, f"baseline_{kind}_{level}_ms", 1, "ms"),
                )
            )
    rows.append(("load average before each run", _loads(runs), ""))
    return [
        f"{sizes['latency_samples']} status changes per run on one case, alternating In Progress and Pending Development, each timed from sending `change_status` until a `get_case` query returns the new status (queries are repeated without pause). An update has been applied when it returns, so its time is the update plus one query. The baseline workflow stores a status string through an update or a signal and returns it from a query.",
        "",
        *_table(rows),
    ]


def _memory(runs: list[dict[str, Any]], sizes: dict[str, Any]) -> list[str]:
    return [
        f"A separate worker process with a workflow cache of {sizes['memory_cases'] + 100} holds {sizes['memory_cases']} workflows, each waiting on a 7-day timer: cases opened in Pending Customer Input, or baseline timer workflows. Resident memory (RSS, read with psutil) is the highest of five readings half a second apart, taken before the first workflow starts and after a query to every workflow has returned.",
        "",
        *_table(
            [
                ("figure", "casedesk", "baseline timer"),
                (
                    "RSS idle",
                    _figure(runs, "casedesk_idle_mib", 1, "MiB"),
                    _figure(runs, "baseline_idle_mib", 1, "MiB"),
                ),
                (
                    "RSS holding the workflows",
                    _figure(runs, "casedesk_loaded_mib", 1, "MiB"),
                    _figure(runs, "baseline_loaded_mib", 1, "MiB"),
                ),
                (
                    "per cached workflow",
                    _figure(runs, "casedesk_kib_per_workflow", 1, "KiB"),
                    _figure(runs, "baseline_kib_per_workflow", 1, "KiB"),
                ),
                ("ratio casedesk / baseline per workflow", _figure(runs, "ratio"), ""),
                ("load average before each run", _loads(runs), ""),
            ]
        ),
    ]


def _replay(runs: list[dict[str, Any]], sizes: dict[str, Any]) -> list[str]:
    limit = sizes["replay_limit"]
    scope = (
        "the whole log" if limit is None else f"the first {limit} incidents of the log"
    )
    run = runs[0]
    return [
        f"`casedesk replay` of {scope}, once, in its own process. The replay starts a Java time-skipping test server for each part of 5,000 incidents, one after another. CPU seconds are read from the processes, and the server figures add up all the test servers.",
        "",
        *_table(
            [
                ("figure", "value"),
                ("rows", str(run["rows"])),
                ("wall time", f"{run['seconds']:.1f} s"),
                ("rows per second", f"{run['rows_per_second']:.0f}"),
                ("peak RSS, replay process", f"{run['peak_driver_mib']:.0f} MiB"),
                ("peak RSS, test server", f"{run['peak_server_mib']:.0f} MiB"),
                (
                    "CPU, replay process / test server",
                    f"{run['driver_cpu_seconds']:.0f} s / {run['server_cpu_seconds']:.0f} s",
                ),
                ("goal", GOALS["replay"]),
                ("load average before the run", str(run["load_before"])),
            ]
        ),
        "",
        "Summary counts of this replay:",
        "",
        "```",
        *(f"{key}: {value}" for key, value in run["summary"].items()),
        "```",
    ]


# Findings of the replay's py-spy profiles and the changes made for them, in order.
PROFILE_NOTES = [
    "What the profiles showed, and what changed:",
    "",
    "- First round, from commit `f24708d`. A py-spy profile of the replay of 1,000 incidents showed the main thread busy in 74% of its samples. 23% of all samples created workflow instances in the sandbox, more than half of that compiling workflows/support_case.py from source (no bytecode cache is written when PYTHONDONTWRITEBYTECODE is set), and most of the rest was the SDK's per-activation encoding and decoding. Changes: the worker passes the `workflows` package through the sandbox. The replay sends each row with its log time as `effective_at` and applies the rows of many instants at once. It builds each opened case locally instead of querying it. Measured then on a busy machine: 1.38 times faster on 500 incidents.",
    "- Second round, from commit `fcd59aa`. The replay of 1,000 incidents spent 22.6 s of its 55 s in 199 stops of the clock, one before each pending deadline, each waiting for the timers to fire and the workflows to act before the next rows. Now a batch ends only where a case has a row before one of its own deadlines in the batch; the deadlines of other cases fire in the same move of the clock (`plan_batch` in starter/replay.py). The 3,000-incident replay needed 84 batches. The same profile showed the notice activity at a fifth of the replay's CPU, 2.8 ms per message: each one created the Maildir folders, compiled a glob pattern for cur/ and checked the templates' files on disk. Now the folders are created when a write finds them missing, cur/ is scanned without a pattern, and templates are loaded once: 1.7 ms per message.",
    "- Third round, from commit `2d3ae62`. The full replay took 2,378 s, and the Java test server used 1,977 of its 3,087 CPU seconds. The server's CPU per incident grows with the number of workflows it keeps: 12.7 ms at 1,000 incidents, 16.5 ms at 3,000 and 79 ms for the whole log. Incidents do not affect each other, so the replay now runs them in parts of 5,000, each on a fresh test server. The full replay then took 1,006 s, with the same counts, and the servers used 388 CPU seconds (section 4).",
    "- Most of what is left is outside casedesk's code, and all of it runs in one process on one core. In the workflow worker, 28% of the samples are the SDK's `_get_current_dc`, which runs a compiled-on-the-fly statement inside the sandbox for every payload it encodes or decodes, three passes each way per workflow task (temporalio 1.35). Composing the notices with the standard library's email package takes most of the rest of the notice activity, which is 28% of the replay process's samples. A second process for the workflows cut the 3,000-incident replay only from 152 s to 132 s while the single test server was the larger cost. It was left out, because the replay is specified to run the worker code in the replay's own process.",
]


def _replay_compare(runs: list[dict[str, Any]], sizes: dict[str, Any]) -> list[str]:
    before = _nested(runs, "before")
    after = _nested(runs, "after")
    return [
        f"The replay of the first {sizes['replay_compare_limit']} incidents, run in turns from commit `{sizes['replay_before']}` and from the current code, with the same Python environment (the table at the end of this section). Each pair must produce the same summary counts.",
        "",
        *PROFILE_NOTES,
        "",
        *_table(
            [
                ("figure", "before", "after"),
                (
                    "wall time",
                    _figure(before, "seconds", 1, "s"),
                    _figure(after, "seconds", 1, "s"),
                ),
                (
                    "rows per second",
                    _figure(before, "rows_per_second", 0),
                    _figure(after, "rows_per_second", 0),
                ),
                (
                    "CPU, replay process",
                    _figure(before, "driver_cpu_seconds", 0, "s"),
                    _figure(after, "driver_cpu_seconds", 0, "s"),
                ),
                (
                    "CPU, test server",
                    _figure(before, "server_cpu_seconds", 0, "s"),
                    _figure(after, "server_cpu_seconds", 0, "s"),
                ),
                ("speed-up, before time / after time", _figure(runs, "speedup"), ""),
                ("load average before each pair", _loads(runs), ""),
            ]
        ),
    ]


SECTIONS = {
    "lifecycle": ("1. Lifecycle throughput", _lifecycle),
    "timers": ("2. Timer precision", _timers),
    "latency": ("3. Status change to visible status", _latency),
    "replay": ("4. Replay of the incident log", _replay),
    "replay_compare": ("4b. Replay before and after the speed-up", _replay_compare),
    "memory": ("5. Worker memory", _memory),
}


def render(results: "Results") -> str:
    lines = [
        "# casedesk benchmarks",
        "",
        "Generated by `make bench` (`python -m bench`); do not edit by hand. "
        "The machine was shared with other jobs while it ran unless the load "
        "averages below are near zero, so compare the ratios against the baseline, "
        "which were measured minutes apart in the same run, rather than absolute figures. "
        "Each figure is the median of the runs with the lowest and highest value.",
        "",
        "To profile the replay, which is the slowest benchmark: "
        "`.venv/bin/py-spy record --format speedscope -o replay.json -- "
        ".venv/bin/casedesk replay LOG --limit 1000 --no-progress` "
        "(py-spy and pyinstrument come with the `bench` extra).",
        "",
        f"- Command: `{results.command}`",
        f"- Started {results.started_at}, finished {results.finished_at}",
        *(f"- {key}: {value}" for key, value in results.machine.items()),
        *(f"- {key}: {value}" for key, value in results.versions.items()),
        "",
    ]
    for name, (title, render_section) in SECTIONS.items():
        runs = results.runs.get(name)
        error = results.errors.get(name)
        if not runs and error is None:
            continue
        lines += [f"## {title}", ""]
        if runs:
            lines += render_section(runs, results.sizes)
            lines.append("")
        if error is not None:
            lines += [f"This benchmark failed: {error}", ""]
    return "\n".join(lines)


def write_report(results: "Results", path: Path) -> None:
    path.write_text(render(results))
