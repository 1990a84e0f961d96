"""Agent construction shared by ``examples/restricted_savo.py`` and ``examples/recsim_savo.py``.

Both scripts run SAVO-TD3 (or, on ``Box`` tasks, Tianshou's own TD3) through
:mod:`tianshou_qmle.experiment.runner`: shared run flags, warm-up, OffPolicyTrainer, TensorBoard, checkpoints,
``--summary-json``. Only the environments and the Table 3 column of defaults differ.

SAVO defaults follow Table 3 of the SAVO paper: Adam 3e-4 for actors, list encoder and critics,
γ 0.99, batch 256, k = 3 successive actors with a DeepSet list encoder, ε from 1 to 0.01 (500K
env steps for MuJoCo, 10M for RecSim), 256-256 actors and critics for MuJoCo (64-32-32-16 actors
and 64-32 critics for RecSim), a 500K (MuJoCo) or 1M (RecSim) buffer. From TD3 (Algorithm 1 is
SAVO-TD3): Polyak τ 0.005, actor updates every 2 critic updates, one update per env step. TD3
follows Tianshou's ``examples/mujoco/mujoco_td3.py`` (256-256 MLPs, Adam 3e-4, τ 0.005, Gaussian
exploration σ 0.1, target smoothing σ 0.2 clipped at 0.5, actor every 2 updates) in the normalised
action box, which is that script's setting on tasks with unit bounds.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from tianshou.algorithm import TD3
from tianshou.algorithm.algorithm_base import OffPolicyAlgorithm
from tianshou.algorithm.modelfree.ddpg import ContinuousDeterministicPolicy
from tianshou.algorithm.optim import AdamOptimizerFactory, OptimizerFactory
from tianshou.env import BaseVectorEnv
from tianshou.exploration import BaseNoise, GaussianNoise
from tianshou.utils.net.common import Net
from tianshou.utils.net.continuous import ContinuousActorDeterministic

from tianshou_qmle.algorithm.savo import SAVO, NoiseSchedule, SAVOPolicy
from tianshou_qmle.experiment.runner import (
    RunSetup,
    float_in,
    non_negative_float,
    plain_replay_setup,
    positive_float,
    positive_int,
    prepare_run,
    unit_interval,
)
from tianshou_qmle.exploration import EpisodicOUNoise
from tianshou_qmle.net.savo import SUMMARISERS, build_critic, build_savo_networks
from tianshou_qmle.optim import FusedAdamOptimizerFactory

ALGORITHMS = ("savo", "td3")
"""``--algo`` choices: SAVO-TD3, and Tianshou's TD3 (``Box`` action spaces only)."""

NOISE_KINDS = ("ou", "gaussian", "none")

EnvMaker = Callable[[argparse.Namespace], tuple[gym.Env, BaseVectorEnv, BaseVectorEnv]]
"""``(args) -> (env, train_envs, test_envs)``; ``env`` is one instance, for its spaces."""


@dataclass(frozen=True, kw_only=True)
class SAVODefaults:
    """One column of Table 3 (the flags' defaults)."""

    actor_hidden_sizes: tuple[int, ...]
    critic_hidden_sizes: tuple[int, ...]
    eps_decay_steps: int
    buffer_size: int


MUJOCO_DEFAULTS = SAVODefaults(
    actor_hidden_sizes=(256, 256), critic_hidden_sizes=(256, 256), eps_decay_steps=500_000,
    buffer_size=500_000,
)
"""Table 3, MuJoCo/Adroit column (restricted locomotion)."""

RECSIM_DEFAULTS = SAVODefaults(
    actor_hidden_sizes=(64, 32, 32, 16), critic_hidden_sizes=(64, 32), eps_decay_steps=10_000_000,
    buffer_size=1_000_000,
)
"""Table 3, RecSim column."""


def parse_hidden_sizes(text: str) -> tuple[int, ...]:
    """``"256,256"`` → ``(256, 256)``."""
    try:
        sizes = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from err
    if not sizes or any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"expected positive comma-separated integers, got {text!r}")
    return sizes


def add_agent_arguments(parser: argparse.ArgumentParser, *, defaults: SAVODefaults, with_td3: bool) -> None:
    """SAVO's flags (and TD3's, for ``Box`` tasks); the run flags come from ``add_run_arguments``."""
    shared = parser.add_argument_group("agent (shared by SAVO and TD3)")
    add = shared.add_argument
    td3_help = "; td3: Tianshou's TD3 (mujoco_td3.py settings)" if with_td3 else ""
    add("--algo", choices=ALGORITHMS if with_td3 else ("savo",), default="savo",
        help=f"savo: SAVO-TD3{td3_help}")
    add("--actor-hidden-sizes", type=parse_hidden_sizes, default=defaults.actor_hidden_sizes,
        help="hidden widths of μ and every νᵢ (Table 3 'Actor: MLP Layers'); TD3's actor")
    add("--critic-hidden-sizes", type=parse_hidden_sizes, default=defaults.critic_hidden_sizes,
        help="hidden widths of Q, Q₂, every Ψ̂ᵢ and Q̃ (Table 3 'Critic: MLP Layers'); TD3's critics")
    add("--actor-lr", type=positive_float, default=3e-4,
        help="Adam step size of the actors and their list encoder (Table 3)")
    add("--critic-lr", type=positive_float, default=3e-4, help="Adam step size of the critics (Table 3)")
    add("--gamma", type=unit_interval, default=0.99, help="discount factor γ (Table 3)")
    add("--tau", type=unit_interval, default=0.005, help="Polyak rate of the target networks (TD3)")
    add("--update-actor-freq", type=positive_int, default=2,
        help="critic updates per delayed actor and target update (TD3)")
    add("--n-step", type=positive_int, default=1, help="n-step return horizon (1 = Algorithm 1)")
    add("--batch-size", type=positive_int, default=256, help="replay batch size (Table 3)")
    add("--buffer-size", type=positive_int, default=defaults.buffer_size,
        help="replay capacity (Table 3); the same buffer type for both algorithms")
    add("--env-steps-per-collect", type=positive_int, default=1, help="env steps per collect step")
    add("--updates-per-step", type=positive_float, default=1.0, help="gradient updates per env step")

    savo = parser.add_argument_group("SAVO (Table 3 and §4.3 defaults; ignored by --algo td3)")
    add = savo.add_argument
    add("--list-length", type=positive_int, default=PAPER_LIST_LENGTH,
        help="actions in the list the maximizer picks from, μ's included: μ plus list-length − 1 "
             "successive actors (the paper's 3: μ, ν₁, ν₂ and three Q-evaluations, Fig. 9; 1 = one "
             "TD3-like actor; Fig. 11 goes to 10-15)")
    add("--summariser", choices=SUMMARISERS, default="deepset",
        help="list encoder of the earlier proposals (App. 13.3, Fig. 20); deepset-state-max is the "
             "authors' code's (with --summary-dim 16)")
    add("--summary-dim", type=positive_int, default=32, help="size of the list summary fed to FiLM")
    add("--summariser-hidden", type=positive_int, default=64, help="width inside the list encoder")
    add("--no-previous-actions", action="store_true",
        help="ablation 'SAVO − Previous Actions': no conditioning on a₍<ᵢ₎ (§6.1)")
    add("--no-surrogate-approximation", action="store_true",
        help="ablation 'SAVO − Approximation': νᵢ ascends Ψᵢ itself, no Ψ̂ᵢ (§6.1)")
    add("--surrogate-lr", type=positive_float, default=3e-4, help="Adam step size of the surrogates Ψ̂ᵢ")
    add("--target-smoothing", action="store_true",
        help="ablation 'SAVO + Action Smoothing': TD3's target policy smoothing (off in SAVO, §4.3)")
    add("--policy-noise", type=non_negative_float, default=0.2,
        help="σ of the target smoothing noise, normalised units (only with --target-smoothing)")
    add("--noise-clip", type=non_negative_float, default=0.5, help="clip of the target smoothing noise")
    add("--q-smoothing", choices=("auto", "on", "off"), default="auto",
        help="Q-smoothing critic for the actors' gradients (§14.6): auto = on for discrete tasks only")
    add("--proposal-noise", choices=NOISE_KINDS, default="ou",
        help="noise on every proposal before the arg max (Algorithm 1; OU was picked, Fig. 17): ou is "
             "one OU process per env, restarted every episode, ε scaling its increments")
    add("--proposal-noise-sigma", type=non_negative_float, default=0.2,
        help="σ of the proposal noise's increments, normalised units (Table 3: 0.2)")
    add("--ou-theta", type=float_in(0.0, 1.0, low_open=True), default=0.15,
        help="θ of the OU proposal noise (Table 3: 0.15)")
    add("--max-grad-norm", type=positive_float, default=1.0,
        help="clip every SAVO gradient norm to this (the paper does not say; the authors' code clips "
             "at 1.0)")
    add("--no-grad-clip", dest="max_grad_norm", action="store_const", const=None,
        help="no gradient clipping")
    add("--surrogate-critics", choices=("target", "online"), default="target",
        help="twin critics giving the surrogates' targets Ψᵢ: the target copies (the authors' code) "
             "or the online ones")
    add("--exploration-noise", type=non_negative_float, default=0.1,
        help="σ of the Gaussian noise on the chosen action (Algorithm 1; TD3's 0.1); 0 disables it")
    add("--eps-start", type=non_negative_float, default=1.0,
        help="ε factor on both noises at the start (Table 3)")
    add("--eps-end", type=non_negative_float, default=0.01, help="ε after the decay (Table 3)")
    add("--eps-decay-steps", type=positive_int, default=defaults.eps_decay_steps,
        help="env steps of the linear ε decay (Table 3 'Actor: ε decay steps')")

    if with_td3:
        td3 = parser.add_argument_group("TD3 baseline (Tianshou's mujoco_td3.py; only for --algo td3)")
        add = td3.add_argument
        add("--td3-exploration-noise", type=non_negative_float, default=0.1,
            help="σ of the Gaussian exploration noise, normalised units")
        add("--td3-policy-noise", type=non_negative_float, default=0.2,
            help="σ of the target smoothing noise")
        add("--td3-noise-clip", type=non_negative_float, default=0.5,
            help="clip of the target smoothing noise")


PAPER_LIST_LENGTH = 3
"""The paper's list length: μ and two successive actors (Fig. 9; §2's "three Q-evaluations")."""


def num_successive_actors(args: argparse.Namespace) -> int:
    """Successive actors ν₁… besides μ: ``--list-length`` − 1."""
    return int(args.list_length) - 1


def algorithm_name(args: argparse.Namespace) -> str:
    """The run's name in logs and the summary: ``td3``, ``savo``, or ``savo`` plus its ablations."""
    if args.algo == "td3":
        return "td3"
    parts = ["savo"]
    if args.list_length != PAPER_LIST_LENGTH:
        parts.append(f"L{args.list_length}")
    if args.summariser != "deepset":
        parts.append(args.summariser)
    if args.no_previous_actions:
        parts.append("noprev")
    if args.no_surrogate_approximation:
        parts.append("noapprox")
    if args.target_smoothing:
        parts.append("smoothing")
    if args.q_smoothing != "auto":
        parts.append(f"qsmooth{args.q_smoothing}")
    return "-".join(parts)


def make_noise(kind: str, sigma: float, *, theta: float = 0.15) -> BaseNoise | None:
    """Noise by flag: episodic OU (one process per env, restarted per episode, ε on its
    increments), Gaussian, or none."""
    if sigma < 0:
        raise SystemExit(f"noise σ must be ≥ 0, got {sigma}")
    if kind == "none" or sigma == 0:
        return None
    if kind == "ou":
        return EpisodicOUNoise(sigma=sigma, theta=theta)
    return GaussianNoise(sigma=sigma)


def resolve_q_smoothing(flag: str) -> bool | None:
    return {"auto": None, "on": True, "off": False}[flag]


def build_savo(
    args: argparse.Namespace, env: gym.Env, action_embeddings: np.ndarray | None = None,
    make_optim: Callable[[float], OptimizerFactory] = FusedAdamOptimizerFactory,
) -> SAVO:
    """SAVO-TD3 for ``env``'s spaces (``Box``, or ``Discrete`` with ``action_embeddings``);
    ``make_optim(lr)`` makes each optimizer factory (Adam, as Table 3; fused where the device has
    the kernel, :class:`~tianshou_qmle.optim.FusedAdamOptimizerFactory`)."""
    space = env.action_space
    if isinstance(space, gym.spaces.Discrete):
        if action_embeddings is None:
            raise ValueError(f"a Discrete task ({space}) needs action embeddings for SAVO")
        act_dim = int(np.asarray(action_embeddings).shape[1])
    else:
        act_dim = gym.spaces.flatdim(space)
    q_smoothing = resolve_q_smoothing(args.q_smoothing)
    discrete = isinstance(space, gym.spaces.Discrete)
    nets = build_savo_networks(
        obs_dim=gym.spaces.flatdim(env.observation_space), act_dim=act_dim,
        num_successive=num_successive_actors(args),
        actor_hidden_sizes=args.actor_hidden_sizes, critic_hidden_sizes=args.critic_hidden_sizes,
        summariser=args.summariser, summariser_hidden=args.summariser_hidden, summary_dim=args.summary_dim,
        condition_on_previous=not args.no_previous_actions,
        surrogates=not args.no_surrogate_approximation,
        q_smoothing=discrete if q_smoothing is None else q_smoothing, device=args.device,
    )
    policy = SAVOPolicy(
        actor=nets.actor, critic=nets.critic, action_space=space, observation_space=env.observation_space,
        action_embeddings=action_embeddings,
        proposal_noise=make_noise(args.proposal_noise, args.proposal_noise_sigma, theta=args.ou_theta),
        exploration_noise=make_noise("gaussian", args.exploration_noise),
        noise_schedule=NoiseSchedule(
            start=args.eps_start, end=args.eps_end, decay_steps=args.eps_decay_steps
        ),
    )
    critic_optim = make_optim(args.critic_lr)
    return SAVO(
        policy=policy, policy_optim=make_optim(args.actor_lr), critic_optim=critic_optim,
        critic2=nets.critic2, surrogates=nets.surrogates,
        surrogate_optim=make_optim(args.surrogate_lr),
        surrogate_approximation=not args.no_surrogate_approximation, q_smoothing=q_smoothing,
        q_smoother=nets.q_smoother, tau=args.tau, gamma=args.gamma, n_step_return_horizon=args.n_step,
        update_actor_freq=args.update_actor_freq, target_smoothing=args.target_smoothing,
        policy_noise=args.policy_noise, noise_clip=args.noise_clip, max_grad_norm=args.max_grad_norm,
        surrogate_critics=args.surrogate_critics,
    )


def build_td3(args: argparse.Namespace, env: gym.Env) -> TD3:
    """Tianshou's TD3 with its ``mujoco_td3.py`` settings, acting in the normalised box [-1, 1]^d."""
    if not isinstance(env.action_space, gym.spaces.Box):
        raise SystemExit(f"--algo td3 needs a Box action space, got {env.action_space}")
    obs_dim = gym.spaces.flatdim(env.observation_space)
    act_dim = gym.spaces.flatdim(env.action_space)
    actor = ContinuousActorDeterministic(
        preprocess_net=Net(state_shape=obs_dim, hidden_sizes=args.actor_hidden_sizes),
        action_shape=act_dim, max_action=1.0,
    ).to(args.device)
    critics = [
        build_critic(
            obs_dim=obs_dim, act_dim=act_dim, hidden_sizes=args.critic_hidden_sizes, device=args.device
        )
        for _ in range(2)
    ]
    policy = ContinuousDeterministicPolicy(
        actor=actor, exploration_noise=make_noise("gaussian", args.td3_exploration_noise),
        action_space=env.action_space, observation_space=env.observation_space,
    )
    return TD3(
        policy=policy, policy_optim=AdamOptimizerFactory(lr=args.actor_lr),
        critic=critics[0], critic_optim=AdamOptimizerFactory(lr=args.critic_lr),
        critic2=critics[1], critic2_optim=AdamOptimizerFactory(lr=args.critic_lr),
        tau=args.tau, gamma=args.gamma, policy_noise=args.td3_policy_noise,
        noise_clip=args.td3_noise_clip, update_actor_freq=args.update_actor_freq,
        n_step_return_horizon=args.n_step,
    )


def build_algorithm(
    args: argparse.Namespace, env: gym.Env, action_embeddings: np.ndarray | None = None
) -> OffPolicyAlgorithm:
    """The algorithm ``--algo`` names, for ``env``'s spaces."""
    if args.algo == "td3":
        return build_td3(args, env)
    return build_savo(args, env, action_embeddings)


def validate_args(args: argparse.Namespace) -> None:
    """Fail on bad flag values before any environment is built."""
    checks = [
        (args.env_steps_per_collect >= 1,
         f"--env-steps-per-collect must be ≥ 1, got {args.env_steps_per_collect}"),
        (round(args.updates_per_step * args.env_steps_per_collect) >= 1,
         "--updates-per-step × --env-steps-per-collect must round to ≥ 1 update"),
        (args.batch_size >= 1, f"--batch-size must be ≥ 1, got {args.batch_size}"),
        (args.buffer_size >= args.batch_size,
         f"--buffer-size must be ≥ --batch-size, got {args.buffer_size}"),
        (args.list_length >= 1, f"--list-length must be ≥ 1, got {args.list_length}"),
        (args.update_actor_freq >= 1, f"--update-actor-freq must be ≥ 1, got {args.update_actor_freq}"),
        (args.n_step >= 1, f"--n-step must be ≥ 1, got {args.n_step}"),
    ]
    for ok, message in checks:
        if not ok:
            raise SystemExit(message)


def setup_from_args(
    args: argparse.Namespace,
    make_envs: EnvMaker,
    *,
    action_embeddings_of: Callable[[gym.Env], np.ndarray] | None = None,
) -> RunSetup:
    """Validate, build envs, agent and buffer (see :class:`~tianshou_qmle.experiment.runner.RunSetup`).

    :param make_envs: builds ``(env, train_envs, test_envs)`` from the parsed flags.
    :param action_embeddings_of: for ``Discrete`` tasks, reads the ``[n, d]`` item representations
        from ``env``.
    """
    validate_args(args)
    prepare_run(args)
    env, train_envs, test_envs = make_envs(args)

    def build() -> OffPolicyAlgorithm:
        embeddings = action_embeddings_of(env) if action_embeddings_of is not None else None
        return build_algorithm(args, env, embeddings)

    return plain_replay_setup(
        args=args, algo_name=algorithm_name(args), build_algorithm=build,
        train_envs=train_envs, test_envs=test_envs,
    )


__all__ = [
    "ALGORITHMS",
    "MUJOCO_DEFAULTS",
    "PAPER_LIST_LENGTH",
    "RECSIM_DEFAULTS",
    "SAVODefaults",
    "add_agent_arguments",
    "algorithm_name",
    "build_algorithm",
    "build_savo",
    "build_td3",
    "make_noise",
    "num_successive_actors",
    "parse_hidden_sizes",
    "setup_from_args",
    "validate_args",
]
