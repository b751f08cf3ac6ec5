"""cancel_and_wait stops a task that swallows its first cancellation (as redis-py 8 does for a
command cancelled while it connects), where one cancel and an await would hang forever."""

from __future__ import annotations

import asyncio

from pbx_core.tasks import cancel_and_wait


async def test_a_task_that_swallows_one_cancel_is_cancelled_again() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                swallowed += 1
                if swallowed > 1:
                    raise  # the second request sticks

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    async with asyncio.timeout(5):  # hang guard: a single cancel would leave it running
        await cancel_and_wait([task])
    assert task.cancelled() and swallowed == 2


async def test_failed_and_finished_tasks_are_collected_without_raising() -> None:
    async def boom() -> None:
        raise ValueError("x")

    failed = asyncio.create_task(boom())
    finished = asyncio.create_task(asyncio.sleep(0))
    await asyncio.sleep(0.01)
    await cancel_and_wait([failed, finished, None])
    assert isinstance(failed.exception(), ValueError) and finished.done()


async def test_a_task_that_will_not_end_is_given_up_on_after_the_limit() -> None:
    refusing = True

    async def refuses_while_told_to() -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if not refusing:
                    raise

    task = asyncio.create_task(refuses_while_told_to())
    await asyncio.sleep(0)
    await cancel_and_wait([task], limit_s=0.3)
    assert not task.done()
    refusing = False
    await cancel_and_wait([task])
    assert task.cancelled()
