"""Stopping asyncio tasks reliably.

``task.cancel()`` asks once; a library may swallow that one request. redis-py 8 does, for a
command cancelled while its connection is being set up (the command then returns normally and
the task carries on). A shutdown that cancels once and awaits forever then hangs. So every stop
in pbx-core goes through :func:`cancel_and_wait`, which asks again until the task has ended.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any] | None], *, limit_s: float = 10.0) -> None:
    """Cancel ``tasks`` and wait until every one has ended, cancelling again any that swallowed
    the request. Never raises for the tasks' own errors. Gives up (with a warning) after
    ``limit_s``: a task stuck in non-cancellable code must not hang the shutdown of the rest."""
    given = [t for t in tasks if t is not None]
    pending = {t for t in given if not t.done()}
    if not pending:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while pending:
        for task in pending:
            task.cancel()
        remaining = deadline - loop.time()
        if remaining <= 0:
            log.warning("tasks still running after %.0f s of cancelling: %s", limit_s,
                        ", ".join(sorted(_name(t) for t in pending)))
            return
        _, pending = await asyncio.wait(pending, timeout=min(0.1, remaining))
    # Retrieve outcomes so none is reported as "exception was never retrieved".
    for task in given:
        if task.done() and not task.cancelled():
            task.exception()


def _name(task: asyncio.Future[Any]) -> str:
    return task.get_name() if isinstance(task, asyncio.Task) else repr(task)
