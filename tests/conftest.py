import os

import gymnasium as gym
import numpy as np
import pytest
import torch
from tianshou.algorithm.optim import AdamOptimizerFactory

from tianshou_qmle import QMLE, QMLEPolicy, build_qmle_network

torch.set_num_threads(1)
os.environ.setdefault("MUJOCO_GL", "egl")


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
    **algo_kwargs,
) -> QMLE:
    """A small QMLE agent on a Box(-2, 2)^act_dim space (Pendulum's bounds)."""
    action_space = gym.spaces.Box(-2.0, 2.0, shape=(act_dim,), dtype=np.float32)
    obs_space = gym.spaces.Box(-np.inf, np.inf, shape=(obs_dim,), dtype=np.float32)
    model = build_qmle_network(obs_dim=obs_dim, act_dim=act_dim, predictor_families=families)
    policy = QMLEPolicy(
        model=model, action_space=action_space, observation_space=obs_space,
        m_greedy=m_greedy, proposal_ratios=ratios, eps_training=eps,
    )
    return QMLE(
        policy=policy, optim=AdamOptimizerFactory(lr=lr), m_target=m_target,
        target_update_freq=target_update_freq, **algo_kwargs,
    )
