"""An analysis worker analyses several batches at once (``FRAMEWISE_STAGE_CONCURRENCY``), but
the batches of one segment of one job take turns in the order they arrived, because OCR and
faces compare a frame with the one before it."""

from __future__ import annotations

import asyncio

from stages.worker import SequenceTurns


def test_a_segments_batches_take_turns_in_order_while_other_segments_run_beside():
    turns = SequenceTurns()
    events: list[str] = []

    async def analyse(sequence: str, name: str, steps: int) -> None:
        async with turns.turn(sequence):
            events.append(f"start {name}")
            for _ in range(steps):
                await asyncio.sleep(0)
            events.append(f"end {name}")

    async def main() -> None:
        first, second = analyse("job/0", "first", 5), analyse("job/0", "second", 0)
        await asyncio.gather(first, second, analyse("job/1", "other", 1))

    asyncio.run(main())
    assert events.index("end first") < events.index("start second")
    assert events.index("start other") < events.index("end first")
    assert not turns._locks and not turns._holders  # nothing kept for finished sequences
