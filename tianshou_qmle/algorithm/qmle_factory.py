"""Builders shared by the QMLE examples: Table 1 flags, the network/policy/algorithm/buffer from
them, the update schedule and the App. E.3 curriculum hook."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tianshou.algorithm.optim import AdamOptimizerFactory
from tianshou.data import ReplayBuffer

from tianshou_qmle.algorithm.qmle import QMLE, QMLEPolicy
from tianshou_qmle.data.buffer import make_replay_buffer
from tianshou_qmle.net.qmle_net import build_qmle_network
from tianshou_qmle.runner import Schedule


def parse_ratios(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--ratios expects comma-separated floats, got {text!r}") from err


def add_qmle_arguments(
    p: argparse.ArgumentParser, *, ratios: Sequence[float] | None = (0.9, 0.01, 0.09)
) -> None:
    """QMLE's flags with Table 1 defaults; ``ratios=None`` picks them per action space."""
    alg = p.add_argument_group("QMLE (Table 1 defaults)")
    alg.add_argument("--m-target", type=int, default=100, help="candidates per TD target")
    alg.add_argument("--m-greedy", type=int, default=1000, help="candidates per action")
    alg.add_argument("--ratios", type=parse_ratios, default=ratios,
                     help="ρ0 uniform, then one per predictor (Box: delta, categorical); sum to 1; "
                          "None: Table 1 for two predictors, (0.9, 0.1) for one")
    alg.add_argument("--delta-std", type=float, default=0.05,
                     help="σ of the delta predictor's perturbation samples")
    alg.add_argument("--num-bins", type=int, default=None,
                     help="bins per dimension of the categorical predictor; None: 3 (bang-off-bang) "
                          "for Box, the space's own bins for MultiDiscrete")
    alg.add_argument("--hidden", type=int, default=128, help="stream width (joint block is 2×)")
    alg.add_argument("--bilinear-head", action=argparse.BooleanOptionalAction, default=False,
                     help="add a state-weighted linear term in the action representation to Q "
                          "(not in the paper's network; helps item embeddings scored by an inner "
                          "product, as in the recommender)")
    alg.add_argument("--lr", type=float, default=5e-4, help="Adam step size for Q and predictors")
    alg.add_argument("--gamma", type=float, default=0.99, help="discount factor")
    alg.add_argument("--n-step", type=int, default=1, help="n-step return horizon (1 = paper)")
    alg.add_argument("--batch-size", type=int, default=256, help="replay batch size")
    alg.add_argument("--update-every", type=int, default=10,
                     help="env steps per gradient update (the replay period K)")
    alg.add_argument("--target-update-env-steps", type=int, default=2000,
                     help="N⁻: env steps between hard target copies")
    alg.add_argument("--buffer-size", type=int, default=1_000_000, help="replay capacity")
    alg.add_argument("--no-prior", action="store_true",
                     help="search TD targets without the stored arg max prior (Eq. 16/21 instead of "
                          "Eq. 20; with --ratios 1 0 0 this is App. D.2's ablation without amortisation)")
    alg.add_argument("--uniform-replay", action="store_true",
                     help="uniform replay (Algorithm 1) instead of prioritized (App. B)")
    alg.add_argument("--alpha", type=float, default=0.6, help="priority exponent")
    alg.add_argument("--beta", type=float, default=0.2, help="importance-sampling exponent")
    alg.add_argument("--eps", type=float, default=0.1, help="ε of ε-greedy exploration")
    alg.add_argument("--scoring-dtype", choices=["float32", "bfloat16"], default="float32",
                     help="candidate scoring precision; bfloat16 re-scores winners in float32")
    alg.add_argument("--compile-scoring", action="store_true",
                     help="torch.compile the candidate-scoring kernel (faster after a compile of "
                          "seconds; see benchmarks/README.md)")


def check_qmle_arguments(args: argparse.Namespace) -> None:
    if args.target_update_env_steps % args.update_every:
        raise SystemExit("--target-update-env-steps must be a multiple of --update-every")


def build_qmle_algorithm(
    args: argparse.Namespace,
    env: gym.Env,
    *,
    action_embeddings: np.ndarray | torch.Tensor | None = None,
    grid_bins: int | None = None,
    **network_kwargs: Any,
) -> QMLE:
    """The QMLE algorithm for ``env``'s spaces and the flags of :func:`add_qmle_arguments`."""
    model = build_qmle_network(
        obs_dim=int(np.prod(env.observation_space.shape)), action_space=env.action_space,
        action_embeddings=action_embeddings, grid_bins=grid_bins, hidden_width=args.hidden,
        delta_std=args.delta_std, num_bins=args.num_bins, device=args.device,
        bilinear_head=bool(getattr(args, "bilinear_head", False)), **network_kwargs,
    )
    # set before QMLE() copies the model, so that the target network compiles its scoring too
    model.critic.compile_scoring = bool(getattr(args, "compile_scoring", False))
    policy = QMLEPolicy(
        model=model, action_space=env.action_space, observation_space=env.observation_space,
        m_greedy=args.m_greedy, proposal_ratios=args.ratios, eps_training=args.eps,
        scoring_dtype=getattr(torch, args.scoring_dtype),
    )
    return QMLE(
        policy=policy, optim=AdamOptimizerFactory(lr=args.lr), gamma=args.gamma,
        n_step_return_horizon=args.n_step, m_target=args.m_target,
        target_update_freq=args.target_update_env_steps // args.update_every,
        use_stored_prior=not args.no_prior,
    )


def replay_buffer_from_args(args: argparse.Namespace) -> ReplayBuffer:
    """The arg max prior buffer of the flags: prioritized (App. B) unless ``--uniform-replay``."""
    return make_replay_buffer(
        size=args.buffer_size, num_envs=args.num_train_envs, prioritized=not args.uniform_replay,
        alpha=args.alpha, beta=args.beta, seed=args.seed,
    )


def schedule_from_args(args: argparse.Namespace) -> Schedule:
    """One update of ``--batch-size`` every ``--update-every`` env steps (Table 1: 10)."""
    return Schedule(
        env_steps_per_collect=args.update_every, updates_per_env_step=1.0 / args.update_every,
        batch_size=args.batch_size,
    )


def build_qmle_from_args(
    args: argparse.Namespace,
    env: gym.Env,
    *,
    action_embeddings: np.ndarray | torch.Tensor | None = None,
    grid_bins: int | None = None,
    **network_kwargs: Any,
) -> tuple[QMLE, ReplayBuffer, Schedule]:
    """The QMLE algorithm, its replay buffer and update schedule for ``env``'s spaces and the flags."""
    algorithm = build_qmle_algorithm(
        args, env, action_embeddings=action_embeddings, grid_bins=grid_bins, **network_kwargs
    )
    return algorithm, replay_buffer_from_args(args), schedule_from_args(args)


def curriculum_switch(
    policy: QMLEPolicy, switch_step: int | None, warmup: int
) -> Callable[[int, int], None] | None:
    """Tianshou training hook that lifts the action grid once ``switch_step`` env steps, warm-up
    included, are done (the trainer's own count starts after the warm-up)."""
    if switch_step is None:
        return None

    def lift_grid_when_due(epoch: int, trainer_env_step: int) -> None:
        env_step = warmup + trainer_env_step
        if env_step >= switch_step and getattr(policy.codec, "grid_bins", None) is not None:
            policy.set_grid_bins(None)
            print(f"curriculum: continuous actions from env step {env_step}")

    return lift_grid_when_due
