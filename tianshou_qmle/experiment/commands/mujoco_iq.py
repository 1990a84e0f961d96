"""Train IQ, M-IQ or Tianshou's SAC on a gymnasium MuJoCo task (Hopper-v5 by default).

IQ (Vieillard et al., "Implicitly Regularized RL with Implicit Q-Values") learns a multicategorical
policy π (n = 11 values per action dimension) and a value V with the single loss of Eq. 2; Q is
implicit, τ ln π + V. Defaults follow §6: (256, 256) MLPs, Adam 3e-4, Polyak λ 0.005, γ 0.99,
batch 256, one update per env step, α = 0.9 for M-IQ; two are ours (docs/iq.md explains both):
τ is adapted to hold π's entropy at half its maximum (--temperature-scheme fixed --temperature
0.01 is the paper's setting), and M-IQ clips its Munchausen term at -1 as M-DQN does
(--no-munchausen-clip follows Eq. 2). --algo sac runs Tianshou's SAC (mujoco_sac.py's settings,
α tuned towards entropy -dim(A) as the paper's baseline) on the same task and budget.

    tianshou-qmle train mujoco-iq                              # M-IQ on Hopper-v5, 1M env steps
    tianshou-qmle train mujoco-iq --algo iq --total-steps 200000
    tianshou-qmle train mujoco-iq --algo sac --task Walker2d-v5
    tianshou-qmle train mujoco-iq --policy-type gaussian       # the §6 Gaussian ablation
    tensorboard --logdir log
"""

from __future__ import annotations

import argparse
import sys

import gymnasium as gym

from tianshou_qmle.env import make_gym_env, make_gym_vector_envs
from tianshou_qmle.experiment.commands import run_command
from tianshou_qmle.experiment.iq_factory import add_agent_arguments, setup_from_args
from tianshou_qmle.experiment.runner import HelpFormatter, RunSetup, add_run_arguments

NAME = "mujoco-iq"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    add_run_arguments(p, task="Hopper-v5", total_steps=1_000_000, warmup=10_000)
    add_agent_arguments(p)
    return p


def setup(args: argparse.Namespace) -> RunSetup:
    return setup_from_args(args, make_gym_vector_envs)


def make_env(args: argparse.Namespace, render_mode: str | None = None) -> gym.Env:
    return make_gym_env(args.task, seed=args.seed, render_mode=render_mode)


def main(argv: list[str] | None = None) -> dict:
    return run_command(sys.modules[__name__], argv)
