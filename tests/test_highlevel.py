"""Tianshou's high-level API with our algorithms: the builders, the params and the example."""

from __future__ import annotations

import pytest

pytest.importorskip("joblib")  # tianshou.highlevel imports its evaluation extras

from tianshou.highlevel.config import OffPolicyTrainingConfig
from tianshou.highlevel.env import EnvMode
from tianshou.highlevel.experiment import ExperimentConfig

from tianshou_qmle import IQ, QMLE, SAVO
from tianshou_qmle.experiment.highlevel import (
    DMCEnvFactory,
    GymEnvFactory,
    IQExperimentBuilder,
    IQParams,
    QMLEExperimentBuilder,
    QMLEParams,
    SAVOExperimentBuilder,
    SAVOParams,
)
from tianshou_qmle.experiment.presets import EFFICIENT

from .conftest import load_script


def tiny_training(**overrides) -> OffPolicyTrainingConfig:
    return OffPolicyTrainingConfig(
        **{
            "max_epochs": 1,
            "epoch_num_steps": 200,
            "start_timesteps": 200,
            "num_training_envs": 1,
            "num_test_envs": 1,
            "test_step_num_episodes": 1,
            "buffer_size": 1000,
            "batch_size": 32,
            **overrides,
        }
    )


def built(builder) -> object:
    experiment = builder.build()
    envs = experiment.env_factory.create_envs(1, 1, seed=0)
    return experiment.algorithm_factory.create_algorithm(envs, "cpu")


def test_qmle_params_follow_the_preset_and_its_schedule():
    params = QMLEParams(preset="efficient")
    args = params.namespace()
    assert (args.m_target, args.m_greedy, args.n_step) == (
        EFFICIENT.values["m_target"],
        EFFICIENT.values["m_greedy"],
        EFFICIENT.values["n_step"],
    )
    config = params.training_config(max_epochs=3)
    assert config.update_step_num_gradient_steps_per_sample == 1 / EFFICIENT.values["update_every"]
    assert config.collection_step_num_env_steps == EFFICIENT.values["update_every"] and config.max_epochs == 3
    assert QMLEParams(preset="paper", m_target=7).namespace().m_target == 7


def test_builders_make_our_algorithms_for_the_experiments_envs():
    config = ExperimentConfig(seed=0, device="cpu", persistence_enabled=False, watch=False)
    qmle = built(
        QMLEExperimentBuilder(
            DMCEnvFactory("cartpole-swingup"),
            config,
            tiny_training(update_step_num_gradient_steps_per_sample=0.5),
        ).with_qmle_params(QMLEParams(preset="efficient"))
    )
    assert isinstance(qmle, QMLE) and qmle.policy.m_greedy == EFFICIENT.values["m_greedy"]
    # N⁻ = 200 env steps at 0.5 updates per env step: a copy every 100 updates
    assert qmle.target_update_freq == EFFICIENT.values["target_update_env_steps"] // 2
    iq = built(
        IQExperimentBuilder(GymEnvFactory("Pendulum-v1"), config, tiny_training()).with_iq_params(
            IQParams(algo="iq", temperature_scheme="fixed", temperature=0.5)
        )
    )
    assert isinstance(iq, IQ) and iq.temperature == 0.5 and iq.alpha == 0.0
    savo = built(
        SAVOExperimentBuilder(GymEnvFactory("Pendulum-v1"), config, tiny_training()).with_savo_params(
            SAVOParams(list_length=2)
        )
    )
    assert isinstance(savo, SAVO) and savo.policy.num_proposals == 2


def test_dmc_env_factory_gives_flat_seeded_observations():
    factory = DMCEnvFactory("walker-walk")
    a, b = factory.create_env(EnvMode.TRAINING, seed=5), factory.create_env(EnvMode.TRAINING, seed=5)
    obs_a, _ = a.reset(seed=5)
    obs_b, _ = b.reset(seed=5)
    assert obs_a.shape == (24,) and (obs_a == obs_b).all()


def test_unknown_settings_are_refused_by_name():
    with pytest.raises(ValueError, match="no setting named 'temprature'"):
        import argparse

        from tianshou_qmle.experiment.highlevel import namespace_with

        namespace_with(argparse.ArgumentParser(), [], {"temprature": 1.0})


def test_the_high_level_example_runs_a_few_hundred_steps_for_two_seeds(tmp_path):
    results = load_script("examples/dmc_qmle_hl.py").main(
        [
            "--task",
            "cartpole-swingup",
            "--max-epochs",
            "1",
            "--epoch-num-steps",
            "300",
            "--start-timesteps",
            "200",
            "--num-experiments",
            "2",
            "--test-episodes",
            "1",
            "--m-greedy",
            "16",
            "--m-target",
            "8",
            "--hidden",
            "16",
            "--buffer-size",
            "1000",
            "--persistence-base-dir",
            str(tmp_path),
        ]
    )
    assert len(results) == 2 and all(r is not None and r.update_step > 0 for r in results)
    (collection,) = tmp_path.iterdir()
    assert sorted(d.name for d in collection.iterdir()) == ["exp_seed=0", "exp_seed=1"]  # one per seed
