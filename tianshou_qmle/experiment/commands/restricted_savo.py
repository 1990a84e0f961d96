"""Train SAVO-TD3, or Tianshou's TD3, on a restricted MuJoCo task (SAVO §5, §11.3.1).

Valid actions form a union of hyperspheres in the normalised action box; invalid ones are replaced
(by −1 for the pendulums, 0 for Hopper and Walker2d), which leaves the Q-landscape with many local
optima where a single gradient-ascent actor gets stuck (SAVO Fig. 1, 3). SAVO proposes a list of
actions from a base actor μ and successive actors trained on surrogates that cut away the landscape
below earlier proposals, and executes the one Q values most.

Defaults: Table 3 (MuJoCo column) and §4.3 of the SAVO paper: list length 3 (μ and two successive
actors), DeepSet list encoder, FiLM, approximate surrogates, no target policy smoothing, OU proposal
noise (θ 0.15, σ 0.2, restarted every episode), 256-256 MLPs, Adam 3e-4, batch 256, 500K buffer;
TD3's τ 0.005, delayed actor updates every 2 and one update per env step. From the authors' code,
where the paper is silent: gradient clipping at 1.0 and surrogate targets from the target twins.
Tasks use the paper's restricted layout (33·d spheres; --layout compact for the earlier one).
--algo td3 runs Tianshou's TD3 (examples/mujoco/mujoco_td3.py settings) on the same task, buffer
and budget. Tasks: InvertedPendulum (default), InvertedDoublePendulum, Hopper, Walker2d.

    tianshou-qmle train restricted-savo                                # SAVO, restricted InvertedPendulum
    tianshou-qmle train restricted-savo --algo td3
    tianshou-qmle train restricted-savo --task Hopper --total-steps 300000
    tianshou-qmle train restricted-savo --list-length 10 --summariser lstm
    tianshou-qmle train restricted-savo --no-surrogate-approximation   # ablation "SAVO − Approximation"
    tensorboard --logdir log
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

import gymnasium as gym
from tianshou.env import BaseVectorEnv

from tianshou_qmle.env.restricted import (
    DEFAULT_LAYOUT,
    SPHERE_LAYOUTS,
    make_restricted_env,
    make_restricted_vector_envs,
)
from tianshou_qmle.experiment.commands import run_command
from tianshou_qmle.experiment.runner import (
    HelpFormatter,
    RunSetup,
    add_run_arguments,
    float_in,
    non_negative_int,
    positive_float,
    positive_int,
)
from tianshou_qmle.experiment.savo_factory import MUJOCO_DEFAULTS, add_agent_arguments, setup_from_args


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    add_run_arguments(p, task="InvertedPendulum", total_steps=100_000, warmup=10_000)
    add_agent_arguments(p, defaults=MUJOCO_DEFAULTS, with_td3=True)
    env = p.add_argument_group("restriction (None keeps the layout's spheres)")
    env.add_argument("--layout", choices=SPHERE_LAYOUTS, default=DEFAULT_LAYOUT,
                     help="paper: 33·d spheres from seed 123 as in the paper's experiments; compact: "
                          "this package's earlier layout (few large spheres, same valid share)")
    env.add_argument("--num-spheres", type=positive_int, default=None, help="number of valid hyperspheres")
    env.add_argument("--radius", type=positive_float, default=None,
                     help="sphere radius, normalised action units")
    env.add_argument("--sphere-seed", type=non_negative_int, default=None, help="seed of the sphere centres")
    env.add_argument("--invalid-penalty", type=float_in(0.0, math.inf), default=0.0,
                     help="reward subtracted for an invalid action (0: the paper; 10: the authors' code)")
    return p


def restriction_overrides(args: argparse.Namespace) -> dict[str, Any]:
    candidates = {"num_spheres": args.num_spheres, "radius": args.radius, "sphere_seed": args.sphere_seed}
    return {**{name: value for name, value in candidates.items() if value is not None},
            "layout": args.layout, "invalid_penalty": args.invalid_penalty}


def make_envs(args: argparse.Namespace) -> tuple[gym.Env, BaseVectorEnv, BaseVectorEnv]:
    overrides = restriction_overrides(args)
    try:
        env = make_restricted_env(args.task, seed=args.seed, **overrides)
    except (ValueError, TypeError) as err:
        raise SystemExit(str(err)) from err
    train_envs, test_envs = make_restricted_vector_envs(
        args.task, num_train_envs=args.num_train_envs, num_test_envs=args.num_test_envs, seed=args.seed,
        vector_env=args.vector_env, **overrides,
    )
    return env, train_envs, test_envs


NAME = "restricted-savo"


def setup(args: argparse.Namespace) -> RunSetup:
    return setup_from_args(args, make_envs)


def make_env(args: argparse.Namespace, render_mode: str | None = None) -> gym.Env:
    return make_restricted_env(args.task, seed=args.seed, render_mode=render_mode,
                               **restriction_overrides(args))


def main(argv: list[str] | None = None) -> dict:
    return run_command(sys.modules[__name__], argv)
