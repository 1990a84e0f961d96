"""Every kind of bad input fails at the boundary, naming the parameter as the user wrote it."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from tianshou.data import Batch

from tianshou_qmle.env import make_dmc_env
from tianshou_qmle.net.critic import ActionInCritic
from tianshou_qmle.net.qmle_net import build_qmle_network

from .conftest import load_script, make_qmle
from .test_iq import make_iq
from .test_savo import make_savo

BOX = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

EXAMPLE_FLAGS = {
    "dmc_qmle": ["--epoch-steps", "--update-every", "--m-target", "--m-greedy", "--hidden", "--batch-size",
                 "--n-step", "--target-update-env-steps", "--buffer-size", "--total-steps", "--threads",
                 "--test-episodes", "--eval-episodes", "--num-train-envs", "--num-test-envs", "--lr",
                 "--delta-std"],
    "mujoco_iq": ["--epoch-steps", "--batch-size", "--buffer-size", "--env-steps-per-collect",
                  "--updates-per-step", "--lr", "--temperature", "--polyak", "--initial-temperature"],
    "restricted_savo": ["--epoch-steps", "--list-length", "--batch-size", "--buffer-size", "--n-step",
                        "--update-actor-freq", "--actor-lr", "--critic-lr", "--summary-dim",
                        "--num-spheres", "--radius"],
}


@pytest.mark.parametrize(("example", "flag"), [(e, f) for e, flags in EXAMPLE_FLAGS.items() for f in flags])
@pytest.mark.parametrize("value", ["0", "-3"])
def test_zero_or_negative_sizes_and_rates_are_refused_by_name(example, flag, value, capsys):
    parser = load_script(f"examples/{example}.py").build_parser()
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args([flag, value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}" in err and value in err, err


@pytest.mark.parametrize(("flag", "value"), [("--gamma", "1.5"), ("--eps", "-0.1"), ("--beta", "2"),
                                              ("--uniform-grid-share", "1.2"), ("--num-bins", "1")])
def test_out_of_range_qmle_flags_are_refused_by_name(flag, value, capsys):
    with pytest.raises(SystemExit):
        load_script("examples/dmc_qmle.py").build_parser().parse_args([flag, value])
    assert f"argument {flag}" in capsys.readouterr().err


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"hidden_width": 0}, "hidden_width must be an integer ≥ 1, got 0"),
    ({"hidden_width": -3}, "hidden_width must be an integer ≥ 1, got -3"),
    ({"delta_std": -0.1}, "delta_std must be a number > 0"),
    ({"num_bins": 1}, "num_bins must be None or an integer ≥ 2"),
    ({"obs_dim": 0}, "obs_dim must be an integer ≥ 1, got 0"),
])
def test_non_positive_network_sizes_name_the_parameter(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_qmle_network(**{"obs_dim": 3, "action_space": BOX, **kwargs})


def test_critic_widths_and_types_are_checked():
    with pytest.raises(ValueError, match="obs_width must be an integer ≥ 1, got 0"):
        ActionInCritic(obs_dim=3, act_dim=2, obs_width=0)
    with pytest.raises(TypeError, match=r"act_width must be an integer ≥ 1, got 2\.5"):
        ActionInCritic(obs_dim=3, act_dim=2, act_width=2.5)


def test_action_bins_keep_their_name():
    with pytest.raises(ValueError, match=r"action_bins must be None .* or an integer ≥ 2.*got 1"):
        make_dmc_env("cartpole-swingup", action_bins=1)


def test_buffer_size_keeps_its_name():
    from tianshou_qmle.data.buffer import make_replay_buffer

    with pytest.raises(ValueError, match="size must be an integer ≥ num_envs"):
        make_replay_buffer(size=0, num_envs=1)


@pytest.mark.parametrize("make", [make_qmle, make_iq, make_savo], ids=["qmle", "iq", "savo"])
def test_policies_refuse_unbatched_and_wrong_width_observations(make):
    algo = make(obs_dim=3)
    with pytest.raises(ValueError, match=r"batch of observations of shape \[batch, 3\], got an unbatched"):
        algo.policy(Batch(obs=np.zeros(3, dtype=np.float32), info=Batch()))
    with pytest.raises(ValueError, match=r"shape \[batch, 3\] .*got shape \(4, 5\)"):
        algo.policy(Batch(obs=np.zeros((4, 5), dtype=np.float32), info=Batch()))
    out = algo.policy(Batch(obs=np.zeros((4, 3), dtype=np.float32), info=Batch()))
    assert np.asarray(out.act).shape[0] == 4


@pytest.mark.parametrize("make", [make_qmle, make_iq, make_savo], ids=["qmle", "iq", "savo"])
def test_updates_on_an_empty_buffer_are_refused(make):
    from tianshou.utils.torch_utils import policy_within_training_step

    from tianshou_qmle.data.buffer import FastNullCheckVectorReplayBuffer

    algo = make(obs_dim=3)
    with policy_within_training_step(algo.policy), pytest.raises(ValueError, match="empty replay buffer"):
        algo.update(FastNullCheckVectorReplayBuffer(10, 1), 4)

