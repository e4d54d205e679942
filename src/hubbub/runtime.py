"""Process settings of a serving node: CPython's cyclic garbage collector.

Forwarding allocates nothing per packet, so what feeds the collector is signaling: a join
makes about 200 container objects that live as long as the listener. With the default
thresholds (700, 10, 10), a storm of 1,000 joins ran 30 middle-generation and 3 full
collections, and each full one walked every object in the process (140k at start, 330k at
the end, ~130 ms each): 15 % of the storm's CPU. Two changes, measured with
bench/join_storm.py:

- the objects made at start-up (modules, the app, configuration) are moved out of the
  collector's sight (`gc.freeze`): they live as long as the process anyway;
- the youngest generation is collected every 10,000 allocations instead of 700, so a burst of
  joins promotes far fewer objects towards the expensive generations.

Cycles are still collected: the collector is tuned, not turned off.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000


def tune_collector() -> None:
    """Call once the node has started: collect, freeze what exists, raise the first
    threshold."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, oldest)
