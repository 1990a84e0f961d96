"""CPU-time measurements shared by the one-process speed benchmarks (``step_cost.py``,
``savo_update_cost.py``): this thread's CPU time, which other processes on the machine inflate far
less than wall time, and rounds in a rotating order, so that a change of load hits every agent."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from tianshou.algorithm.algorithm_base import Algorithm
from tianshou.data import ReplayBuffer


def mean_update_cpu_ms(algorithm: Algorithm, buffer: ReplayBuffer, *, updates: int, batch_size: int) -> float:
    """CPU ms of one ``algorithm.update`` on ``buffer``, averaged over ``updates`` in a row (the
    caller holds ``policy_within_training_step``)."""
    start = time.thread_time()
    for _ in range(updates):
        algorithm.update(buffer=buffer, sample_size=batch_size)
    return (time.thread_time() - start) * 1e3 / updates


def rotating_rounds(
    names: Sequence[str], measure: Callable[[str], Any], *, rounds: int
) -> dict[str, list[Any]]:
    """``measure(name)`` for every name in each of ``rounds`` rounds, the order rotating by one
    each round; returns the measurements per name in round order."""
    names = list(names)
    got: dict[str, list[Any]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            got[name].append(measure(name))
    return got


def median_ratios(values: Sequence[float], baseline: Sequence[float]) -> tuple[float, float, float]:
    """The median and range of the per-round ratios ``values[i] / baseline[i]``."""
    ratios = [v / b for v, b in zip(values, baseline, strict=True)]
    return statistics.median(ratios), min(ratios), max(ratios)


__all__ = ["mean_update_cpu_ms", "median_ratios", "rotating_rounds"]
