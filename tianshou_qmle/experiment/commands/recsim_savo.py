"""Train SAVO-TD3 on the RecSim-style recommender with 10,000 items (SAVO §5, §11.2).

Each step the agent recommends one item to a simulated user whose interest drifts with clicks.
Actors act in the 45-D item representation space (30 category dimensions + 15 distractors); a
1-NN lookup turns each proposal into a real item before Q scores it (§3.2.1, §4.3), and a
Q-smoothing critic gives the actors gradients across the gaps between items (§14.6).

Defaults: Table 3 (RecSim column) and §4.3: k = 3 successive actors, DeepSet list encoder, FiLM,
64-32-32-16 actors, 64-32 critics, Adam 3e-4, batch 256, 1M buffer, ε over 10M steps, OU proposal
noise, no target smoothing, Q-smoothing on; TD3's τ 0.005 and delayed actor updates every 2. The
paper's "1-Actor (TD3)" baseline is --list-length 1 (one actor through the same 1-NN path): Tianshou's
TD3 has no discrete-action path without an env wrapper, so there is no --algo td3 here.

    tianshou-qmle train recsim-savo                          # SAVO, 10,000 items
    tianshou-qmle train recsim-savo --list-length 1          # the 1-actor TD3 baseline of §6.1
    tianshou-qmle train recsim-savo --num-items 100000 --list-length 10
    tensorboard --logdir log
"""

from __future__ import annotations

import argparse
import sys

import gymnasium as gym
import numpy as np
from tianshou.env import BaseVectorEnv

from tianshou_qmle.env.recsim import (
    PAPER_EPISODE_LENGTH,
    PAPER_NUM_ITEMS,
    RecSimEnv,
    make_recsim_env,
    make_recsim_vector_envs,
)
from tianshou_qmle.experiment.commands import run_command
from tianshou_qmle.experiment.runner import (
    HelpFormatter,
    RunSetup,
    add_run_arguments,
    non_negative_int,
    positive_int,
)
from tianshou_qmle.experiment.savo_factory import RECSIM_DEFAULTS, add_agent_arguments, setup_from_args


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    add_run_arguments(p, task="recsim", total_steps=100_000, warmup=2_000)
    add_agent_arguments(p, defaults=RECSIM_DEFAULTS, with_td3=False)
    env = p.add_argument_group("recommender (SAVO §11.2)")
    env.add_argument("--num-items", type=positive_int, default=PAPER_NUM_ITEMS, help="catalogue size")
    env.add_argument("--episode-length", type=positive_int, default=PAPER_EPISODE_LENGTH,
                     help="steps per episode")
    env.add_argument("--catalogue-seed", type=non_negative_int, default=0, help="seed of the item catalogue")
    return p


def env_kwargs(args: argparse.Namespace) -> dict[str, int]:
    return {"num_items": args.num_items, "episode_length": args.episode_length,
            "catalogue_seed": args.catalogue_seed}


def make_envs(args: argparse.Namespace) -> tuple[gym.Env, BaseVectorEnv, BaseVectorEnv]:
    try:
        env = make_recsim_env(seed=args.seed, **env_kwargs(args))
    except (ValueError, TypeError) as err:
        raise SystemExit(str(err)) from err
    train_envs, test_envs = make_recsim_vector_envs(
        num_train_envs=args.num_train_envs, num_test_envs=args.num_test_envs, seed=args.seed,
        vector_env=args.vector_env, **env_kwargs(args),
    )
    return env, train_envs, test_envs


def item_representations(env: gym.Env) -> np.ndarray:
    """The paper's 45-D action representations (30 category dims + 15 distractors)."""
    assert isinstance(env, RecSimEnv)
    return np.asarray(env.action_representations)


NAME = "recsim-savo"


def setup(args: argparse.Namespace) -> RunSetup:
    return setup_from_args(args, make_envs, action_embeddings_of=item_representations)


def make_env(args: argparse.Namespace, render_mode: str | None = None) -> gym.Env:
    if render_mode is not None:
        raise SystemExit("the recommender has no picture to render; watch it without --render/--video")
    return make_recsim_env(seed=args.seed, **env_kwargs(args))


def main(argv: list[str] | None = None) -> dict:
    return run_command(sys.modules[__name__], argv)
