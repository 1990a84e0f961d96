"""What one run is, where its files go, and when it is evaluated (no torch import here)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, kw_only=True)
class RunSpec:
    """One (algorithm, task, seed) run and the protocol it shares with the rest of its invocation."""

    algorithm: str
    task: str
    seed: int
    budget: int
    """Env steps in total, warm-up included."""
    warmup: int
    """Uniformly random env steps before learning (part of the budget)."""
    eval_interval: int
    """Env steps between evaluations; the last one is at the budget."""
    eval_episodes: int
    """Deterministic evaluation episodes at every evaluation point (one test env each)."""
    threads: int
    """Torch intra-op threads (and OMP/MKL threads of the run's process)."""
    device: str = "cpu"

    @property
    def name(self) -> str:
        return f"{self.algorithm}__{self.task}__seed{self.seed}"

    def protocol(self) -> dict[str, Any]:
        """The fields a finished run must share with a request for it to be skipped."""
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        return cls(**json.loads(text))

    def validate(self) -> None:
        """Raise ``ValueError`` on a spec no run can follow."""
        checks = [
            (self.budget >= 1, f"budget must be ≥ 1, got {self.budget}"),
            (0 <= self.warmup < self.budget, f"warm-up must be in [0, budget), got {self.warmup}"),
            (self.eval_interval >= 1, f"evaluation interval must be ≥ 1, got {self.eval_interval}"),
            (self.eval_episodes >= 1, f"evaluation episodes must be ≥ 1, got {self.eval_episodes}"),
            (self.threads >= 1, f"threads must be ≥ 1, got {self.threads}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"{self.name}: {message}")


def eval_points(*, budget: int, interval: int) -> list[int]:
    """Env steps after which a run is evaluated: every ``interval`` steps, and at ``budget``.

    >>> eval_points(budget=2500, interval=1000)
    [1000, 2000, 2500]
    """
    if budget < 1 or interval < 1:
        raise ValueError(f"budget and interval must be ≥ 1, got {budget} and {interval}")
    points = list(range(interval, budget + 1, interval))
    if not points or points[-1] != budget:
        points.append(budget)
    return points


def result_path(out: Path, spec: RunSpec) -> Path:
    """``OUT/runs/TASK/ALGORITHM__seedSEED.json``."""
    return out / "runs" / spec.task / f"{spec.algorithm}__seed{spec.seed}.json"


def log_path(out: Path, spec: RunSpec) -> Path:
    """``OUT/logs/TASK/ALGORITHM__seedSEED.log``: the run's stdout and stderr."""
    return out / "logs" / spec.task / f"{spec.algorithm}__seed{spec.seed}.log"


def checkpoint_path(out: Path, spec: RunSpec) -> Path:
    """``OUT/checkpoints/TASK/ALGORITHM__seedSEED/``: the run's checkpoint until its result exists."""
    return out / "checkpoints" / spec.task / f"{spec.algorithm}__seed{spec.seed}"


__all__ = ["RunSpec", "checkpoint_path", "eval_points", "log_path", "result_path"]
