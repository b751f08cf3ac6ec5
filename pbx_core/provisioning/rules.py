"""Cross-object rules of a tenant's configuration (pure: no I/O).

The schemas check each object on its own; these rules check that the objects fit together: every
destination points at something that exists, menus do not nest deeper than the tenant may, queue
members are real users of real queues, and the tenant stays within its limits. The REST API runs
:func:`check` on the candidate configuration of every write and answers 422 naming ``loc``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from .schemas import Destination, TenantConfig, TenantLimits

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    loc: Loc
    msg: str


_WHAT = {"extension": "user", "voicemail": "user", "queue": "queue", "callback": "queue", "menu": "menu",
         "hours": "schedule"}


def _destinations(config: TenantConfig) -> Iterator[tuple[Loc, Destination]]:
    """Every destination of the tenant with the loc of its object (``.../target`` added later)."""
    if config.operator is not None:
        yield ("operator",), config.operator
    for q in config.queues:
        if q.overflow is not None:
            yield ("queues", q.name, "overflow"), q.overflow
    for m in config.menus:
        for digit, dest in sorted(m.options.items()):
            yield ("menus", m.name, "options", digit), dest
        yield ("menus", m.name, "timeout_destination"), m.timeout_destination
        yield ("menus", m.name, "invalid_destination"), m.invalid_destination
    for h in config.hours:
        yield ("hours", h.name, "open_destination"), h.open_destination
        yield ("hours", h.name, "closed_destination"), h.closed_destination
    for d in config.dids:
        yield ("dids", d.number, "destination"), d.destination


def _targets(config: TenantConfig) -> dict[str, set[str]]:
    users = {u.extension for u in config.users}
    queues = {q.name for q in config.queues}
    return {
        "extension": users,
        "voicemail": users,
        "queue": queues,
        "callback": queues,  # book a callback from that queue
        "menu": {m.name for m in config.menus},
        "hours": {h.name for h in config.hours},
    }


def _missing(loc: Loc, what: str, name: str | None) -> Problem:
    return Problem(loc, f"there is no {what} {name!r} in this tenant")


def _dangling(config: TenantConfig) -> list[Problem]:
    known = _targets(config)
    problems = []
    for loc, dest in _destinations(config):
        if dest.type in known and dest.target not in known[dest.type]:
            problems.append(_missing((*loc, "target"), _WHAT[dest.type], dest.target))
    for q in config.queues:
        if q.hours is not None and q.hours not in known["hours"]:
            problems.append(_missing(("queues", q.name, "hours"), "schedule", q.hours))
    for m in config.menus:
        if m.hours is not None and m.hours not in known["hours"]:
            problems.append(_missing(("menus", m.name, "hours"), "schedule", m.hours))
    return problems


def _members(config: TenantConfig) -> list[Problem]:
    known = _targets(config)
    problems = []
    for i, member in enumerate(config.members):
        if member.queue not in known["queue"]:
            problems.append(_missing(("members", i, "queue"), "queue", member.queue))
        if member.extension not in known["extension"]:
            problems.append(_missing(("members", i, "extension"), "user", member.extension))
    return problems


def _limits(config: TenantConfig, limits: TenantLimits) -> list[Problem]:
    problems = []
    for key, count, limit in (
        ("users", len(config.users), limits.max_users),
        ("queues", len(config.queues), limits.max_queues),
        ("menus", len(config.menus), limits.max_menus),
    ):
        if count > limit:
            msg = f"this tenant may have at most {limit} {key} (it would have {count})"
            problems.append(Problem((key,), msg))
    return problems


def _menu_edges(config: TenantConfig) -> dict[str, list[tuple[str, Loc]]]:
    """menu -> [(next menu, loc of the destination that leads there)]. A schedule in between is
    looked through: "1 -> hours office -> (open) menu sales" is a menu-to-menu step too."""
    hours = {h.name: h for h in config.hours}

    def reached(dest: Destination) -> list[str]:
        if dest.type == "menu" and dest.target is not None:
            return [dest.target]
        if dest.type == "hours" and dest.target in hours:
            h = hours[dest.target]
            return [d.target for d in (h.open_destination, h.closed_destination)
                    if d.type == "menu" and d.target is not None]
        return []

    edges: dict[str, list[tuple[str, Loc]]] = {m.name: [] for m in config.menus}
    for loc, dest in _destinations(config):
        if loc[0] == "menus":
            edges[str(loc[1])] += [(target, (*loc, "target")) for target in reached(dest)]
    for m in config.menus:
        if m.operator_enabled and config.operator is not None and "0" not in m.options:
            edges[m.name] += [(target, ("operator", "target")) for target in reached(config.operator)]
    return edges


def _depth(config: TenantConfig, limits: TenantLimits) -> list[Problem]:
    """Longest simple menu path (a "back to main" edge to a menu already on the path is fine)."""
    edges = _menu_edges(config)
    limit = limits.max_menu_depth

    def deepest(path: list[str]) -> tuple[list[str], Loc] | None:
        for target, loc in edges[path[-1]]:
            if target in path or target not in edges:
                continue
            if len(path) + 1 > limit:
                return [*path, target], loc
            found = deepest([*path, target])
            if found:
                return found
        return None

    for start in sorted(edges):
        found = deepest([start])
        if found:
            path, loc = found
            chain = " -> ".join(path)
            return [Problem(loc, f"menus nest too deep: {chain} is {len(path)} levels; the limit is {limit}")]
    return []


def check(config: TenantConfig, limits: TenantLimits) -> list[Problem]:
    """All problems of ``config`` (empty when it is consistent), in a stable order."""
    return [*_limits(config, limits), *_dangling(config), *_members(config), *_depth(config, limits)]
