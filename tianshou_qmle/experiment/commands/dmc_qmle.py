"""Train QMLE on a DeepMind Control task with Tianshou's own Collector, trainer and logger.

--preset efficient   the default; ours, for budgets of about 100k env steps: one update per 2
                     env steps, m_target 20, m_greedy 200, 3-step returns, target copies every 200
                     env steps, compiled scoring. It scored well above the paper's agent at 100k
                     env steps (benchmarks/README.md, the 100k tier; docs/qmle.md, the reasons).
--preset paper       the paper's agent, Table 1 of Tavakoli et al. (arXiv 2410.06317): m_target 100,
                     m_greedy 1000, ratios 0.9/0.01/0.09 (uniform/delta/factored categorical),
                     Adam 5e-4, one update per 10 env steps, batch 256, prioritized replay (α 0.6,
                     β 0.2), ε 0.1, γ 0.99, hard target copies every 2000 env steps.

Both: 1000 random warm-up steps, partial-episode bootstrapping on DMC's 1000-step limit, and
candidate scoring in bf16 where the CPU has native bf16 (--scoring-dtype float32 for the paper's
arithmetic). Any flag given overrides the preset.

    tianshou-qmle train dmc-qmle                       # cartpole-swingup, 50k env steps
    tianshou-qmle train dmc-qmle --task walker-walk --total-steps 200000
    tianshou-qmle train dmc-qmle --grid-bins 3 --continuous-from 20000   # App. E.3 curriculum
    tensorboard --logdir log
"""

from __future__ import annotations

import argparse
import sys

import gymnasium as gym

from tianshou_qmle.env import make_dmc_env, make_dmc_vector_envs
from tianshou_qmle.experiment.commands import run_command
from tianshou_qmle.experiment.qmle_factory import (
    build_qmle_from_args,
    check_qmle_arguments,
    curriculum_switch,
    qmle_parser,
)
from tianshou_qmle.experiment.runner import (
    HelpFormatter,
    RunSetup,
    add_run_arguments,
    int_at_least,
    positive_int,
    prepare_run,
)

NAME = "dmc-qmle"


def build_parser() -> argparse.ArgumentParser:
    p = qmle_parser(description=__doc__, formatter_class=HelpFormatter)
    add_run_arguments(p, task="cartpole-swingup", total_steps=50_000, warmup=1000)
    cur = p.add_argument_group("curriculum (App. E.3): a coarse grid first, then the continuous box")
    cur.add_argument("--grid-bins", type=int_at_least(2), default=None,
                     help="restrict actions to K values per dimension (3 = bang-off-bang); None: continuous")
    cur.add_argument("--continuous-from", type=positive_int, default=None,
                     help="env step at which --grid-bins is lifted; None keeps the grid for the whole run")
    return p


def setup(args: argparse.Namespace) -> RunSetup:
    check_qmle_arguments(args)
    if args.continuous_from is not None and args.grid_bins is None:
        raise SystemExit("--continuous-from needs --grid-bins (the grid to start from)")
    prepare_run(args)
    env, train_envs, test_envs = make_dmc_vector_envs(
        args.task, seed=args.seed, num_train_envs=args.num_train_envs,
        num_test_envs=args.num_test_envs, kind=args.vector_env,
    )
    algorithm, buffer, schedule = build_qmle_from_args(args, env, grid_bins=args.grid_bins)
    return RunSetup(
        algo_name="qmle", algorithm=algorithm, buffer=buffer, schedule=schedule,
        train_envs=train_envs, test_envs=test_envs,
        training_fn=curriculum_switch(algorithm.policy, args.continuous_from, args.warmup),
    )


def make_env(args: argparse.Namespace, render_mode: str | None = None) -> gym.Env:
    return make_dmc_env(args.task, seed=args.seed, render_mode=render_mode)


def main(argv: list[str] | None = None) -> dict:
    return run_command(sys.modules[__name__], argv)
