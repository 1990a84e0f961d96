"""Run-level helpers shared by examples and benchmarks: seeding, checkpoints, evaluation."""

from __future__ import annotations

import os
import random
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tianshou.algorithm import Algorithm
from tianshou.data import Collector

CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
"""x86 CPU flags of native bf16 arithmetic (AVX-512 BF16 dot products, AMX tiles)."""


@cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (Linux); empty where it cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def has_native_bf16(device: str | torch.device = "cpu") -> bool:
    """Whether ``device`` multiplies bf16 matrices in hardware rather than emulating them.

    CUDA devices report it (``torch.cuda.is_bf16_supported``); CPUs do when they have one of
    :data:`CPU_BF16_FLAGS`. Emulated bf16 is slower than float32, so where this is False, float32
    is the faster scoring precision.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        return not cpu_flags().isdisjoint(CPU_BF16_FLAGS)
    return False


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy's global generator (ε-greedy, prioritized sampling) and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def save_checkpoint(algorithm: Algorithm, path: str | os.PathLike[str], **extra: Any) -> Path:
    """Write ``algorithm.state_dict()`` (plus ``extra`` entries) atomically.

    The state goes to a temporary file in the same directory, is flushed to disk, and then
    replaces ``path`` with ``os.replace``, so a crash mid-write leaves the previous checkpoint
    intact. The file loads with ``torch.load(path, weights_only=True)``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"algorithm": algorithm.state_dict(), **extra}
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(
    algorithm: Algorithm, path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Restore an algorithm saved by :func:`save_checkpoint`; returns the ``extra`` entries."""
    payload = torch.load(path, map_location=map_location, weights_only=True)
    algorithm.load_state_dict(payload.pop("algorithm"))
    return payload


def evaluate(algorithm: Algorithm, collector: Collector, num_episodes: int) -> np.ndarray:
    """Returns of ``num_episodes`` evaluation episodes.

    Actions come from ``collector`` as configured: a collector built without
    ``exploration_noise=True`` acts greedily (ε = 0). QMLE's greedy action is itself an arg max
    over sampled candidates, so seed torch for bit-identical evaluations.

    :return: the episode returns, one per episode.
    """
    if num_episodes < 1:
        raise ValueError(f"num_episodes must be ≥ 1, got {num_episodes}")
    algorithm.policy.is_within_training_step = False
    collector.reset()
    stats = collector.collect(n_episode=num_episodes)
    return np.asarray(stats.returns, dtype=np.float64)
