#!/usr/bin/env python
"""QMLE through Tianshou's high-level API, in the style of Tianshou's ``mujoco_td3_hl.py``.

A Tianshou script's ``TD3ExperimentBuilder(...).with_td3_params(...)`` becomes
``QMLEExperimentBuilder(...).with_qmle_params(QMLEParams(preset=...))``; the experiment and
training configs, the logger and ``build_and_run(num_experiments=...)`` stay Tianshou's. IQ and
SAVO have ``IQExperimentBuilder`` and ``SAVOExperimentBuilder`` in the same module
(:mod:`tianshou_qmle.experiment.highlevel`).

    python examples/dmc_qmle_hl.py                                  # walker-walk, efficient preset
    python examples/dmc_qmle_hl.py --preset paper --num-experiments 3 --task cartpole-swingup
"""

from __future__ import annotations

import argparse

from tianshou.highlevel.experiment import ExperimentConfig

from tianshou_qmle.experiment.highlevel import DMCEnvFactory, QMLEExperimentBuilder, QMLEParams


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="walker-walk", help="DeepMind Control 'domain-task'")
    p.add_argument("--preset", choices=["paper", "efficient"], default="efficient", help="QMLE preset")
    p.add_argument("--seed", type=int, default=0, help="seed of the first experiment")
    p.add_argument("--max-epochs", type=int, default=10, help="Tianshou epochs")
    p.add_argument("--epoch-num-steps", type=int, default=10_000, help="env steps per epoch")
    p.add_argument("--start-timesteps", type=int, default=1000, help="random warm-up steps")
    p.add_argument("--num-experiments", type=int, default=1, help="seeds, run one after another")
    p.add_argument("--test-episodes", type=int, default=5, help="test episodes after each epoch")
    p.add_argument("--persistence-base-dir", default="log_hl", help="where Tianshou stores the runs")
    p.add_argument("--m-greedy", type=int, default=None, help="override the preset's m_greedy")
    p.add_argument("--m-target", type=int, default=None, help="override the preset's m_target")
    p.add_argument("--hidden", type=int, default=None, help="override the preset's stream width")
    p.add_argument("--buffer-size", type=int, default=None, help="replay capacity; None: the preset's")
    return p


def main(argv: list[str] | None = None) -> list:
    args = build_parser().parse_args(argv)
    params = QMLEParams(
        preset=args.preset, m_greedy=args.m_greedy, m_target=args.m_target, hidden=args.hidden
    )
    experiment_config = ExperimentConfig(
        seed=args.seed, device="cpu", persistence_base_dir=args.persistence_base_dir, watch=False
    )
    training_config = params.training_config(
        max_epochs=args.max_epochs,
        epoch_num_steps=args.epoch_num_steps,
        start_timesteps=args.start_timesteps,
        num_training_envs=1,
        num_test_envs=args.test_episodes,
        test_step_num_episodes=args.test_episodes,
        **({"buffer_size": args.buffer_size} if args.buffer_size else {}),
    )
    builder = QMLEExperimentBuilder(DMCEnvFactory(args.task), experiment_config, training_config)
    return builder.with_qmle_params(params).build_and_run(
        num_experiments=args.num_experiments, perform_rliable_analysis=False
    )


if __name__ == "__main__":
    main()
