"""Builders shared by the QMLE examples: Table 1 flags, the network/policy/algorithm/buffer from
them, the update schedule and the App. E.3 curriculum hook."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any, cast

import gymnasium as gym
import numpy as np
import torch
from tianshou.algorithm.optim import OptimizerFactory
from tianshou.data import ReplayBuffer

from tianshou_qmle.algorithm.qmle import QMLE, QMLEPolicy
from tianshou_qmle.data.buffer import make_replay_buffer
from tianshou_qmle.experiment.presets import (
    DEFAULT_QMLE_PRESET,
    QMLE_PRESETS,
    TABLE1_VALUES,
    PresetArgumentParser,
    qmle_preset,
)
from tianshou_qmle.experiment.runner import (
    Schedule,
    int_at_least,
    non_negative_float,
    positive_float,
    positive_int,
    unit_interval,
)
from tianshou_qmle.net.qmle_net import build_qmle_network
from tianshou_qmle.optim import FusedAdamOptimizerFactory

SCORING_DTYPES: dict[str, torch.dtype | str] = {
    "auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16,
}
"""``--scoring-dtype`` choices → ``QMLEPolicy(scoring_dtype=...)``."""


def parse_ratios(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--ratios expects comma-separated floats, got {text!r}") from err


def add_qmle_arguments(
    p: argparse.ArgumentParser, *, ratios: Sequence[float] | None = TABLE1_VALUES["ratios"]
) -> None:
    """QMLE's flags with Table 1 defaults (:data:`~tianshou_qmle.experiment.presets.TABLE1_VALUES`);
    ``ratios=None`` picks them per action space. A :class:`~tianshou_qmle.experiment.presets.
    PresetArgumentParser` replaces these defaults by its preset's."""
    t1 = TABLE1_VALUES
    alg = p.add_argument_group("QMLE (defaults: Table 1, or the --preset)")
    alg.add_argument("--m-target", type=positive_int, default=t1["m_target"],
                     help="fresh candidates per TD target (the stored prior is scored on top)")
    alg.add_argument("--m-greedy", type=positive_int, default=t1["m_greedy"], help="candidates per action")
    alg.add_argument("--ratios", type=parse_ratios, default=ratios,
                     help="ρ0 uniform, then one per predictor (Box: delta, categorical); sum to 1; "
                          "None: Table 1 for two predictors, (0.9, 0.1) for one")
    alg.add_argument("--uniform-grid-share", type=unit_interval, default=t1["uniform_grid_share"],
                     help="share of the uniform samples drawn from the bang-off-bang grid {-1,0,1}^d "
                          "(continuous Box only; 0: the paper, 0.5: the authors' code)")
    alg.add_argument("--delta-std", type=positive_float, default=t1["delta_std"],
                     help="σ of the delta predictor's perturbation samples")
    alg.add_argument("--num-bins", type=int_at_least(2), default=None,
                     help="bins per dimension of the categorical predictor; None: 3 (bang-off-bang) "
                          "for Box, the space's own bins for MultiDiscrete")
    alg.add_argument("--hidden", type=positive_int, default=t1["hidden"],
                     help="stream width (joint block is 2×)")
    alg.add_argument("--bilinear-head", action=argparse.BooleanOptionalAction, default=False,
                     help="add a state-weighted linear term in the action representation to Q "
                          "(not in the paper's network; helps item embeddings scored by an inner "
                          "product, as in the recommender)")
    alg.add_argument("--lr", type=positive_float, default=t1["lr"],
                     help="Adam step size for Q and predictors")
    alg.add_argument("--gamma", type=unit_interval, default=t1["gamma"], help="discount factor")
    alg.add_argument("--n-step", type=positive_int, default=t1["n_step"],
                     help="n-step return horizon (1 = paper)")
    alg.add_argument("--batch-size", type=positive_int, default=t1["batch_size"], help="replay batch size")
    alg.add_argument("--update-every", type=positive_int, default=t1["update_every"],
                     help="env steps per gradient update (the replay period K)")
    alg.add_argument("--target-update-env-steps", type=positive_int, default=t1["target_update_env_steps"],
                     help="N⁻: env steps between hard target copies")
    alg.add_argument("--buffer-size", type=positive_int, default=t1["buffer_size"],
                     help="replay capacity (allocated at the first transition: 10⁶ dog-walk "
                          "transitions take about 3.3 GB; see --ignore-obs-next)")
    alg.add_argument("--ignore-obs-next", action="store_true",
                     help="store each observation once (the next one is read from the following slot): "
                          "nearly halves the buffer's memory")
    alg.add_argument("--no-prior", action="store_true",
                     help="search TD targets without the stored arg max prior (Eq. 16/21 instead of "
                          "Eq. 20; with --ratios 1 0 0 this is App. D.2's ablation without amortisation)")
    alg.add_argument("--uniform-replay", action="store_true", default=t1["uniform_replay"],
                     help="uniform replay (Algorithm 1) instead of prioritized (App. B)")
    alg.add_argument("--alpha", type=non_negative_float, default=t1["alpha"], help="priority exponent")
    alg.add_argument("--beta", type=unit_interval, default=t1["beta"], help="importance-sampling exponent")
    alg.add_argument("--eps", type=unit_interval, default=t1["eps"], help="ε of ε-greedy exploration")
    alg.add_argument("--scoring-dtype", choices=list(SCORING_DTYPES), default=t1["scoring_dtype"],
                     help="candidate scoring precision; auto: bfloat16 where the device has native "
                          "bf16, else float32; bfloat16 re-scores winners in float32")
    alg.add_argument("--compile-scoring", action=argparse.BooleanOptionalAction,
                     default=t1["compile_scoring"],
                     help="torch.compile the candidate-scoring kernel (faster after a compile of "
                          "seconds; see benchmarks/README.md); --no-compile-scoring scores eagerly "
                          "(the same values within float rounding)")


def check_qmle_arguments(args: argparse.Namespace) -> None:
    """Flag combinations no single flag's type can check."""
    if args.target_update_env_steps % args.update_every:
        raise SystemExit(
            f"--target-update-env-steps ({args.target_update_env_steps}) must be a multiple of "
            f"--update-every ({args.update_every}): targets are copied after whole updates"
        )


def build_qmle_algorithm(
    args: argparse.Namespace,
    env: gym.Env,
    *,
    action_embeddings: np.ndarray | torch.Tensor | None = None,
    grid_bins: int | None = None,
    make_optim: Callable[[float], OptimizerFactory] = FusedAdamOptimizerFactory,
    **network_kwargs: Any,
) -> QMLE:
    """The QMLE algorithm for ``env``'s spaces and the flags of :func:`add_qmle_arguments`;
    ``make_optim(lr)`` makes the optimizer factory (Adam, as Table 1; fused where the device has
    the kernel, :class:`~tianshou_qmle.optim.FusedAdamOptimizerFactory`)."""
    model = build_qmle_network(
        obs_dim=int(np.prod(cast(tuple[int, ...], env.observation_space.shape))),
        action_space=env.action_space,
        action_embeddings=action_embeddings, grid_bins=grid_bins, hidden_width=args.hidden,
        delta_std=args.delta_std, num_bins=args.num_bins, device=args.device,
        bilinear_head=bool(getattr(args, "bilinear_head", False)), **network_kwargs,
    )
    # set before QMLE() copies the model, so that the target network compiles its scoring too
    model.critic.compile_scoring = bool(getattr(args, "compile_scoring", False))
    policy = QMLEPolicy(
        model=model, action_space=env.action_space, observation_space=env.observation_space,
        m_greedy=args.m_greedy, proposal_ratios=args.ratios, eps_training=args.eps,
        scoring_dtype=SCORING_DTYPES[args.scoring_dtype],  # type: ignore[arg-type]
        uniform_grid_share=getattr(args, "uniform_grid_share", 0.0),
    )
    return QMLE(
        policy=policy, optim=make_optim(args.lr), gamma=args.gamma,
        n_step_return_horizon=args.n_step, m_target=args.m_target,
        target_update_freq=args.target_update_env_steps // args.update_every,
        use_stored_prior=not args.no_prior,
    )


def replay_buffer_from_args(args: argparse.Namespace, action_space: gym.Space | None = None) -> ReplayBuffer:
    """The arg max prior buffer of the flags: prioritized (App. B) unless ``--uniform-replay``;
    with ``action_space``, it refuses actions outside QMLE's convention for that space."""
    return make_replay_buffer(
        size=args.buffer_size, num_envs=args.num_train_envs, prioritized=not args.uniform_replay,
        alpha=args.alpha, beta=args.beta, seed=args.seed, action_space=action_space,
        ignore_obs_next=bool(getattr(args, "ignore_obs_next", False)),
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
    return algorithm, replay_buffer_from_args(args, env.action_space), schedule_from_args(args)


def qmle_parser(**kwargs: Any) -> PresetArgumentParser:
    """A parser with ``--preset`` and QMLE's flags, defaulting to :data:`DEFAULT_QMLE_PRESET`."""
    parser = PresetArgumentParser(presets=QMLE_PRESETS, default_preset=DEFAULT_QMLE_PRESET, **kwargs)
    add_qmle_arguments(parser)
    return parser


def qmle_config(
    preset: str = DEFAULT_QMLE_PRESET, *, seed: int = 0, device: str = "cpu", num_train_envs: int = 1,
    **overrides: Any,
) -> argparse.Namespace:
    """A preset's QMLE settings as the attributes :func:`build_qmle_from_args` reads.

    :param preset: ``"paper"`` (Table 1) or ``"efficient"`` (ours, for ~100k env steps); see
        :mod:`tianshou_qmle.experiment.presets`.
    :param overrides: flag attributes to change, e.g. ``m_target=50`` or ``update_every=1``.
    :raises ValueError: for an unknown preset or an override that is not a QMLE flag.
    """
    qmle_preset(preset)
    args = qmle_parser().parse_args(["--preset", preset])
    unknown = sorted(set(overrides) - set(vars(args)))
    if unknown:
        raise ValueError(
            f"no QMLE setting named {', '.join(unknown)}; known: {', '.join(sorted(vars(args)))}"
        )
    run = {"seed": seed, "device": device, "num_train_envs": num_train_envs}
    for name, value in {**overrides, **run}.items():
        setattr(args, name, value)
    check_qmle_arguments(args)
    return args


def build_qmle_agent(
    env: gym.Env, preset: str = DEFAULT_QMLE_PRESET, *, seed: int = 0, device: str = "cpu",
    num_train_envs: int = 1, **overrides: Any,
) -> tuple[QMLE, ReplayBuffer, Schedule]:
    """QMLE for ``env`` from a preset: the algorithm, its replay buffer and its update schedule.

    >>> algorithm, buffer, schedule = build_qmle_agent(env, "efficient", seed=1)  # doctest: +SKIP

    Hand the three to Tianshou: ``Collector(algorithm, train_envs, buffer, exploration_noise=True)``
    and ``OffPolicyTrainerParams(collection_step_num_env_steps=schedule.env_steps_per_collect,
    update_step_num_gradient_steps_per_sample=schedule.updates_per_env_step,
    batch_size=schedule.batch_size, ...)``.
    """
    args = qmle_config(preset, seed=seed, device=device, num_train_envs=num_train_envs, **overrides)
    return build_qmle_from_args(args, env)


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
