"""The heap trimmer runs malloc_trim lazily: once enough was freed, at most every interval."""

from __future__ import annotations

import asyncio

from hubbub.media import heap


async def test_trims_once_per_threshold_and_interval() -> None:
    trimmer = heap.Trimmer(threshold=1000, min_interval=0.2)
    trimmer.freed(600)
    await asyncio.sleep(0.01)
    assert trimmer.trims == 0  # below the threshold
    trimmer.freed(600)
    trimmer.freed(5000)  # already due: not scheduled twice
    await asyncio.sleep(0.01)
    assert trimmer.trims == (1 if heap._trim is not None else 0)
    trimmer.freed(2000)
    await asyncio.sleep(0.05)
    assert trimmer.trims == (1 if heap._trim is not None else 0)  # within the interval
    await asyncio.sleep(0.25)
    assert trimmer.trims == (2 if heap._trim is not None else 0)
