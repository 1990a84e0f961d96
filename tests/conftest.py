import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from tianshou.algorithm.optim import AdamOptimizerFactory

from tianshou_qmle import QMLE, QMLEPolicy, build_qmle_network

torch.set_num_threads(1)
os.environ.setdefault("MUJOCO_GL", "egl")

ROOT = Path(__file__).resolve().parents[1]


def load_script(relative_path: str, name: str | None = None) -> ModuleType:
    """Import a script of the repository (an example or a benchmark) as a fresh module.

    It is registered in ``sys.modules`` under ``name`` (default: the file's stem) before it runs,
    because dataclasses and pickling look their module up there.
    """
    path = ROOT / relative_path
    name = path.stem if name is None else name
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def mean_return(env: Any, choose_item: Any, *, episodes: int, seed: int) -> float:
    """Mean return of ``episodes`` episodes of a :class:`~tianshou_qmle.env.RecSimEnv` whose users are
    seeded ``seed, seed + 1, …``; ``choose_item(env, rng)`` picks each item, ``rng`` seeded ``seed``."""
    rng = np.random.default_rng(seed)
    returns = []
    for episode in range(episodes):
        env.reset(seed=seed + episode)
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(choose_item(env, rng))
            total += reward
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="also run long learning runs")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow") or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="long learning run: use --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def make_qmle(
    obs_dim: int = 3,
    act_dim: int = 1,
    *,
    families: tuple[str, ...] = ("delta", "categorical"),
    ratios: tuple[float, ...] = (0.9, 0.01, 0.09),
    m_greedy: int = 32,
    m_target: int = 16,
    target_update_freq: int = 50,
    lr: float = 5e-4,
    eps: float = 0.1,
    scoring_dtype: torch.dtype | str | None = torch.float32,
    **algo_kwargs,
) -> QMLE:
    """A small QMLE agent on a Box(-2, 2)^act_dim space (Pendulum's bounds), scoring in float32
    unless told otherwise, so that exact guarantees hold whatever the CPU."""
    action_space = gym.spaces.Box(-2.0, 2.0, shape=(act_dim,), dtype=np.float32)
    obs_space = gym.spaces.Box(-np.inf, np.inf, shape=(obs_dim,), dtype=np.float32)
    model = build_qmle_network(obs_dim=obs_dim, act_dim=act_dim, predictor_families=families)
    policy = QMLEPolicy(
        model=model, action_space=action_space, observation_space=obs_space,
        m_greedy=m_greedy, proposal_ratios=ratios, eps_training=eps, scoring_dtype=scoring_dtype,
    )
    return QMLE(
        policy=policy, optim=AdamOptimizerFactory(lr=lr), m_target=m_target,
        target_update_freq=target_update_freq, **algo_kwargs,
    )
