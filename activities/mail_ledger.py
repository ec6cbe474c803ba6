"""A durable record of what the SMTP sender handed to the mail server, by Message-ID.

The sending activity claims a Message-ID before it connects, marks it
``handed_over`` just before the DATA command and ``accepted`` when the server
replies 250. A retried activity reads the state first:

- ``accepted``: the server has the message, so nothing is sent again.
- ``handed_over``: the worker died or lost the connection between the DATA
  command and the server's reply. The server may hold the message, so it is
  not sent again and the state becomes ``unconfirmed``.
- ``claimed``: the earlier attempt never reached DATA, so the server cannot
  have accepted the message, and it is sent.
- ``rejected``: the server refused it permanently, and the refusal is raised
  again without a new connection.

NOTE: SQLite locking is reliable only on a local disk, so every worker that
sends by SMTP must run on one host and share one ledger file. Rows are kept
forever, because nothing prunes the file yet.
"""

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

DeliveryState = Literal["claimed", "handed_over", "accepted", "unconfirmed", "rejected"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    message_id TEXT PRIMARY KEY,
    case_number TEXT NOT NULL,
    notice TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1,
    detail TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL
)
"""


@dataclass(frozen=True)
class LedgerEntry:
    message_id: str
    state: DeliveryState
    attempts: int
    detail: str


class MailLedger:
    """The ledger file; every method opens its own connection, so threads may share it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None leaves transactions to the explicit BEGIN below.
        connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        # FULL syncs the write-ahead log on every commit, so a state written
        # before a SIGKILL or a power loss is there when the worker restarts.
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute(_SCHEMA)
        return connection

    def claim(self, message_id: str, case_number: str, notice: str) -> LedgerEntry:
        """Record an attempt at ``message_id`` and return the state it had before.

        A new Message-ID is stored as ``claimed`` and returned with that state
        and ``attempts`` 1.
        """
        now = datetime.now(UTC).isoformat()
        with closing(self._connect()) as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                row = connection.execute(
                    "SELECT state, attempts, detail FROM deliveries WHERE message_id = ?",
                    (message_id,),
                ).fetchone()
                if row is None:
                    connection.execute(
                        "INSERT INTO deliveries (message_id, case_number, notice, state, "
                        "updated_at) VALUES (?, ?, ?, 'claimed', ?)",
                        (message_id, case_number, notice, now),
                    )
                    entry = LedgerEntry(message_id, "claimed", 1, "")
                else:
                    state, attempts, detail = row
                    connection.execute(
                        "UPDATE deliveries SET attempts = attempts + 1, updated_at = ? "
                        "WHERE message_id = ?",
                        (now, message_id),
                    )
                    entry = LedgerEntry(message_id, state, attempts + 1, detail)
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        return entry

    def hand_over(self, message_id: str, attempts: int) -> bool:
        """Mark ``message_id`` as ``handed_over`` if attempt ``attempts`` still owns the claim.

        Returns False when a later attempt claimed the Message-ID meanwhile,
        for example after this worker was paused past the activity's timeout.
        That attempt sends the message, so this one must not.
        """
        now = datetime.now(UTC).isoformat()
        with closing(self._connect()) as connection:
            cursor = connection.execute(
                "UPDATE deliveries SET state = 'handed_over', updated_at = ? "
                "WHERE message_id = ? AND state = 'claimed' AND attempts = ?",
                (now, message_id, attempts),
            )
            return cursor.rowcount == 1

    def mark(self, message_id: str, state: DeliveryState, detail: str = "") -> None:
        now = datetime.now(UTC).isoformat()
        with closing(self._connect()) as connection:
            connection.execute(
                "UPDATE deliveries SET state = ?, detail = ?, updated_at = ? "
                "WHERE message_id = ?",
                (state, detail, now, message_id),
            )

    def get(self, message_id: str) -> LedgerEntry | None:
        with closing(self._connect()) as connection:
            row = connection.execute(
                "SELECT state, attempts, detail FROM deliveries WHERE message_id = ?",
                (message_id,),
            ).fetchone()
        if row is None:
            return None
        return LedgerEntry(message_id, row[0], row[1], row[2])
