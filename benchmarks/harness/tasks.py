"""Task names, seeded vector envs and the score range used to normalise returns.

A task is a DeepMind Control ``domain-task`` name (``cartpole-swingup``, ``ball_in_cup-catch``),
a gymnasium id, recognised by its version suffix (``Hopper-v5``, ``Pendulum-v1``), or one of
SAVO's restricted MuJoCo tasks, ``restricted-`` and its name (``restricted-Hopper``,
``restricted-InvertedPendulum``; the paper's sphere layout, :mod:`tianshou_qmle.env.restricted`).
All go through :mod:`tianshou_qmle.env`, so every algorithm of an invocation gets the same
wrappers: flat float32 observations for DMC, the plain gymnasium env otherwise, the restricted
action wrapper for the restricted tasks.
"""

from __future__ import annotations

import re
from typing import Literal

import gymnasium as gym
from tianshou.env import BaseVectorEnv

from tianshou_qmle.env import make_dmc_vector_envs, make_gym_vector_envs
from tianshou_qmle.env.restricted import (
    make_restricted_env,
    make_restricted_vector_envs,
    resolve_restricted_task,
)

DMC_MAX_RETURN = 1000.0
"""Every DMC task rewards at most 1 per step over 1000 steps (Tassa et al., 2018)."""

_GYM_ID = re.compile(r"-v\d+$")
RESTRICTED_PREFIX = "restricted-"

TaskKind = Literal["dmc", "gym", "restricted"]


def task_kind(task: str) -> TaskKind:
    """``"restricted"`` for ``restricted-<name>``, ``"gym"`` for ids with a version suffix
    (``Hopper-v5``), ``"dmc"`` for ``domain-task`` names."""
    if task.startswith(RESTRICTED_PREFIX):
        resolve_restricted_task(task)  # an unknown name fails here, with the supported ones
        return "restricted"
    if _GYM_ID.search(task):
        return "gym"
    if "-" not in task.strip("-"):
        raise ValueError(f"task {task!r} is neither a DMC 'domain-task' name nor a gymnasium id 'Name-vN'")
    return "dmc"


def make_task_envs(
    task: str, *, seed: int, num_test_envs: int
) -> tuple[gym.Env, BaseVectorEnv, BaseVectorEnv]:
    """One training env and ``num_test_envs`` evaluation envs, seeded as the examples seed them.

    :return: ``(env, train_envs, test_envs)``; ``env`` is a single instance, for its spaces.
    """
    kind = task_kind(task)
    if kind == "restricted":
        train_envs, test_envs = make_restricted_vector_envs(
            task, num_train_envs=1, num_test_envs=num_test_envs, seed=seed, vector_env="dummy",
        )
        return make_restricted_env(task, seed=seed), train_envs, test_envs
    make = make_dmc_vector_envs if kind == "dmc" else make_gym_vector_envs
    return make(task, seed=seed, num_train_envs=1, num_test_envs=num_test_envs, kind="dummy")


def score_range(task: str) -> tuple[float, float] | None:
    """``(low, high)`` for normalising returns of ``task``: (0, 1000) for DMC, None when unknown
    (gymnasium tasks; the report then normalises by the runs it has, see
    :func:`benchmarks.harness.stats.normalise_scores`)."""
    return (0.0, DMC_MAX_RETURN) if task_kind(task) == "dmc" else None


__all__ = ["DMC_MAX_RETURN", "RESTRICTED_PREFIX", "TaskKind", "make_task_envs", "score_range", "task_kind"]
