"""casedesk: open, act on, show, list, clone and replay support cases.

Exit status: 0 on success, 1 when the case rejected the action, 2 for invalid
input or configuration, 3 when the case does not exist or is already Closed.
"""

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from temporalio.client import Client
from temporalio.service import RPCError

from domain.case import CASE_NUMBER_PATTERN, Actor, Case, CaseInput
from domain.statuses import InstallationType, Priority, Role, Status
from starter import client as cases
from starter.config import case_policy, client_connect_config, task_queue
from starter.logs import exit_without_teardown, temporal_runtime
from workflows.messages import AddCommentInput, ChangePriorityInput, ChangeStatusInput

EXIT_REJECTED = 1
EXIT_INVALID = 2
EXIT_NOT_FOUND = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="casedesk",
        description="Support cases that run as durable Temporal workflows.",
        epilog="Connection: TEMPORAL_ADDRESS (default localhost:7233), TEMPORAL_NAMESPACE, "
        "TEMPORAL_PROFILE and the other Temporal environment settings.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    opening = commands.add_parser(
        "open", help="open a case, or import one in its status"
    )
    opening.add_argument(
        "--json", metavar="FILE", help="the case as JSON; '-' reads stdin"
    )
    opening.add_argument("--case-number")
    opening.add_argument("--subject")
    opening.add_argument("--description", default="")
    opening.add_argument(
        "--priority", choices=[p.value for p in Priority], default="Normal"
    )
    opening.add_argument("--institution-id")
    opening.add_argument("--institution-name")
    opening.add_argument(
        "--time-zone", help="IANA name of the institution's zone; UTC if unset"
    )
    opening.add_argument("--contact-name")
    opening.add_argument("--contact-email")
    opening.add_argument("--product", default="")
    opening.add_argument(
        "--installation-type", choices=[t.value for t in InstallationType]
    )
    opening.add_argument("--affects-multiple-institutions", action="store_true")
    opening.add_argument("--status", help="import: the status the case is already in")
    opening.add_argument(
        "--status-since", help="import: when it entered it, ISO 8601 with offset"
    )

    def add_actor_options(command: argparse.ArgumentParser) -> None:
        command.add_argument("--role", required=True, choices=[r.value for r in Role])
        command.add_argument("--name", default="", help="the person acting")
        command.add_argument(
            "--signal", action="store_true", help="send as a fire-and-forget signal"
        )
        command.add_argument(
            "--update-id", help="idempotency key: a retry with it applies once"
        )

    status = commands.add_parser("status", help="change a case's status")
    status.add_argument("case_number")
    status.add_argument("status", choices=[s.value for s in Status], metavar="STATUS")
    status.add_argument("--note", default="")
    add_actor_options(status)

    comment = commands.add_parser("comment", help="add a comment to a case")
    comment.add_argument("case_number")
    comment.add_argument("--body", required=True)
    comment.add_argument(
        "--internal", action="store_true", help="visible to staff only"
    )
    add_actor_options(comment)

    priority = commands.add_parser("priority", help="change a case's priority")
    priority.add_argument("case_number")
    priority.add_argument("priority", choices=[p.value for p in Priority])
    priority.add_argument("--note", default="")
    add_actor_options(priority)

    show = commands.add_parser("show", help="show a case")
    show.add_argument("case_number")
    show.add_argument(
        "--json", action="store_true", help="print the whole case as JSON"
    )

    listing = commands.add_parser(
        "list", help="list cases through the visibility store"
    )
    listing.add_argument("--status", choices=[s.value for s in Status])
    listing.add_argument("--priority", choices=[p.value for p in Priority])
    listing.add_argument("--all", action="store_true", help="include closed cases")
    listing.add_argument("--query", help="a visibility query, as typed in the Web UI")
    listing.add_argument("--limit", type=int, default=1000)

    clone = commands.add_parser("clone", help="open a new case linked to a Closed one")
    clone.add_argument("case_number", help="the Closed case")
    clone.add_argument("new_case_number")
    clone.add_argument("--subject", help="a new subject; the original's by default")

    replay = commands.add_parser(
        "replay",
        help="drive a ServiceNow incident event log through SupportCase workflows",
    )
    replay.add_argument(
        "path", type=Path, help="incident_event_log.zip or the CSV inside it"
    )
    replay.add_argument(
        "--limit", type=int, help="replay the first N incidents in file order"
    )
    replay.add_argument(
        "--json", type=Path, metavar="FILE", help="write the summary here"
    )
    replay.add_argument(
        "--address",
        help="run against this Temporal server instead of a private time-skipping one",
    )
    replay.add_argument(
        "--no-progress", action="store_true", help="hide the progress bar"
    )

    dev = commands.add_parser(
        "dev", help="start the Temporal dev server with its Web UI, and the worker"
    )
    dev.add_argument(
        "--data-dir", type=Path, default=Path("var"), help="where the database lives"
    )
    dev.add_argument("--ui-port", type=int, default=8233)
    dev.add_argument("--port", type=int, default=7233)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "dev":
        from starter.devserver import run_dev

        return run_dev(data_dir=args.data_dir, port=args.port, ui_port=args.ui_port)
    try:
        if args.command == "replay":
            from starter.replay import run_replay_command

            code = run_replay_command(args)
        else:
            code = asyncio.run(_run(args))
    except KeyboardInterrupt:
        code = 130
    exit_without_teardown(code)


async def _run(args: argparse.Namespace) -> int:
    try:
        request = _build_request(args)
    except ValidationError as err:
        print(
            f"casedesk {args.command}: invalid input: {_problems(err)}", file=sys.stderr
        )
        return EXIT_INVALID
    except ValueError as err:
        print(f"casedesk {args.command}: invalid input: {err}", file=sys.stderr)
        return EXIT_INVALID
    try:
        client = await Client.connect(
            **client_connect_config(), runtime=temporal_runtime()
        )
    except RuntimeError as err:
        print(
            f"casedesk: cannot connect to Temporal: {err}; start it with 'make run' or set "
            "TEMPORAL_ADDRESS",
            file=sys.stderr,
        )
        return EXIT_INVALID
    try:
        return await _dispatch(client, args, request)
    except cases.ActionRejectedError as err:
        print(f"rejected ({err.code}): {err}", file=sys.stderr)
        return EXIT_REJECTED
    except cases.CaseExistsError as err:
        print(str(err), file=sys.stderr)
        return EXIT_REJECTED
    except (cases.CaseNotFoundError, cases.CaseClosedError) as err:
        print(str(err), file=sys.stderr)
        return EXIT_NOT_FOUND
    except RPCError as err:
        print(
            f"casedesk {args.command}: Temporal returned an error: {err}",
            file=sys.stderr,
        )
        return EXIT_INVALID


def _problems(err: ValidationError) -> str:
    """Render a pydantic error as "field: problem" pairs, without documentation links."""
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'input'}: {error['msg']}"
        for error in err.errors()
    )


def _build_request(args: argparse.Namespace) -> Any:
    for name in ("case_number", "new_case_number"):
        number = getattr(args, name, None)
        if args.command != "open" and number and not CASE_NUMBER_PATTERN.match(number):
            raise ValueError(
                f"invalid case number {number!r}: use 1 to 32 letters, digits or '-'"
            )
    if args.command == "open":
        return _open_request(args)
    if args.command in ("status", "comment", "priority"):
        actor = Actor(role=Role(args.role), name=args.name)
        if args.command == "status":
            return ChangeStatusInput(
                status=Status(args.status), actor=actor, note=args.note
            )
        if args.command == "comment":
            return AddCommentInput(actor=actor, body=args.body, internal=args.internal)
        return ChangePriorityInput(
            priority=Priority(args.priority), actor=actor, note=args.note
        )
    if args.command == "list" and args.query and (args.status or args.priority):
        raise ValueError("give either --query or --status/--priority, not both")
    return None


def _open_request(args: argparse.Namespace) -> CaseInput:
    if args.json:
        text = sys.stdin.read() if args.json == "-" else Path(args.json).read_text()
        data = json.loads(text)
    else:
        missing = [
            f"--{name.replace('_', '-')}"
            for name in (
                "case_number",
                "subject",
                "institution_id",
                "institution_name",
                "contact_name",
                "contact_email",
            )
            if not getattr(args, name)
        ]
        if missing:
            raise ValueError(
                f"missing {', '.join(missing)}; or give the whole case with --json"
            )
        data = {
            "case_number": args.case_number,
            "subject": args.subject,
            "description": args.description,
            "priority": args.priority,
            "institution": {
                "id": args.institution_id,
                "name": args.institution_name,
                "time_zone": args.time_zone,
            },
            "contact": {"name": args.contact_name, "email": args.contact_email},
            "product": args.product,
            "installation_type": args.installation_type,
            "affects_multiple_institutions": args.affects_multiple_institutions,
            "status": args.status,
            "status_since": args.status_since,
        }
    data.setdefault("policy", case_policy().model_dump())
    return CaseInput.model_validate(data)


async def _dispatch(client: Client, args: argparse.Namespace, request: Any) -> int:
    queue = task_queue()
    if args.command == "open":
        opened = await cases.open_case(client, request, task_queue=queue)
        print(f"opened case {opened.case_number} (workflow {opened.handle.id})")
        return 0
    if args.command == "clone":
        opened = await cases.clone_case(
            client,
            args.case_number,
            args.new_case_number,
            task_queue=queue,
            subject=args.subject,
            policy=case_policy(),
        )
        print(f"opened case {opened.case_number} as a clone of {args.case_number}")
        return 0
    if args.command in ("status", "comment", "priority"):
        options = {"update_id": args.update_id, "as_signal": args.signal}
        if args.command == "status":
            case = await cases.change_status(
                client, args.case_number, request, **options
            )
        elif args.command == "comment":
            case = await cases.add_comment(client, args.case_number, request, **options)
        else:
            case = await cases.change_priority(
                client, args.case_number, request, **options
            )
        if case is None:
            print(f"signal sent to case {args.case_number}")
        else:
            print(_summary(case))
        return 0
    if args.command == "show":
        case = await cases.get_case(client, args.case_number)
        print(case.model_dump_json(indent=2) if args.json else _describe(case))
        return 0
    if args.command == "list":
        query = args.query or cases.visibility_query(
            status=args.status, priority=args.priority, open_only=not args.all
        )
        rows = await cases.list_cases(client, query, limit=args.limit)
        if rows:
            print(f"{'CASE':<32} {'STATUS':<32} {'PRIORITY':<9} NEXT DEADLINE")
        for row in rows:
            deadline = row.next_deadline_at.isoformat() if row.next_deadline_at else "-"
            print(
                f"{row.case_number:<32} {row.status or '-':<32} {row.priority or '-':<9} "
                f"{deadline}"
            )
        print(f"{len(rows)} case(s) for: {query}", file=sys.stderr)
        return 0
    raise AssertionError(f"unhandled command {args.command}")


def _summary(case: Case) -> str:
    return (
        f"case {case.case_number}: {case.status.value} since "
        f"{case.status_since.isoformat()}, priority {case.priority.value}"
    )


def _describe(case: Case) -> str:
    lines = [
        f"Case {case.case_number}: {case.subject}",
        f"  status:      {case.status.value} since {case.status_since.isoformat()}",
        f"  priority:    {case.priority.value}",
        f"  institution: {case.institution.name} ({case.institution.id}, "
        f"{case.institution.time_zone or 'UTC'})",
    ]
    if case.cloned_from:
        lines.append(f"  cloned from: {case.cloned_from}")
    for deadline in sorted(case.deadlines, key=lambda d: d.due_at):
        lines.append(
            f"  deadline:    {deadline.description} at {deadline.due_at.isoformat()}"
        )
    if case.closure:
        lines.append(
            f"  closed:      {case.closure.reason} at {case.closure.at.isoformat()}"
        )
    lines.append(f"  reminders:   {case.reminders_sent}")
    for failure in case.email_failures:
        lines.append(
            f"  email failed: {failure.notice} at {failure.at.isoformat()}: {failure.error}"
        )
    lines.append("  history:")
    for entry in case.history:
        mark = " (rejected)" if entry.rejected else ""
        if entry.from_status is None or entry.from_status == entry.to_status:
            change = f"in {entry.to_status}"
        else:
            change = f"{entry.from_status} -> {entry.to_status or '?'}"
        actor = entry.actor_role + (
            f" ({entry.actor_name})" if entry.actor_name else ""
        )
        lines.append(
            f"    {entry.at.isoformat()} {entry.event}{mark} {change} by {actor}"
            + (f": {entry.note}" if entry.note else "")
        )
    lines.append(f"  comments:    {len(case.comments)}")
    for comment in case.comments:
        author = comment.actor_role.value + (
            f" ({comment.actor_name})" if comment.actor_name else ""
        )
        internal = " [internal]" if comment.internal else ""
        lines.append(f"    {comment.at.isoformat()} {author}{internal}: {comment.body}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
