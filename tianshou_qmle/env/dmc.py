"""DeepMind Control and gymnasium tasks as flat-observation environments and seeded Tianshou vector envs."""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from typing import Literal, cast

import gymnasium as gym
import numpy as np
from tianshou.env import BaseVectorEnv, DummyVectorEnv, SubprocVectorEnv

from tianshou_qmle.env.discretize import DiscretizedActions
from tianshou_qmle.env.resumable import ResumableEpisodes

# dm_control picks a renderer at import; we never render, and without a display the default
# (glfw) only warns. Users who render can still set MUJOCO_GL themselves.
os.environ.setdefault("MUJOCO_GL", "egl")


class FlatFloat32Observation(gym.ObservationWrapper):
    """Flatten a (Dict) observation into one float32 vector, in the space's key order."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        flat = cast(gym.spaces.Box, gym.spaces.flatten_space(env.observation_space))
        self.observation_space = gym.spaces.Box(
            low=flat.low.astype(np.float32), high=flat.high.astype(np.float32),
            shape=flat.shape, dtype=np.float32,
        )

    def observation(self, observation: object) -> np.ndarray:
        flat = cast(np.ndarray, gym.spaces.flatten(self.env.observation_space, observation))
        return flat.astype(np.float32)


def parse_dmc_task(task: str) -> tuple[str, str]:
    """Split ``"domain-task"`` (``"cartpole-swingup"``, ``"ball_in_cup-catch"``) or ``"domain/task"``."""
    for sep in ("/", "-"):
        if sep in task:
            domain, _, name = task.partition(sep)
            if domain and name:
                return domain, name
    raise ValueError(
        f"task must look like 'domain-task' (e.g. 'cartpole-swingup', 'walker-walk'), got {task!r}"
    )


def _register_shimmy() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import shimmy

    gym.register_envs(shimmy)


def make_dmc_env(
    task: str, seed: int | None = None, *, action_bins: int | None = None, render_mode: str | None = None
) -> gym.Env:
    """One DMC task through shimmy with flat float32 observations and a [-1, 1]-style Box action.

    Episodes last 1000 steps and end in ``truncated=True`` (a time limit, Tassa et al. 2018), so
    learners bootstrap through them.

    :param task: ``"domain-task"``, e.g. ``"cartpole-swingup"``.
    :param seed: seeds the physics and the action space sampler; None leaves them random.
    :param action_bins: None keeps the continuous Box; K ≥ 2 discretises each action dimension
        into K values, ``MultiDiscrete([K] * d)`` (3 = bang-off-bang, QMLE App. D.3).
    :param render_mode: gymnasium's ``render_mode``; ``"rgb_array"`` renders offscreen through
        MuJoCo (``MUJOCO_GL=egl``, the default here, needs libEGL with Mesa's driver: Debian's
        ``libegl1 libegl-mesa0 libgl1-mesa-dri``; ``MUJOCO_GL=osmesa`` needs ``libosmesa6``).
    """
    if action_bins is not None and (
        isinstance(action_bins, bool) or not isinstance(action_bins, int) or action_bins < 2
    ):
        raise ValueError(f"action_bins must be None (continuous) or an integer ≥ 2 (3 is bang-off-bang), "
                         f"got {action_bins!r}")
    domain, name = parse_dmc_task(task)
    _register_shimmy()
    env_id = f"dm_control/{domain}-{name}-v0"
    try:
        env = gym.make(env_id, render_mode=render_mode)
    except gym.error.Error as err:
        raise ValueError(f"unknown DeepMind Control task {task!r} ({env_id}): {err}") from err
    env = FlatFloat32Observation(env)
    if action_bins is not None:
        env = DiscretizedActions(env, num_bins=action_bins)
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


VectorEnvKind = Literal["dummy", "subproc", "ray"]
VECTOR_ENV_KINDS = ("dummy", "subproc", "ray")


def make_vector_env(env_fns: list[Callable[[], gym.Env]], kind: VectorEnvKind = "dummy") -> BaseVectorEnv:
    """Wrap environment factories in Tianshou's Dummy (in-process), Subproc or Ray vector env.

    ``"ray"`` (Tianshou's ``RayVectorEnv``, one Ray actor per env) joins the Ray cluster this
    process is connected to, or starts a local one; it needs ``pip install 'tianshou-qmle[ray]'``.
    """
    if kind == "dummy":
        return DummyVectorEnv(env_fns)
    if kind == "subproc":
        return SubprocVectorEnv(env_fns)
    if kind == "ray":
        try:
            from tianshou.env import RayVectorEnv
        except ImportError as err:  # tianshou imports ray lazily inside RayVectorEnv
            raise ValueError(f"vector env kind 'ray' needs Ray: pip install ray ({err})") from err
        try:
            return RayVectorEnv(env_fns)
        except ImportError as err:
            raise ValueError(f"vector env kind 'ray' needs Ray: pip install ray ({err})") from err
    raise ValueError(f"vector env kind must be one of {VECTOR_ENV_KINDS}, got {kind!r}")


def resumable_env(make_env: Callable[[], gym.Env]) -> gym.Env:
    """``make_env()`` wrapped so that checkpoints can resume its episodes (see
    :mod:`tianshou_qmle.env.resumable`)."""
    return ResumableEpisodes(make_env())


def make_seeded_vector_envs(
    make_env: Callable[[], gym.Env],
    *,
    seed: int,
    num_train_envs: int = 1,
    num_test_envs: int = 5,
    kind: VectorEnvKind = "dummy",
) -> tuple[gym.Env, BaseVectorEnv, BaseVectorEnv]:
    """Training and test vector envs from one factory, seeded apart from each other.

    Training env ``i`` gets seed ``seed + i``; test env ``j`` gets ``seed + 10_000 + j`` so that
    evaluation episodes never replay training ones. Every env is wrapped in
    :class:`~tianshou_qmle.env.resumable.ResumableEpisodes`, which changes nothing in the episodes
    but lets a checkpoint resume them.

    :return: ``(env, train_envs, test_envs)``, where ``env`` is a single instance for its spaces.
    """
    if num_train_envs < 1 or num_test_envs < 1:
        raise ValueError(
            f"num_train_envs and num_test_envs must be ≥ 1, got {num_train_envs}, {num_test_envs}"
        )
    env = make_env()  # built here first, so a bad task fails in this process, not in a worker
    env.reset(seed=seed)
    env.action_space.seed(seed)
    make_resumable = functools.partial(resumable_env, make_env)
    train_envs = make_vector_env([make_resumable] * num_train_envs, kind)
    test_envs = make_vector_env([make_resumable] * num_test_envs, kind)
    train_envs.seed([seed + i for i in range(num_train_envs)])
    test_envs.seed([seed + 10_000 + j for j in range(num_test_envs)])
    return env, train_envs, test_envs


def make_dmc_vector_envs(
    task: str,
    *,
    seed: int,
    num_train_envs: int = 1,
    num_test_envs: int = 5,
    kind: VectorEnvKind = "dummy",
    action_bins: int | None = None,
) -> tuple[gym.Env, BaseVectorEnv, BaseVectorEnv]:
    """Training and test vector envs for a DMC task (see :func:`make_seeded_vector_envs`);
    ``action_bins`` discretises the actions as in :func:`make_dmc_env`."""
    return make_seeded_vector_envs(
        functools.partial(make_dmc_env, task, action_bins=action_bins), seed=seed,
        num_train_envs=num_train_envs, num_test_envs=num_test_envs, kind=kind,
    )


def make_gym_env(task: str, seed: int | None = None, *, render_mode: str | None = None) -> gym.Env:
    """``gymnasium.make(task)`` (e.g. ``Hopper-v5``, ``Pendulum-v1``), seeded if ``seed`` is given;
    ``render_mode`` as gymnasium's (MuJoCo tasks render offscreen like DMC, see :func:`make_dmc_env`)."""
    try:
        env = gym.make(task, render_mode=render_mode)
    except gym.error.Error as err:
        raise ValueError(f"unknown gymnasium task {task!r}: {err}") from err
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


def make_gym_vector_envs(
    task: str,
    *,
    seed: int,
    num_train_envs: int = 1,
    num_test_envs: int = 5,
    kind: VectorEnvKind = "dummy",
) -> tuple[gym.Env, BaseVectorEnv, BaseVectorEnv]:
    """Training and test vector envs for a gymnasium task (see :func:`make_seeded_vector_envs`).

    Time limits end episodes with ``truncated=True``, which our algorithms bootstrap through.
    """
    return make_seeded_vector_envs(
        functools.partial(make_gym_env, task), seed=seed, num_train_envs=num_train_envs,
        num_test_envs=num_test_envs, kind=kind,
    )
