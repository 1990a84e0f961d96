"""Train IQ, M-IQ or Tianshou's SAC on a DeepMind Control task (cartpole-swingup by default).

IQ (Vieillard et al., "Implicitly Regularized RL with Implicit Q-Values") learns a multicategorical
policy π (n = 11 values per action dimension) and a value V with the single loss of Eq. 2; Q is
implicit, τ ln π + V. Defaults follow the paper's MuJoCo settings (§6): (256, 256) MLPs, Adam 3e-4,
Polyak λ 0.005, γ 0.99, batch 256, one update per env step, τ = 0.01, α = 0.9 for M-IQ; the paper
did not run DMC, so τ may need tuning here (§6, Fig. 4). DMC episodes end by a 1000-step time
limit, which every algorithm bootstraps through. --algo sac runs Tianshou's SAC (mujoco_sac.py
settings, fixed α 0.2) on the same task and budget.

    tianshou-qmle train dmc-iq                                 # M-IQ on cartpole-swingup, 50k steps
    tianshou-qmle train dmc-iq --algo sac
    tianshou-qmle train dmc-iq --task walker-walk --total-steps 500000 --algo iq
    tensorboard --logdir log
"""

from __future__ import annotations

import argparse
import sys

import gymnasium as gym

from tianshou_qmle.env import make_dmc_env, make_dmc_vector_envs
from tianshou_qmle.experiment.commands import run_command
from tianshou_qmle.experiment.iq_factory import add_agent_arguments, setup_from_args
from tianshou_qmle.experiment.runner import HelpFormatter, RunSetup, add_run_arguments

NAME = "dmc-iq"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    add_run_arguments(p, task="cartpole-swingup", total_steps=50_000, warmup=1000)
    add_agent_arguments(p)
    return p


def setup(args: argparse.Namespace) -> RunSetup:
    return setup_from_args(args, make_dmc_vector_envs)


def make_env(args: argparse.Namespace, render_mode: str | None = None) -> gym.Env:
    return make_dmc_env(args.task, seed=args.seed, render_mode=render_mode)


def main(argv: list[str] | None = None) -> dict:
    return run_command(sys.modules[__name__], argv)
