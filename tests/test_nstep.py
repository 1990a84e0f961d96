"""n-step returns (App. E.1) with partial-episode bootstrapping, checked against a hand computation."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from tianshou.algorithm.optim import AdamOptimizerFactory
from tianshou.data import Batch

from tianshou_qmle import QMLE, QMLEPolicy, build_qmle_network
from tianshou_qmle.data.buffer import ArgmaxPriorReplayBuffer

GAMMA = 0.9
# two episodes: one ends in a termination (no bootstrap), one in a time-limit truncation (bootstrap)
EPISODES = [(5, "terminated"), (4, "truncated")]


def filled_buffer(rng: np.random.Generator) -> ArgmaxPriorReplayBuffer:
    buf = ArgmaxPriorReplayBuffer(size=32)
    for length, ending in EPISODES:
        obs = rng.normal(size=2).astype(np.float32)
        for t in range(length):
            obs_next = rng.normal(size=2).astype(np.float32)
            last = t == length - 1
            buf.add(Batch(
                obs=obs, act=rng.uniform(-1, 1, size=1).astype(np.float32), rew=float(rng.normal()),
                terminated=last and ending == "terminated", truncated=last and ending == "truncated",
                obs_next=obs_next, info={},
            ))
            obs = obs_next
    return buf


def expected_returns(algo: QMLE, buf: ArgmaxPriorReplayBuffer, n: int) -> np.ndarray:
    critic = algo.target_model.critic
    returns, start = [], 0
    for length, _ in EPISODES:
        for t in range(length):
            i = start + t
            horizon = min(n, length - t)
            last = i + horizon - 1
            g = sum(GAMMA**k * buf.rew[i + k] for k in range(horizon))
            if not buf.terminated[last]:
                with torch.no_grad():
                    q_next = critic(buf.obs_next[last : last + 1], buf._meta["act_max"][last : last + 1])
                g += GAMMA**horizon * q_next.item()
            returns.append(g)
        start += length
    return np.array(returns)


@pytest.mark.parametrize("n", [1, 3])
def test_nstep_returns_bootstrap_through_truncation_but_not_termination(n):
    torch.manual_seed(0)
    space = gym.spaces.Box(-1, 1, (1,))
    model = build_qmle_network(obs_dim=2, action_space=space)
    policy = QMLEPolicy(model=model, action_space=space)
    algo = QMLE(policy=policy, optim=AdamOptimizerFactory(lr=1e-3), gamma=GAMMA,
                n_step_return_horizon=n)
    buf = filled_buffer(np.random.default_rng(0))

    def stored_prior_value(buffer, indices):
        # the bootstrap value of the stored prior, without a search, so the expectation is exact
        with torch.no_grad():
            return algo.target_model.critic(buffer.obs_next[indices], buffer._meta["act_max"][indices])

    algo._target_q = stored_prior_value
    indices = np.arange(len(buf))
    batch = algo._preprocess_batch(buf[indices], buf, indices)
    np.testing.assert_allclose(batch.returns.numpy().ravel(), expected_returns(algo, buf, n), rtol=1e-5)


def test_nstep_horizon_must_be_positive():
    space = gym.spaces.Box(-1, 1, (1,))
    policy = QMLEPolicy(model=build_qmle_network(obs_dim=2, action_space=space), action_space=space)
    with pytest.raises(ValueError, match="n_step_return_horizon must be ≥ 1, got 0"):
        QMLE(policy=policy, optim=AdamOptimizerFactory(lr=1e-3), n_step_return_horizon=0)
