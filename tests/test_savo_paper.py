"""SAVO as the paper and its authors ran it: list length, episodic OU noise with ε on the
increments, gradient clipping, and surrogate targets from the target twins."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
from tianshou.data import Batch, Collector
from tianshou.utils.torch_utils import policy_within_training_step

from tianshou_qmle.data.buffer import FastNullCheckVectorReplayBuffer
from tianshou_qmle.env import make_gym_vector_envs
from tianshou_qmle.experiment import savo_factory
from tianshou_qmle.exploration import EPISODE_STEP_KEY, EpisodicOUNoise, episode_starts

from .test_savo import make_savo


def test_ou_increments_scaled_by_eps_give_a_spread_growing_as_sqrt_eps():
    np.random.seed(0)
    spreads = {}
    for eps in (1.0, 0.25):
        noise = EpisodicOUNoise(sigma=0.2, theta=0.15)
        samples = np.concatenate([noise((64, 1), scale=eps) for _ in range(4000)][500:])
        spreads[eps] = samples.std()
        assert spreads[eps] == pytest.approx(noise.stationary_std(eps), rel=0.08)
    # a quarter of ε: half the spread (√ε), where scaling the output would give a quarter
    assert spreads[0.25] / spreads[1.0] == pytest.approx(0.5, rel=0.1)


def test_ou_rows_restart_independently():
    np.random.seed(1)
    noise = EpisodicOUNoise(sigma=0.2, theta=0.15)
    for _ in range(50):
        state = noise((3, 2))
    noise.reset(np.array([False, True, False]))
    after = noise((3, 2), scale=0.0)  # ε = 0: no increment, the state is what reset left
    np.testing.assert_array_equal(after[1], [0.0, 0.0])
    np.testing.assert_array_equal(after[[0, 2]], state[[0, 2]])


def test_episode_starts_are_read_from_the_info_our_envs_report():
    info = Batch([{EPISODE_STEP_KEY: 0}, {EPISODE_STEP_KEY: 7}])
    np.testing.assert_array_equal(episode_starts(info, 2), [True, False])
    assert episode_starts(Batch(), 2) is None and episode_starts(None, 2) is None


def test_savo_restarts_its_proposal_noise_whenever_an_env_starts_an_episode():
    algo = make_savo(obs_dim=3)
    noise = algo.policy.proposal_noise
    assert isinstance(noise, EpisodicOUNoise) and (noise.sigma, noise.theta) == (0.2, 0.15)
    resets = []
    original = noise.reset
    noise.reset = lambda rows=None: (resets.append(np.asarray(rows).copy()), original(rows))[1]
    _, train_envs, _ = make_gym_vector_envs("Pendulum-v1", seed=0, num_train_envs=2, num_test_envs=1)
    collector = Collector(algo, train_envs, FastNullCheckVectorReplayBuffer(2000, 2, random_seed=0),
                          exploration_noise=True)
    collector.reset()
    with policy_within_training_step(algo.policy):
        collector.collect(n_step=900)  # 450 per env; Pendulum episodes last 200: starts at 0, 200, 400
    starts = [r for r in resets if r.any()]
    assert len(starts) == 3 and all(r.tolist() == [True, True] for r in starts)


def factory_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    savo_factory.add_agent_arguments(parser, defaults=savo_factory.MUJOCO_DEFAULTS, with_td3=True)
    args = parser.parse_args(list(argv))
    args.device = "cpu"
    return args


class Env:
    import gymnasium as gym

    observation_space = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)


def test_list_length_three_is_mu_and_two_successive_actors():
    args = factory_args()
    assert args.list_length == savo_factory.PAPER_LIST_LENGTH == 3
    algo = savo_factory.build_savo(args, Env())
    assert algo.policy.actor.num_successive == 2 and algo.policy.num_proposals == 3
    assert algo.surrogates is not None and algo.surrogates.num_surrogates == 2
    one = savo_factory.build_savo(factory_args("--list-length", "1"), Env())
    assert one.policy.num_proposals == 1 and one.surrogates is None
    assert savo_factory.algorithm_name(factory_args("--list-length", "1")) == "savo-L1"


def test_factory_defaults_follow_table_3_and_the_authors_code():
    args = factory_args()
    algo = savo_factory.build_savo(args, Env())
    assert args.max_grad_norm == 1.0 and all(o._max_grad_norm == 1.0 for o in algo._optimizers)
    assert algo.surrogate_critics == "target"
    assert args.proposal_noise_sigma == 0.2 and args.ou_theta == 0.15
    plain = savo_factory.build_savo(factory_args("--no-grad-clip", "--surrogate-critics", "online"), Env())
    assert all(o._max_grad_norm is None for o in plain._optimizers) and plain.surrogate_critics == "online"
    authors = savo_factory.build_savo(
        factory_args("--summariser", "deepset-state-max", "--summary-dim", "16"), Env()
    )
    assert type(authors.policy.actor.summariser).__name__ == "StateActionDeepSetSummariser"


def test_surrogate_targets_come_from_the_chosen_twin_critics():
    torch.manual_seed(0)
    algo = make_savo(obs_dim=3, surrogate_critics="target")
    obs, inputs = torch.randn(8, 3), torch.rand(8, 4, 1) * 2 - 1
    with torch.no_grad():  # move the online critics away from their target copies
        for p in algo.policy.critic.parameters():
            p.add_(0.5)
    target_min, _ = algo._twin_min_values(obs, inputs)
    algo.surrogate_critics = "online"
    online_min, online_q1 = algo._twin_min_values(obs, inputs)
    from tianshou_qmle.net.savo import critic_values

    torch.testing.assert_close(online_q1, critic_values(algo.policy.critic, obs, inputs))
    expected = torch.minimum(critic_values(algo.critic_old, obs, inputs),
                             critic_values(algo.critic2_old, obs, inputs))
    torch.testing.assert_close(target_min, expected)
    assert not torch.allclose(target_min, online_min)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"surrogate_critics": "both"}, "surrogate_critics must be 'target' or 'online'"),
    ({"max_grad_norm": 0.0}, "max_grad_norm must be None or a finite number > 0"),
])
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_savo(obs_dim=3, **kwargs)
