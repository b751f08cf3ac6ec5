"""What a callback is: its record, its states and its outcomes.

A callback is a promise to call a customer back for one queue. Its record is the unit that is
persisted (one row per callback), so everything the scheduler needs after a restart is in it:
the virtual place in line (``place_at``), the attempt in flight (``originate_id``, ``agent``),
the next time it may be dialled, and its deadline.

Times are epoch seconds (floats), handed in by the shell; nothing here reads a clock.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

# Channel variables that carry a callback's identity through Asterisk, so every event of the call
# can be matched back to its record (and a restarted scheduler recognises its own calls).
VAR_CALLBACK_ID = "PBX_CALLBACK_ID"
VAR_ORIGINATE_ID = "PBX_ORIGINATE_ID"


class Status(StrEnum):
    PENDING = "pending"  # waiting for its place in line (or its retry time, or opening time)
    OVERDUE = "overdue"  # still waiting, but past its due-by deadline
    DIALLING = "dialling"  # an originate is in flight (agent first, then the customer)
    # Final outcomes:
    COMPLETED = "completed"  # the customer talked to an agent
    NO_ANSWER = "no_answer"  # every attempt rang out
    BUSY = "busy"  # the last attempt found the line busy
    FAILED = "failed"  # the last attempt could not be placed (congestion, unreachable)
    CANCELLED = "cancelled"  # withdrawn (customer, supervisor, or the caller got through live)
    EXPIRED = "expired"  # not served in time to be useful
    # A dial whose outcome was missed (the bridge was down) and may have reached the customer:
    # never dialled again by itself; a person looks at it (and books again if needed).
    UNCONFIRMED = "unconfirmed"


WAITING = frozenset({Status.PENDING, Status.OVERDUE})
OPEN = WAITING | {Status.DIALLING}
FINAL = frozenset(Status) - OPEN

Source = Literal["queue_offer", "abandoned", "after_hours", "rest", "wallboard"]
SOURCES: tuple[Source, ...] = ("queue_offer", "abandoned", "after_hours", "rest", "wallboard")

# What one attempt came to. ``agent_unavailable``: the agent leg failed before the customer was
# dialled, so it does not count as an attempt on the customer.
AttemptResult = Literal["answered", "no_answer", "busy", "failed", "agent_unavailable", "unknown"]

# The customer leg's ${DIALSTATUS} (Asterisk's Dial) -> attempt result.
_DIALSTATUS: dict[str, AttemptResult] = {
    "ANSWER": "answered",
    "NOANSWER": "no_answer",
    "BUSY": "busy",
    "CONGESTION": "failed",
    "CHANUNAVAIL": "failed",
    "DONTCALL": "failed",
    "TORTURE": "failed",
    "INVALIDARGS": "failed",
    # CANCEL: the agent hung up while the customer's phone rang: not the customer's doing.
    "CANCEL": "agent_unavailable",
}


def result_from_dialstatus(dialstatus: str) -> AttemptResult:
    """The result of the customer leg from Asterisk's ``DIALSTATUS`` (unknown values: failed)."""
    return _DIALSTATUS.get(dialstatus.strip().upper(), "failed")


# The dialplan's durable marker of each attempt, in Asterisk's database (AstDB): family
# MARKER_FAMILY, key "{UTC day of the dial}/{originate id}" (see marker_key), "started" once the
# agent answered (before the customer is dialled), then the customer leg's DIALSTATUS. A bridge that was down
# when an attempt ended reads it back (AMI DBGet). The dialplan deletes markers 3 and 4 days old.
MARKER_FAMILY = "pbxcb"
MARKER_STARTED = "started"
MARKER_KEPT_S = 2 * 86400.0  # a missing marker younger than this: the dialplan never ran


def marker_key(originate_id: str, dialled_at: float) -> str:
    """The AstDB key (within MARKER_FAMILY) of an attempt dialled at ``dialled_at``: the UTC day
    (the dialplan deletes old days) and the originate id with ':' as '-' (a ':' would split the
    dialplan's ExecIf)."""
    day = datetime.fromtimestamp(dialled_at, UTC).strftime("%Y%m%d")
    return f"{day}/{originate_id.replace(':', '-')}"


def normalise_number(number: str) -> str:
    """The key a number is de-duplicated on: digits and a leading +, nothing else."""
    if number.isascii() and number.isdigit():
        return number  # the common case, on the hot path (every answered caller)
    digits = "".join(ch for ch in number if ch.isdigit())
    return ("+" + digits) if number.strip().startswith("+") else digits


@dataclass(frozen=True, slots=True)
class Callback:
    id: str
    tenant: str
    queue: str  # short queue name (the part after "{slug}-")
    number: str
    source: Source
    requested_at: float
    # The virtual place in line: a caller who accepted the offer keeps their original join time;
    # every other source takes its place when it is requested (or at opening, when closed).
    place_at: float
    due_by: float  # the promise: the end of the window the callback was promised
    # ... and its start (see .promise); None for records from before promises were windows.
    # 0: in line (served at its place, before later live callers); 1: fill (served only on an
    # agent no one in line is waiting for). Set from the queue's policy when booked.
    tier: int = 0
    status: Status = Status.PENDING
    attempts: int = 0  # attempts on the customer so far (results that count against max_attempts)
    attempts_dialled: int = 0  # originates placed, numbering the originate ids
    not_before: float = 0.0  # earliest next dial: retry back-off or opening time
    originate_id: str | None = None  # the attempt in flight; also the AMI ActionID
    agent: str | None = None  # the agent interface reserved by the attempt in flight
    dialled_at: float | None = None
    closed_at: float | None = None
    last_result: AttemptResult | None = None
    promised_from: float | None = None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    @property
    def key(self) -> tuple[str, str, str]:
        """One open callback per (tenant, queue, number)."""
        return (self.tenant, self.queue, normalise_number(self.number))

    @property
    def late(self) -> bool:
        """Completed after its due-by (an open one past it is ``overdue``)."""
        closed = self.closed_at
        return self.status is Status.COMPLETED and closed is not None and closed > self.due_by

    @property
    def on_time(self) -> bool:
        closed = self.closed_at
        return self.status is Status.COMPLETED and closed is not None and closed <= self.due_by

    def evolve(self, **changes: Any) -> Callback:
        return replace(self, **changes)

    def to_record(self) -> dict[str, Any]:
        """A JSON-able dict for persistence; :meth:`from_record` reverses it."""
        record = asdict(self)
        record["status"] = self.status.value
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Callback:
        values = dict(record)
        values["status"] = Status(values["status"])
        return cls(**values)
