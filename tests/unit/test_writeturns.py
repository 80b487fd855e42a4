import asyncio

import pytest

from monitor.adapters.writeturns import Urgency, WriteTurns


async def _queue(turns: WriteTurns, order: list[str], name: str, urgency: Urgency) -> None:
    async with turns.turn(urgency):
        order.append(name)
        await asyncio.sleep(0)  # give the others a chance to cut in (they must not)


async def test_waiting_writers_go_by_urgency_then_arrival() -> None:
    turns, order = WriteTurns(), []
    release = asyncio.Event()

    async def holder() -> None:
        async with turns.turn(Urgency.PLAN):
            order.append("holder")
            await release.wait()

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiting = [
        asyncio.create_task(_queue(turns, order, name, urgency))
        for name, urgency in [
            ("plan-1", Urgency.PLAN),
            ("plan-2", Urgency.PLAN),
            ("progress", Urgency.PROGRESS),
            ("verdict", Urgency.VERDICT),
        ]
    ]
    await asyncio.sleep(0)  # all four are queued behind the holder
    assert order == ["holder"]
    release.set()
    await asyncio.gather(first, *waiting)
    assert order == ["holder", "verdict", "progress", "plan-1", "plan-2"]


async def test_a_cancelled_waiter_neither_writes_nor_blocks_the_rest() -> None:
    turns, order = WriteTurns(), []
    release = asyncio.Event()

    async def holder() -> None:
        async with turns.turn(Urgency.PLAN):
            await release.wait()

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    doomed = asyncio.create_task(_queue(turns, order, "doomed", Urgency.VERDICT))
    later = asyncio.create_task(_queue(turns, order, "later", Urgency.PLAN))
    await asyncio.sleep(0)
    doomed.cancel()
    release.set()
    await asyncio.gather(first, later)
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert order == ["later"]
    async with turns.turn(Urgency.PLAN):  # free again: no turn was lost
        order.append("after")
    assert order == ["later", "after"]
