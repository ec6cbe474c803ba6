"""casedesk: open, act on, show, list, count, clone and replay support cases.

Exit status: 0 on success, 1 when the case rejected the action, 2 for invalid
input or configuration, 3 when the case does not exist or is already Closed.
"""

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from temporalio.client import Client
from temporalio.service import RPCError

from domain.case import CASE_NUMBER_PATTERN, Actor, Case, CaseInput
from domain.deadlines import CalendarPeriod, add_period
from domain.statuses import InstallationType, Priority, Role, Status
from domain.visibility import WaitingOn
from starter import client as cases
from starter.codec import (
    DecryptionError,
    EncryptionCodec,
    KeyConfigError,
    key_ring_from_env,
    new_key_entry,
)
from starter.codec_server import DEFAULT_HOST as DEFAULT_CODEC_HOST
from starter.codec_server import DEFAULT_PORT as DEFAULT_CODEC_PORT
from starter.codec_server import (
    DEFAULT_UI_ORIGIN,
    UI_ORIGIN_ENV,
    CodecServerSettings,
    serve,
)
from starter.codec_server import TOKEN_ENV as CODEC_TOKEN_ENV
from starter.config import case_policy, client_connect_config, task_queue
from starter.logs import configure_logging, exit_without_teardown, temporal_runtime
from starter.mail_ingest import add_ingest_arguments, run_ingest
from worker import SearchAttributesMissing, register_search_attributes
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

    def add_filter_options(command: argparse.ArgumentParser) -> None:
        command.add_argument("--priority", choices=[p.value for p in Priority])
        command.add_argument(
            "--waiting-on", choices=[w.value for w in WaitingOn], dest="waiting_on"
        )
        command.add_argument("--product", help="the product name, exactly")
        command.add_argument("--institution", help="the institution id, exactly")
        command.add_argument(
            "--query",
            help="a visibility query, as typed in the Web UI; combined with the "
            "other filters by AND",
        )

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
        "list",
        help="list cases through the visibility store, filtered as in the Web UI",
    )
    add_filter_options(listing)
    listing.add_argument("--status", choices=[s.value for s in Status])
    listing.add_argument(
        "--deadline-before",
        metavar="WHEN",
        help="next deadline before WHEN: ISO 8601 with offset, or a period from now "
        "such as 24h or 7d",
    )
    listing.add_argument("--all", action="store_true", help="include closed cases")
    listing.add_argument("--limit", type=int, default=1000)

    stats = commands.add_parser(
        "stats",
        help="count open cases per status and the deadlines due in the next day and week",
    )
    add_filter_options(stats)

    commands.add_parser(
        "setup",
        help="register casedesk's search attributes in the namespace; safe to repeat",
    )

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

    mail = commands.add_parser("mail", help="read customers' email replies")
    mail_commands = mail.add_subparsers(dest="mail_command", required=True)
    ingest = mail_commands.add_parser(
        "ingest",
        help="add replies to their cases as comments; skip automatic mail",
        description="Read RFC 5322 messages and add each customer reply to its "
        "case. Exit status: 0 when every message was applied, skipped or "
        "replied to with a notice, 1 when a case rejected a comment, 2 for invalid input, 3 when "
        "a message names no case or an unknown one, 75 when Temporal or the SMTP "
        "server could not be reached.",
    )
    add_ingest_arguments(ingest)

    dev = commands.add_parser(
        "dev", help="start the Temporal dev server with its Web UI, and the worker"
    )
    dev.add_argument(
        "--data-dir", type=Path, default=Path("var"), help="where the database lives"
    )
    dev.add_argument("--ui-port", type=int, default=8233)
    dev.add_argument("--port", type=int, default=7233)

    codec_server = commands.add_parser(
        "codec-server",
        help="serve the payload encryption codec to the Web UI and the temporal CLI",
        epilog="Keys: CASE_ENCRYPTION_KEYS or CASE_ENCRYPTION_KEYS_FILE. Clients must "
        "send 'Authorization: Bearer TOKEN' with the token in CASE_CODEC_TOKEN.",
    )
    codec_server.add_argument(
        "--host",
        default=DEFAULT_CODEC_HOST,
        help="address to listen on (default: %(default)s, loopback only)",
    )
    codec_server.add_argument(
        "--port", type=int, default=DEFAULT_CODEC_PORT, help="default: %(default)s"
    )
    codec_server.add_argument(
        "--ui-origin",
        help="the Web UI's origin, the only one allowed by CORS "
        f"(default: CASE_CODEC_UI_ORIGIN or {DEFAULT_UI_ORIGIN})",
    )

    new_key = commands.add_parser(
        "new-key",
        help="print a KEY_ID=BASE64_KEY line with a new random AES-256 key",
    )
    new_key.add_argument("key_id", help="a name for the key, such as 2026-12")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "dev":
        from starter.devserver import run_dev

        return run_dev(data_dir=args.data_dir, port=args.port, ui_port=args.ui_port)
    if args.command == "new-key":
        return _print_new_key(args.key_id)
    try:
        if args.command == "mail":
            code = asyncio.run(run_ingest(args))
        elif args.command == "replay":
            from starter.replay import run_replay_command

            code = run_replay_command(args)
        elif args.command == "codec-server":
            code = _run_codec_server(args)
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
        config = client_connect_config()
    except KeyConfigError as err:
        print(f"casedesk: invalid encryption settings: {err}", file=sys.stderr)
        return EXIT_INVALID
    try:
        client = await Client.connect(**config, runtime=temporal_runtime())
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
    except DecryptionError as err:
        print(f"casedesk {args.command}: cannot read the case: {err}", file=sys.stderr)
        return EXIT_INVALID
    except RPCError as err:
        print(
            f"casedesk {args.command}: Temporal returned an error: {err}",
            file=sys.stderr,
        )
        return EXIT_INVALID


def _print_new_key(key_id: str) -> int:
    try:
        print(new_key_entry(key_id))
    except KeyConfigError as err:
        print(f"casedesk new-key: {err}", file=sys.stderr)
        return EXIT_INVALID
    return 0


def _run_codec_server(args: argparse.Namespace) -> int:
    configure_logging(os.environ.get("CASE_LOG_LEVEL", "INFO"))
    try:
        key_ring = key_ring_from_env()
        if key_ring is None:
            raise KeyConfigError(
                "no encryption keys are configured; set CASE_ENCRYPTION_KEYS or "
                "CASE_ENCRYPTION_KEYS_FILE as for the worker"
            )
        settings = CodecServerSettings(
            token=os.environ.get(CODEC_TOKEN_ENV, ""),
            ui_origin=args.ui_origin
            or os.environ.get(UI_ORIGIN_ENV)
            or DEFAULT_UI_ORIGIN,
            host=args.host,
            port=args.port,
        )
    except ValueError as err:
        print(f"casedesk codec-server: {err}", file=sys.stderr)
        return EXIT_INVALID
    asyncio.run(serve(EncryptionCodec(key_ring), settings))
    return 0


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
    if args.command in ("list", "stats"):
        # Builds the query once here so that a value it cannot quote is
        # reported as invalid input.
        cases.visibility_query(**_filters(args))
    if args.command == "list" and args.deadline_before:
        return parse_moment(args.deadline_before, datetime.now(UTC))
    return None


def parse_moment(text: str, now: datetime) -> datetime:
    """Parse an ISO 8601 time with offset, or a period such as ``24h`` counted from ``now``."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            period = CalendarPeriod.parse(text)
        except ValueError:
            raise ValueError(
                f"invalid time {text!r}: give ISO 8601 with an offset, such as "
                "2026-12-24T00:00:00+00:00, or a period from now, such as 24h or 7d"
            ) from None
        return add_period(now, period, None)
    if moment.tzinfo is None:
        raise ValueError(
            f"invalid time {text!r}: add a UTC offset, as in 2026-12-24T00:00:00+00:00"
        )
    return moment


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
    if args.command == "setup":
        return await _setup(client)
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
        query = cases.visibility_query(
            **_filters(args),
            status=args.status,
            deadline_before=request,
            open_only=not args.all,
        )
        rows = await cases.list_cases(client, query, limit=args.limit)
        if rows:
            print(
                f"{'CASE':<32} {'STATUS':<32} {'PRIORITY':<9} {'WAITING ON':<19} "
                "NEXT DEADLINE"
            )
        for row in rows:
            deadline = (
                f"{row.next_deadline_at.isoformat()} ({row.next_deadline_kind or '?'})"
                if row.next_deadline_at
                else "-"
            )
            print(
                f"{row.case_number:<32} {row.status or '-':<32} {row.priority or '-':<9} "
                f"{row.waiting_on or '-':<19} {deadline}"
            )
        print(f"{len(rows)} case(s) for: {query}", file=sys.stderr)
        return 0
    if args.command == "stats":
        now = datetime.now(UTC)
        counted = await cases.case_stats(client, now, **_filters(args))
        print(f"Open cases: {counted.open_cases}")
        for status, count in counted.by_status.items():
            print(f"  {status.value:<32} {count}")
        print("Deadlines:")
        print(f"  overdue                          {counted.overdue}")
        print(f"  due in the next 24 hours         {counted.due_next_day}")
        print(f"  due in the next 7 days           {counted.due_next_week}")
        return 0
    raise AssertionError(f"unhandled command {args.command}")


async def _setup(client: Client) -> int:
    try:
        registration = await register_search_attributes(client)
    except SearchAttributesMissing as err:
        print(f"casedesk setup: {err}", file=sys.stderr)
        return EXIT_INVALID
    print(f"namespace {client.namespace}:")
    for name in registration.created:
        print(f"  created           {name}")
    for name in registration.existing:
        print(f"  already existed   {name}")
    return 0


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "priority": args.priority,
        "waiting_on": args.waiting_on,
        "product": args.product,
        "institution": args.institution,
        "query": args.query,
    }


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
        if not comment.from_contact:
            internal += " [not the case's contact]"
        lines.append(f"    {comment.at.isoformat()} {author}{internal}: {comment.body}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
