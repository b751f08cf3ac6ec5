"""Queue membership lives in Asterisk as dynamic members, changed with AMI actions (never
``member=`` lines, so a config reload does not touch who is logged in or paused).

The interface, state interface and member name come from :mod:`.render`, so the members and
the dialplan agree. A member of queue ``{slug}-{name}`` is ``Local/{extension}@{slug}-agents/n``:
the Local channel rings every device of the extension. Its state comes from
``hint:{extension}@{slug}-internal`` (app_queue reads a ``hint:exten@context`` StateInterface from
the extension's hint), so a busy agent is seen as busy whichever device is in use.

Replies checked (apps/app_queue.c): QueueAdd "Added interface to queue" / "Unable to add
interface: Already there" / "Unable to add interface to queue: No such queue"; QueueRemove
"Removed interface from queue" / "Unable to remove interface: Not there" / "Unable to remove
interface from queue: No such queue"; QueuePenalty "Interface penalty set successfully" /
"Invalid interface, queuename or penalty". "Already there" and "Not there" count as done: a
membership change is idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from ..ami.errors import AmiActionError
from .render import member_interface, member_name, state_interface

if TYPE_CHECKING:
    from ..ami.client import AmiClient
    from ..provisioning.schemas import MemberConfig, TenantConfig, UserConfig


class MemberError(Exception):
    """Asterisk refused a membership change; the message says which queue and member, and why."""


def queue_name(slug: str, name: str) -> str:
    return f"{slug}-{name}"


@dataclass(frozen=True)
class Wanted:
    queue: str
    extension: str
    interface: str
    name: str
    state_interface: str
    penalty: int


@dataclass
class MemberSyncResult:
    added: list[tuple[str, str]] = field(default_factory=list)  # (queue, interface)
    removed: list[tuple[str, str]] = field(default_factory=list)
    penalties: list[tuple[str, str, int]] = field(default_factory=list)  # (queue, interface, penalty)
    errors: list[str] = field(default_factory=list)
    # Queues the database has but Asterisk does not (only with missing_queues="skip": after an
    # apply Asterisk refused, a new queue is not there yet and that is not a member problem).
    skipped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.penalties)


def wanted_members(config: TenantConfig) -> dict[str, dict[str, Wanted]]:
    """Asterisk queue name -> interface -> the member it should have, for every tenant queue."""
    users = {u.extension: u for u in config.users}
    out: dict[str, dict[str, Wanted]] = {queue_name(config.slug, q.name): {} for q in config.queues}
    for m in config.members:
        user = users.get(m.extension)
        queue = queue_name(config.slug, m.queue)
        if user is None or queue not in out:
            continue  # rules.check refuses these; never invent a member
        w = _wanted(config.slug, m, user)
        out[queue][w.interface] = w
    return out


async def sync_members(
    ami: AmiClient, config: TenantConfig, *, missing_queues: Literal["error", "skip"] = "error"
) -> MemberSyncResult:
    """Make the dynamic members of the tenant's queues equal ``config.members``: QueueStatus per
    queue, then QueueAdd / QueueRemove / QueuePenalty for the difference. Carries on past a
    failing queue and lists every problem in ``errors``. A queue Asterisk does not have is an
    error, or with ``missing_queues="skip"`` is listed in ``skipped`` (after a rolled-back apply
    the queues Asterisk runs are the previous ones)."""
    result = MemberSyncResult()
    for queue, wanted in wanted_members(config).items():
        items = await ami.listing({"Action": "QueueStatus", "Queue": queue})
        present = {
            i.get("Location", ""): i
            for i in items
            if i.get("Event") == "QueueMember" and i.get("Queue") == queue
        }
        if not any(i.get("Event") == "QueueParams" and i.get("Queue") == queue for i in items):
            if missing_queues == "skip":
                result.skipped.append(queue)
            elif wanted:
                result.errors.append(
                    f"queue {queue} does not exist in Asterisk; apply the tenant's configuration first"
                )
            continue
        for iface, item in present.items():
            if iface not in wanted and item.get("Membership", "dynamic") == "dynamic":
                try:
                    await _remove(ami, queue, iface)
                    result.removed.append((queue, iface))
                except MemberError as exc:
                    result.errors.append(str(exc))
        for iface, w in wanted.items():
            try:
                if iface not in present:
                    await _add(ami, w)
                    result.added.append((queue, iface))
                elif _int(present[iface].get("Penalty")) != w.penalty:
                    await _penalty(ami, queue, iface, w.penalty)
                    result.penalties.append((queue, iface, w.penalty))
            except MemberError as exc:
                result.errors.append(str(exc))
    return result


async def add_member(ami: AmiClient, slug: str, member: MemberConfig, user: UserConfig) -> None:
    """Add one member (or, if it is already there, make its penalty right)."""
    w = _wanted(slug, member, user)
    if not await _add(ami, w):
        await _penalty(ami, w.queue, w.interface, w.penalty)


async def remove_member(ami: AmiClient, slug: str, queue: str, extension: str) -> None:
    """Remove extension ``extension`` from the tenant's queue ``queue`` (short name); no-op if absent."""
    await _remove(ami, queue_name(slug, queue), member_interface(slug, extension))


# --------------------------------------------------------------------------- actions


def _wanted(slug: str, member: MemberConfig, user: UserConfig) -> Wanted:
    return Wanted(
        queue=queue_name(slug, member.queue),
        extension=member.extension,
        interface=member_interface(slug, member.extension),
        name=member_name(user.name, member.extension),
        state_interface=state_interface(slug, member.extension),
        penalty=member.penalty,
    )


async def _add(ami: AmiClient, w: Wanted) -> bool:
    """True if added, False if it was already there."""
    action = {
        "Action": "QueueAdd",
        "Queue": w.queue,
        "Interface": w.interface,
        "MemberName": w.name,
        "StateInterface": w.state_interface,
        "Penalty": str(w.penalty),
    }
    try:
        await ami.action(action)
    except AmiActionError as exc:
        if "Already there" in exc.reply_message:
            return False
        raise MemberError(
            _explain(f"adding extension {w.extension} to queue {w.queue}", w.queue, exc)
        ) from None
    return True


async def _remove(ami: AmiClient, queue: str, interface: str) -> None:
    try:
        await ami.action({"Action": "QueueRemove", "Queue": queue, "Interface": interface})
    except AmiActionError as exc:
        if "Not there" in exc.reply_message:
            return
        raise MemberError(_explain(f"removing {interface} from queue {queue}", queue, exc)) from None


async def _penalty(ami: AmiClient, queue: str, interface: str, penalty: int) -> None:
    action = {"Action": "QueuePenalty", "Queue": queue, "Interface": interface, "Penalty": str(penalty)}
    try:
        await ami.action(action)
    except AmiActionError as exc:
        raise MemberError(
            _explain(f"setting penalty {penalty} of {interface} in queue {queue}", queue, exc)
        ) from None


def _explain(doing: str, queue: str, exc: AmiActionError) -> str:
    said = exc.reply_message or str(exc)
    if "No such queue" in said:
        return (
            f"{doing} failed: queue {queue} does not exist in Asterisk "
            "(apply the tenant's configuration first)"
        )
    return f"{doing} failed: Asterisk said {said!r}"


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0
