"""Train QMLE on the 10,000-item recommender (SAVO §11.2) with Tianshou's Collector and trainer.

The action space is ``Discrete(10_000)``. QMLE never enumerates it: each step scores ``m_greedy``
candidate items, drawn uniformly, from a delta predictor in item-embedding space (snapped to the
nearest item) and from a categorical over items, plus the stored arg max prior in targets. Q reads
an item through its 45-D representation (30 category dimensions + 15 noise dimensions, SAVO
Table 3), so values generalise across similar items.

Budgets, learning rate and replay follow QMLE's Table 1 (m_target 100, m_greedy 1000, Adam 5e-4,
ε 0.1, γ 0.99, one update every 10 env steps, prioritized replay). A click is a noisy Bernoulli
outcome whose probability varies little between random items (std 0.12 around 0.27), so the critic
must generalise from mostly noise; the network defaults differ from the DMC one:

- ``--hidden 32``: narrow streams, as SAVO's authors chose a 64-32 critic for RecSim after a
  per-task search (SAVO Table 3). As good as 128-wide streams here and 2.4× faster.
- ``--bilinear-head``: Q gets a term ⟨W·f(s) + b, a⟩ linear in the item representation, the shape
  of the user model's click logit ⟨e_u, e_i⟩; one more dot product per candidate.

``--hidden 128 --no-bilinear-head`` is the paper's network. The four combinations, 3 seeds each,
are compared in ``benchmarks/README.md``. More updates per env step hurt, because the critic fits
the click noise: one update per 2 env steps reached 7.2–7.5 clicks after 10k steps, one per 5 or
10 steps 7.9–8.0 (seed 0, 32-wide streams with the head).

    tianshou-qmle train recsim-qmle                      # 20k env steps
    tianshou-qmle train recsim-qmle --item-features interest   # the 30-D embeddings the user scores

Reference returns per 20-step episode (``tests/test_recsim_env.py``): a uniformly random item
≈ 5.5 clicks, the myopically best item ≈ 14.
"""

from __future__ import annotations

import argparse
import sys

import gymnasium as gym
import torch

from tianshou_qmle.env.recsim import make_recsim_env, make_recsim_vector_envs
from tianshou_qmle.experiment.commands import run_command
from tianshou_qmle.experiment.qmle_factory import (
    add_qmle_arguments,
    build_qmle_from_args,
    check_qmle_arguments,
)
from tianshou_qmle.experiment.runner import (
    HelpFormatter,
    RunSetup,
    add_run_arguments,
    positive_int,
    prepare_run,
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    add_run_arguments(p, task="recsim", total_steps=20_000, warmup=1000)
    add_qmle_arguments(p)
    env = p.add_argument_group("recommender environment")
    env.add_argument("--num-items", type=positive_int, default=10_000, help="items in the catalogue (n)")
    env.add_argument("--item-features", choices=["representation", "interest"], default="representation",
                     help="what Q sees of an item: the 45-D action representation (paper) or the 30-D "
                          "embedding the user model scores")
    p.set_defaults(hidden=32, bilinear_head=True)
    return p


NAME = "recsim-qmle"


def setup(args: argparse.Namespace) -> RunSetup:
    check_qmle_arguments(args)
    if args.task != "recsim":
        raise SystemExit(f"--task must be 'recsim' for this command, got {args.task!r}")
    prepare_run(args)
    env = make_recsim_env(num_items=args.num_items)
    train_envs, test_envs = make_recsim_vector_envs(
        num_train_envs=args.num_train_envs, num_test_envs=args.num_test_envs, seed=args.seed,
        vector_env=args.vector_env, num_items=args.num_items,
    )
    features = env.action_representations if args.item_features == "representation" else env.item_embeddings
    algorithm, buffer, schedule = build_qmle_from_args(args, env, action_embeddings=torch.tensor(features))
    return RunSetup(algo_name="qmle", algorithm=algorithm, buffer=buffer, schedule=schedule,
                    train_envs=train_envs, test_envs=test_envs)


def make_env(args: argparse.Namespace, render_mode: str | None = None) -> gym.Env:
    if render_mode is not None:
        raise SystemExit("the recommender has no picture to render; watch it without --render/--video")
    return make_recsim_env(num_items=args.num_items, seed=args.seed)


def main(argv: list[str] | None = None) -> dict:
    return run_command(sys.modules[__name__], argv)
