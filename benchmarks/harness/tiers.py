"""The benchmark tiers (presets of tasks × algorithms × seeds × budget), warm-up scaling, and the
time model behind ``quick``.

* ``smoke``: one DMC task, QMLE against TD3, one seed, 2000 env steps; a test runs it.
* ``quick``: QMLE against DDPG, TD3 and SAC on six DMC tasks with three seeds, at the largest
  budget that the time model below fits into one hour on two local processes (one core each, the
  whole of this 2-core machine).
* ``100k``: the sample-efficiency tier: cartpole-swingup, finger-spin and walker-walk (1, 2 and 6
  action dimensions) × QMLE (the paper's agent), QMLE's efficient preset, TD3 and auto-α SAC ×
  seeds 0–2, 100 000 env steps, a deterministic 10-episode evaluation every 10 000 steps (about
  19 CPU-hours here, measured: a run costs 1500–2600 CPU s; run it in several sittings, finished
  runs are skipped and ``--resume`` continues killed ones).
* ``iq100k``: issue 13's comparison: Hopper-v5, Walker2d-v5 and InvertedDoublePendulum-v5 × IQ,
  M-IQ (our defaults), M-IQ with the paper's fixed τ and unclipped term, and auto-α SAC × seeds
  0–2 × 100 000 env steps, the same evaluation. The Gaussian-policy ablation on Hopper is one
  more invocation (``--tier iq100k --tasks Hopper-v5 --algorithms miq-gaussian``).
* ``savo100k``: issue 14's comparison: SAVO's restricted InvertedPendulum, InvertedDoublePendulum
  and Hopper (the paper's layout) × SAVO (list length 3), SAVO with list length 1 and TD3 ×
  seeds 0–2 × 100 000 env steps, the same evaluation.
* ``full``: the same tasks and more algorithms at paper scale (1M env steps, 10 seeds as QMLE's
  Table 2, evaluation every 10 000 steps over 10 episodes as Tianshou's mujoco scripts) for a
  machine with many cores or a Ray cluster.

Every field is a default that ``benchmarks/learning.py`` flags override.

Warm-up: each algorithm has its documented number of random steps (25 000 for Tianshou's
DDPG/TD3, 10 000 for SAC, 1000 for QMLE; see :mod:`.algorithms`). Below the full budget it is
scaled in proportion to the budget, but never below ``min(documented, 1000)``, and always leaves
half of the budget to learning (:func:`scaled_warmup`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from benchmarks.harness.spec import RunSpec, eval_points

FULL_BUDGET = 1_000_000
"""Env steps of the ``full`` tier, and the budget at which warm-ups are used as documented."""

WARMUP_FLOOR = 1000

DMC_TASKS = (
    "cartpole-swingup", "walker-walk", "cheetah-run", "finger-spin", "reacher-easy", "ball_in_cup-catch",
)
"""The six DeepMind Control tasks the benchmark issue asks for."""

EPISODE_STEPS = 1000
"""Env steps of one evaluation episode in the time model (DMC's fixed length; an upper bound for
gymnasium MuJoCo tasks)."""


@dataclass(frozen=True, kw_only=True)
class Speed:
    """How fast one algorithm runs here with one torch thread (the time model's inputs)."""

    learning: float
    """Env steps/s after warm-up, updates included, no evaluation."""
    acting: float
    """Env steps/s of deterministic evaluation (``eval_episodes`` envs stepped together)."""
    startup: float
    """Seconds from process start to the first env step (imports, building, numba compilation)."""


REFERENCE_SPEEDS: dict[str, Speed] = {
    "qmle": Speed(learning=48.0, acting=350.0, startup=25.0),
    "ddpg": Speed(learning=100.0, acting=4000.0, startup=12.0),
    "td3": Speed(learning=92.0, acting=4000.0, startup=12.0),
    "sac": Speed(learning=60.0, acting=4000.0, startup=12.0),
    "sac-auto": Speed(learning=58.0, acting=4000.0, startup=12.0),
}
"""For this 2-core AMD EPYC VM at one torch thread on cartpole-swingup (batch 256), when free.

QMLE's and TD3's learning speeds are those of ``benchmarks/README.md`` (speed_qmle_vs_td3.py,
3000 timed steps on a nearly idle machine). The rest is scaled from harness runs made while the
machine was shared (load average 4-5 on 2 cores; every process got about 40% of a core): there
TD3 learned at 35 env steps/s, DDPG at 1.15× and SAC at 0.74× TD3, and evaluation (5 episodes
stepped together) ran at 135 env steps/s for QMLE (1000 candidates per state) and about 1700 for
the others; these were multiplied by 92 / 35 and rounded down. Startup is process start to first
env step (imports, 7 DMC envs, building; QMLE's includes numba compiling Tianshou's
prioritized-replay segment tree)."""

RANDOM_STEPS_PER_SECOND = 1000.0
"""Warm-up env steps/s (uniformly random actions, DMC physics and Tianshou's collector)."""


def scaled_warmup(documented: int, *, budget: int) -> int:
    """Random steps for a run of ``budget`` env steps, from the algorithm's ``documented`` number.

    >>> scaled_warmup(25_000, budget=1_000_000), scaled_warmup(25_000, budget=100_000)
    (25000, 2500)
    >>> scaled_warmup(25_000, budget=10_000), scaled_warmup(1000, budget=2000)
    (1000, 1000)
    """
    if budget >= FULL_BUDGET:
        warmup = documented
    else:
        warmup = max(min(documented, WARMUP_FLOOR), round(documented * budget / FULL_BUDGET))
    return min(warmup, budget // 2)


def estimate_run_seconds(spec: RunSpec, speed: Speed) -> float:
    """Seconds one run takes on one free core, by the time model."""
    points = len(eval_points(budget=spec.budget, interval=spec.eval_interval))
    return (speed.startup + spec.warmup / RANDOM_STEPS_PER_SECOND
            + (spec.budget - spec.warmup) / speed.learning
            + points * spec.eval_episodes * EPISODE_STEPS / speed.acting)


def estimate_seconds(specs: Iterable[RunSpec], *, speeds: Mapping[str, Speed] = REFERENCE_SPEEDS) -> float:
    """Core-seconds of all ``specs`` (divide by the number of parallel processes for wall time).

    :raises KeyError: for an algorithm without a reference speed.
    """
    return sum(estimate_run_seconds(s, speeds[s.algorithm]) for s in specs)


def specs_for_budget(
    budget: int, *, tasks: Iterable[str], algorithms: Iterable[str], seeds: Iterable[int],
    documented_warmups: Mapping[str, int], num_eval_points: int, eval_episodes: int,
) -> list[RunSpec]:
    """The runs of a grid at ``budget`` with ``num_eval_points`` evenly spaced evaluations."""
    interval = max(1, budget // num_eval_points)
    return [
        RunSpec(algorithm=a, task=t, seed=s, budget=budget,
                warmup=scaled_warmup(documented_warmups[a], budget=budget), eval_interval=interval,
                eval_episodes=eval_episodes, threads=1)
        for s in seeds for t in tasks for a in algorithms
    ]


def largest_budget(
    *, seconds: float, workers: int, step: int, speeds: Mapping[str, Speed] = REFERENCE_SPEEDS,
    **grid: object,
) -> int:
    """The largest multiple of ``step`` whose grid (see :func:`specs_for_budget`) fits ``seconds`` of
    wall time on ``workers`` parallel one-thread processes, by the time model; 0 if none fits."""
    def fits(budget: int) -> bool:
        specs = specs_for_budget(budget, **grid)  # type: ignore[arg-type]
        return estimate_seconds(specs, speeds=speeds) / workers <= seconds

    low, high = 0, step
    while fits(high):
        low, high = high, high * 2
    while high - low > step:
        middle = (low + high) // 2 // step * step
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


@dataclass(frozen=True, kw_only=True)
class Goal:
    """One goal an issue set for a tier, checked per task on the means over seeds (see
    :func:`benchmarks.harness.report.goal_section`).

    On a task the goal holds when ``ours`` scores at least ``ratio`` × each of ``against`` (more
    than, when ``strict``), and, with ``cpu_against``, uses no more CPU seconds per run than that
    algorithm; it is met when it holds on at least ``tasks_needed`` tasks.
    """

    issue: int
    ours: str
    against: tuple[str, ...]
    tasks_needed: int
    ratio: float = 1.0
    strict: bool = False
    cpu_against: str | None = None


@dataclass(frozen=True, kw_only=True)
class Tier:
    """Defaults of one tier."""

    name: str
    description: str
    tasks: tuple[str, ...]
    algorithms: tuple[str, ...]
    seeds: tuple[int, ...]
    budget: int
    eval_interval: int
    eval_episodes: int
    workers: int
    threads: int = 1
    goals: tuple[Goal, ...] = ()


QUICK_HOURS = 1.0
QUICK_WORKERS = 2
QUICK_EVAL_POINTS = 5
QUICK_EVAL_EPISODES = 5
QUICK_ALGORITHMS = ("qmle", "ddpg", "td3", "sac")


def quick_budget(documented_warmups: Mapping[str, int]) -> int:
    """The ``quick`` tier's budget: the largest multiple of 1000 env steps that fits."""
    return largest_budget(
        seconds=QUICK_HOURS * 3600, workers=QUICK_WORKERS, step=1000,
        tasks=DMC_TASKS, algorithms=QUICK_ALGORITHMS, seeds=(0, 1, 2),
        documented_warmups=documented_warmups, num_eval_points=QUICK_EVAL_POINTS,
        eval_episodes=QUICK_EVAL_EPISODES,
    )


TIER_100K_TASKS = ("cartpole-swingup", "finger-spin", "walker-walk")
"""One, two and six action dimensions."""

TIER_100K_ALGORITHMS = ("qmle", "qmle-efficient", "td3", "sac-auto")
"""The paper's QMLE, our efficient preset, and the two baselines the goal is measured against
(auto-α SAC: fixed α = 0.2 suits MuJoCo's reward scale, not DMC's rewards of at most 1)."""

GOALS_100K = (
    Goal(issue=16, ours="qmle-efficient", against=("td3", "sac-auto"), tasks_needed=2),
    Goal(issue=16, ours="qmle-efficient", against=(), tasks_needed=3, cpu_against="td3"),
)
"""Issue 16's two goals: the efficient preset scores at least as well as TD3 and auto-α SAC on at
least 2 of the 3 tasks; and it finishes in no more time than TD3 (CPU seconds here) on every task."""

IQ_100K_TASKS = ("Hopper-v5", "Walker2d-v5", "InvertedDoublePendulum-v5")
IQ_100K_ALGORITHMS = ("iq", "miq", "miq-paper", "sac-auto")
"""IQ and M-IQ at our defaults, the paper's M-IQ, and the adaptive-α SAC the paper compares with."""

GOALS_IQ_100K = (Goal(issue=13, ours="miq", against=("sac-auto",), tasks_needed=3, ratio=0.9),)
"""Issue 13: M-IQ at the default reaches at least 90 % of auto-α SAC's return on each task."""

SAVO_100K_TASKS = ("restricted-InvertedPendulum", "restricted-InvertedDoublePendulum", "restricted-Hopper")
SAVO_100K_ALGORITHMS = ("savo", "savo-l1", "td3")
"""SAVO at the paper's list length, the list-length-1 control, and Tianshou's TD3."""

GOALS_SAVO_100K = (
    Goal(issue=14, ours="savo", against=("td3",), tasks_needed=2, strict=True),
    Goal(issue=14, ours="savo", against=("savo-l1",), tasks_needed=2, strict=True),
)
"""Issue 14: SAVO scores above TD3 on at least 2 of the 3 tasks, and above the list-length-1
control (read here on the same count of tasks)."""


def tiers(documented_warmups: Mapping[str, int], *, cpus: int) -> dict[str, Tier]:
    """The three tiers; ``cpus`` sets the full tier's parallel processes."""
    quick = quick_budget(documented_warmups)
    return {
        "smoke": Tier(
            name="smoke", description="minutes: wiring check, not a result", tasks=("cartpole-swingup",),
            algorithms=("qmle", "td3"), seeds=(0,), budget=2000, eval_interval=1000, eval_episodes=1,
            workers=1,
        ),
        "quick": Tier(
            name="quick",
            description=(f"about {QUICK_HOURS:g} h on {QUICK_WORKERS} free cores by the time model: "
                         f"{len(DMC_TASKS)} DMC tasks × {len(QUICK_ALGORITHMS)} algorithms × 3 seeds × "
                         f"{quick} env steps (an early-learning snapshot, far from convergence)"),
            tasks=DMC_TASKS, algorithms=QUICK_ALGORITHMS, seeds=(0, 1, 2), budget=quick,
            eval_interval=max(1, quick // QUICK_EVAL_POINTS), eval_episodes=QUICK_EVAL_EPISODES,
            workers=QUICK_WORKERS,
        ),
        "100k": Tier(
            name="100k",
            description="sample efficiency at a budget one machine affords: 3 DMC tasks × QMLE "
                        "(paper), QMLE (efficient), TD3, auto-α SAC × 3 seeds × 100 000 env steps",
            tasks=TIER_100K_TASKS, algorithms=TIER_100K_ALGORITHMS, seeds=(0, 1, 2), budget=100_000,
            eval_interval=10_000, eval_episodes=10, workers=QUICK_WORKERS, goals=GOALS_100K,
        ),
        "iq100k": Tier(
            name="iq100k",
            description="IQ and M-IQ against auto-α SAC on 3 MuJoCo tasks × 3 seeds × 100 000 env steps",
            tasks=IQ_100K_TASKS, algorithms=IQ_100K_ALGORITHMS, seeds=(0, 1, 2), budget=100_000,
            eval_interval=10_000, eval_episodes=10, workers=QUICK_WORKERS, goals=GOALS_IQ_100K,
        ),
        "savo100k": Tier(
            name="savo100k",
            description="SAVO, SAVO with list length 1 and TD3 on 3 restricted MuJoCo tasks × 3 seeds × "
                        "100 000 env steps",
            tasks=SAVO_100K_TASKS, algorithms=SAVO_100K_ALGORITHMS, seeds=(0, 1, 2), budget=100_000,
            eval_interval=10_000, eval_episodes=10, workers=QUICK_WORKERS, goals=GOALS_SAVO_100K,
        ),
        "full": Tier(
            name="full", description="paper scale, for many cores or a Ray cluster (days of CPU)",
            tasks=DMC_TASKS, algorithms=("qmle", "ddpg", "td3", "sac", "miq"), seeds=tuple(range(10)),
            budget=FULL_BUDGET, eval_interval=10_000, eval_episodes=10, workers=max(1, cpus),
        ),
    }


def hours(seconds: float) -> str:
    """``5400`` → ``"1.5 h"``; below an hour in minutes."""
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{math.ceil(seconds / 60)} min"


__all__ = [
    "DMC_TASKS",
    "FULL_BUDGET",
    "GOALS_100K",
    "GOALS_IQ_100K",
    "GOALS_SAVO_100K",
    "IQ_100K_ALGORITHMS",
    "IQ_100K_TASKS",
    "REFERENCE_SPEEDS",
    "SAVO_100K_ALGORITHMS",
    "SAVO_100K_TASKS",
    "TIER_100K_ALGORITHMS",
    "TIER_100K_TASKS",
    "Goal",
    "Speed",
    "Tier",
    "estimate_run_seconds",
    "estimate_seconds",
    "hours",
    "largest_budget",
    "quick_budget",
    "scaled_warmup",
    "specs_for_budget",
    "tiers",
]
