"""IQ's temperature schemes, the Munchausen clip default and SAC's adaptive α in the IQ examples."""

from __future__ import annotations

import argparse
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from tianshou.algorithm.modelfree.sac import AutoAlpha

from tianshou_qmle.algorithm.iq import (
    PAPER_TEMPERATURE,
    EntropyTargetTemperature,
    FixedTemperature,
    RewardScaledTemperature,
    multicategorical_target_entropy,
)
from tianshou_qmle.experiment import iq_factory
from tianshou_qmle.utils import load_checkpoint, save_checkpoint

from .test_iq import make_iq, random_obs, transition_batch


def small_batch(algo, *, reward: float, n: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    obs, obs_next = random_obs(n, seed=seed), random_obs(n, seed=seed + 1)
    act = rng.choice(np.linspace(-1, 1, 11, dtype=np.float32), size=(n, 1))
    buffer = transition_batch(obs, act, np.full(n, reward, dtype=np.float32), obs_next,
                              np.zeros(n, bool), np.zeros(n, bool))
    indices = np.arange(n)
    return algo._preprocess_batch(buffer[indices], buffer, indices)


def test_a_float_temperature_is_fixed_and_the_default_is_the_papers():
    algo = make_iq()
    assert isinstance(algo.temperature_schedule, FixedTemperature)
    assert algo.temperature == PAPER_TEMPERATURE == 0.01 and algo.temperature_optim is None
    algo._update_with_batch(small_batch(algo, reward=5.0))
    assert algo.temperature == 0.01


@pytest.mark.parametrize(("share", "direction"), [(0.999, +1), (0.001, -1)])
def test_entropy_target_raises_tau_below_the_target_and_lowers_it_above(share, direction):
    target = multicategorical_target_entropy(act_dim=1, num_bins=11, share=share)
    assert target == pytest.approx(share * math.log(11))
    algo = make_iq(temperature=EntropyTargetTemperature(target_entropy=target, initial=1.0))
    before = algo.temperature
    for seed in range(5):
        stats = algo._update_with_batch(small_batch(algo, reward=1.0, seed=seed))
    assert stats.temperature > 0
    # a fresh policy is near uniform: entropy ≈ ln 11, below 0.999·ln 11 only by a hair, far above 0.001
    assert np.sign(algo.temperature - before) == direction


def test_entropy_target_state_and_optimizer_are_in_the_checkpoint(tmp_path):
    algo = make_iq(temperature=EntropyTargetTemperature(target_entropy=0.1, initial=2.0))
    for seed in range(3):
        algo._update_with_batch(small_batch(algo, reward=1.0, seed=seed))
    path = save_checkpoint(algo, tmp_path / "iq.pt")
    state = algo.state_dict()
    assert "temperature_schedule.log_tau" in state
    restored = make_iq(temperature=EntropyTargetTemperature(target_entropy=0.1, initial=2.0))
    load_checkpoint(restored, path)
    assert restored.temperature == pytest.approx(algo.temperature)
    # the optimizer of ln τ resumes its moments: one more identical update gives an identical τ
    algo._update_with_batch(small_batch(algo, reward=1.0, seed=9))
    restored._update_with_batch(small_batch(restored, reward=1.0, seed=9))
    assert restored.temperature == pytest.approx(algo.temperature, rel=1e-6)


def test_reward_scaled_temperature_follows_a_running_mean_of_abs_reward():
    schedule = RewardScaledTemperature(relative=0.1, momentum=0.5)
    algo = make_iq(temperature=schedule)
    assert algo.temperature == pytest.approx(0.1)  # no reward seen: scale 1
    algo._update_with_batch(small_batch(algo, reward=-8.0))
    assert algo.temperature == pytest.approx(0.8)  # the first batch sets the scale
    algo._update_with_batch(small_batch(algo, reward=4.0))
    assert algo.temperature == pytest.approx(0.1 * (0.5 * 8.0 + 0.5 * 4.0))
    assert float(algo.state_dict()["temperature_schedule.reward_scale"]) == pytest.approx(6.0)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_non_positive_or_non_finite_temperatures_are_refused(bad):
    with pytest.raises(ValueError, match="temperature"):
        make_iq(temperature=bad)
    with pytest.raises(ValueError, match="initial"):
        EntropyTargetTemperature(target_entropy=1.0, initial=bad)
    with pytest.raises(ValueError, match="relative"):
        RewardScaledTemperature(relative=bad)
    with pytest.raises(TypeError, match="temperature must be a float > 0 or a Temperature"):
        make_iq(temperature="0.01")


def factory_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    iq_factory.add_agent_arguments(parser)
    args = parser.parse_args(list(argv))
    args.device = "cpu"
    return args


HOPPERISH = gym.spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)


class Env:
    observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(5,), dtype=np.float32)
    action_space = HOPPERISH


def test_factory_defaults_clip_the_munchausen_term_and_scale_tau_with_the_reward():
    algo = iq_factory.build_iq(factory_args("--algo", "miq"), Env())
    assert algo.munchausen_clip == iq_factory.MUNCHAUSEN_CLIP == -1.0
    assert isinstance(algo.temperature_schedule, RewardScaledTemperature)
    assert algo.temperature_schedule.relative == 0.1
    entropy = iq_factory.build_iq(factory_args("--temperature-scheme", "entropy"), Env())
    assert isinstance(entropy.temperature_schedule, EntropyTargetTemperature)
    assert entropy.temperature_schedule.target_entropy == pytest.approx(0.5 * 3 * math.log(11))
    paper = iq_factory.build_iq(
        factory_args("--algo", "miq", "--temperature-scheme", "fixed", "--no-munchausen-clip"), Env()
    )
    assert paper.munchausen_clip is None and paper.temperature == PAPER_TEMPERATURE
    reward = iq_factory.build_iq(factory_args("--temperature-scheme", "reward",
                                              "--temperature-relative", "0.2"), Env())
    assert isinstance(reward.temperature_schedule, RewardScaledTemperature)
    assert reward.temperature_schedule.relative == 0.2
    gaussian_args = factory_args("--policy-type", "gaussian", "--temperature-scheme", "entropy")
    gaussian = iq_factory.build_iq(gaussian_args, Env())
    assert gaussian.temperature_schedule.target_entropy == -3.0  # SAC's -dim(A)


def test_sac_baseline_tunes_alpha_unless_told_not_to():
    auto = iq_factory.build_sac(factory_args("--algo", "sac"), Env())
    assert isinstance(auto.alpha, AutoAlpha) and auto.alpha._target_entropy == -3.0
    assert auto.alpha.value == pytest.approx(0.2)
    fixed = iq_factory.build_sac(factory_args("--algo", "sac", "--no-sac-auto-alpha"), Env())
    assert not isinstance(fixed.alpha, AutoAlpha) and fixed.alpha.value == pytest.approx(0.2)


def test_temperature_is_a_training_stat():
    algo = make_iq(temperature=2.5)
    stats = algo._update_with_batch(small_batch(algo, reward=1.0))
    assert stats.temperature == 2.5 and torch.isfinite(torch.tensor(stats.loss))


def test_probability_floor_flag_reaches_the_actor_and_defaults_to_the_papers_softmax(capsys):
    assert iq_factory.build_iq(factory_args(), Env()).policy.model.actor.probability_floor == 0.0
    floored = iq_factory.build_iq(factory_args("--probability-floor", "0.1"), Env())
    assert floored.policy.model.actor.probability_floor == 0.1
    assert floored.policy.model.actor.sample_with_floor
    loss_only_args = factory_args("--probability-floor", "0.1", "--no-sample-with-floor")
    loss_only = iq_factory.build_iq(loss_only_args, Env())
    assert not loss_only.policy.model.actor.sample_with_floor
    with pytest.raises(SystemExit):
        factory_args("--probability-floor", "1.0")
    assert "argument --probability-floor" in capsys.readouterr().err
    gaussian = factory_args("--policy-type", "gaussian", "--probability-floor", "0.1")
    with pytest.raises(SystemExit, match=r"--probability-floor 0\.1 needs --policy-type multicategorical"):
        iq_factory.setup_from_args(gaussian, make_envs=None)  # refused before any env is built
