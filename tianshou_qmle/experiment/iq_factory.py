"""Agent and environment construction shared by ``examples/mujoco_iq.py`` and ``examples/dmc_iq.py``.

Both scripts run IQ (α = 0), M-IQ (α > 0) or Tianshou's own SAC on the same task, through
:mod:`tianshou_qmle.experiment.runner` (shared run flags, warm-up, OffPolicyTrainer, TensorBoard, checkpoints,
``--summary-json``). Only the default task and the environment maker differ between them.

IQ defaults follow §6 of Vieillard et al.: policy and value MLPs (256, 256) as SAC, Adam 3e-4,
Polyak λ = 0.005, γ = 0.99, one update per environment step, batch 256, n = 11 bins per
dimension, α = 0.9 for M-IQ. Two defaults are ours: τ is 0.1 × a running mean of |r|, so it
follows the task's reward scale (``--temperature-scheme fixed --temperature 0.01`` is the paper's
setting; ``--temperature-scheme entropy`` holds π's entropy at a target instead), and M-IQ clips its
Munchausen term at -1 (``--no-munchausen-clip`` is Eq. 2 as written). SAC follows
Tianshou's ``examples/mujoco/mujoco_sac.py`` (256-256 MLPs, Polyak 0.005, γ 0.99, batch 256, one
update per env step) with its entropy coefficient tuned towards -dim(A) (``--auto-alpha`` there;
``--no-sac-auto-alpha`` fixes it at 0.2) and learning rates of 3e-4 for actor and critics
(Haarnoja et al.'s SAC, the paper's baseline, and IQ's step size), where that script uses 1e-3;
pass ``--sac-actor-lr 1e-3 --sac-critic-lr 1e-3`` to match it exactly.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

import gymnasium as gym
from tianshou.algorithm import SAC
from tianshou.algorithm.algorithm_base import OffPolicyAlgorithm
from tianshou.algorithm.modelfree.sac import AutoAlpha, SACPolicy
from tianshou.algorithm.optim import AdamOptimizerFactory, OptimizerFactory
from tianshou.env import BaseVectorEnv
from tianshou.utils.net.common import Net
from tianshou.utils.net.continuous import ContinuousActorProbabilistic, ContinuousCritic

from tianshou_qmle.algorithm.iq import (
    IQ,
    PAPER_TEMPERATURE,
    EntropyTargetTemperature,
    FixedTemperature,
    IQPolicy,
    RewardScaledTemperature,
    Temperature,
    multicategorical_target_entropy,
)
from tianshou_qmle.experiment.runner import (
    RunSetup,
    float_in,
    int_at_least,
    plain_replay_setup,
    positive_float,
    positive_int,
    prepare_run,
    unit_interval,
)
from tianshou_qmle.net.iq import POLICY_TYPES, build_iq_network
from tianshou_qmle.optim import FusedAdamOptimizerFactory

ALGORITHMS = ("iq", "miq", "sac")
"""``--algo`` choices: IQ (α = 0), M-IQ (α > 0) and Tianshou's SAC."""

MIQ_DEFAULT_ALPHA = 0.9
"""α of M-IQ in §6."""

TEMPERATURE_SCHEMES = ("fixed", "entropy", "reward")
"""``--temperature-scheme`` choices (see :func:`build_temperature`)."""

DEFAULT_TEMPERATURE_SCHEME = "reward"
"""Ours, chosen by the iq100k tier (``benchmarks/README.md``; seed 0, final return at 100k env
steps): τ = 0.1 × the running mean |r| scored 961 on Hopper-v5 (entropy scheme 552, SAC 950), 158
on Walker2d-v5 (entropy scheme −7, SAC 624) and 9352 on InvertedDoublePendulum-v5, where the entropy
scheme's τ ran away on Walker2d (to 643) and inflated V. ``fixed`` with τ = 0.01 is the paper's."""

DEFAULT_TARGET_ENTROPY_SHARE = 0.5
"""Half of the multicategorical policy's maximum entropy d·ln n."""

MUNCHAUSEN_CLIP = -1.0
"""l₀ of M-DQN (Vieillard et al., 2020): the Munchausen term is clipped to α·[l₀, 0]."""

EnvMaker = Callable[..., tuple[gym.Env, BaseVectorEnv, BaseVectorEnv]]
"""``(task, *, seed, num_train_envs, num_test_envs, kind) -> (env, train_envs, test_envs)``."""


def parse_hidden_sizes(text: str) -> tuple[int, ...]:
    """``"256,256"`` → ``(256, 256)``; an empty string gives no hidden layer."""
    try:
        sizes = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"--hidden-sizes expects comma-separated integers, got {text!r}"
        ) from err
    if any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"--hidden-sizes must be positive, got {text!r}")
    return sizes


def add_agent_arguments(parser: argparse.ArgumentParser) -> None:
    """The agent flags both IQ examples share (the run flags come from ``add_run_arguments``)."""
    agent = parser.add_argument_group("agent (IQ, M-IQ and SAC)")
    agent.add_argument("--algo", choices=ALGORITHMS, default="miq",
                       help="iq: IQ (α = 0); miq: M-IQ (α = --alpha); sac: Tianshou's SAC baseline")
    agent.add_argument("--hidden-sizes", type=parse_hidden_sizes, default=(256, 256),
                       help="hidden widths of every MLP (IQ policy and value; SAC actor and critics)")
    agent.add_argument("--gamma", type=unit_interval, default=0.99, help="discount factor γ")
    agent.add_argument("--polyak", type=float_in(0.0, 1.0, low_open=True), default=0.005,
                       help="λ: Polyak rate of the target networks (SAC's tau)")
    agent.add_argument("--batch-size", type=positive_int, default=256, help="replay batch size")
    agent.add_argument("--buffer-size", type=positive_int, default=1_000_000, help="replay capacity")
    agent.add_argument("--env-steps-per-collect", type=positive_int, default=1,
                       help="env steps per collect step of the trainer")
    agent.add_argument("--updates-per-step", type=positive_float, default=1.0,
                       help="gradient updates per env step")

    iq = parser.add_argument_group(
        "IQ / M-IQ (Vieillard et al. §6 defaults unless said; ignored by --algo sac)"
    )
    iq.add_argument("--temperature-scheme", choices=TEMPERATURE_SCHEMES,
                    default=DEFAULT_TEMPERATURE_SCHEME,
                    help="how τ is set: reward (ours, the default: τ = --temperature-relative × running "
                         "mean |r|), fixed (--temperature; 0.01 is the paper's setting), entropy (ours: τ "
                         "adapted to hold π's entropy at --target-entropy-share of its maximum, as SAC's α)")
    iq.add_argument("--temperature", type=positive_float, default=PAPER_TEMPERATURE,
                    help="τ of the fixed scheme (the paper's 0.01 on MuJoCo)")
    iq.add_argument("--initial-temperature", type=positive_float, default=1.0,
                    help="entropy scheme: τ at the start")
    iq.add_argument("--target-entropy-share", type=float_in(0.0, 1.0, low_open=True),
                    default=DEFAULT_TARGET_ENTROPY_SHARE,
                    help="entropy scheme: target entropy as a share of the multicategorical maximum d·ln n")
    iq.add_argument("--target-entropy", type=float, default=None,
                    help="entropy scheme: target entropy in nats (overrides the share; None: the share, "
                         "or -d for the Gaussian policy, as SAC)")
    iq.add_argument("--temperature-relative", type=positive_float, default=0.1,
                    help="reward scheme: τ per unit of the running mean |r|")
    iq.add_argument("--alpha", type=float, default=None,
                    help=f"α of M-IQ, in (0, 1); None means {MIQ_DEFAULT_ALPHA} for --algo miq. "
                         f"--algo iq is α = 0 and rejects this flag")
    iq.add_argument("--num-bins", type=int_at_least(2), default=11,
                    help="n: values per action dimension of the multicategorical policy (§4)")
    iq.add_argument("--policy-type", choices=POLICY_TYPES, default="multicategorical",
                    help="multicategorical (§4) or gaussian (the §6 ablation)")
    iq.add_argument("--probability-floor", type=float_in(0.0, 0.99), default=0.0,
                    help="ours, not in the paper: ε mixes each dimension's softmax with the uniform, "
                         "(1 − ε)·softmax + ε/n, so ln π ≥ ln(ε/n) per dimension and sampling explores "
                         "uniformly with probability ε; 0 is the paper's policy (multicategorical only)")
    iq.add_argument("--sample-with-floor", action=argparse.BooleanOptionalAction, default=True,
                    help="act by sampling the floored policy; --no-sample-with-floor samples the softmax "
                         "alone, so the floor bounds ln π in the loss without exploring")
    iq.add_argument("--lr", type=positive_float, default=3e-4, help="Adam step size of the single IQ loss")
    iq.add_argument("--munchausen-clip", type=float, default=MUNCHAUSEN_CLIP,
                    help="l₀ < 0 clips τ ln π̄ to [l₀, 0] as M-DQN does (a departure from Eq. 2, which "
                         "lets replayed actions under a peaked π̄ add terms of -500)")
    iq.add_argument("--no-munchausen-clip", dest="munchausen_clip", action="store_const", const=None,
                    help="Eq. 2 as written: no clip on the Munchausen term")
    iq.add_argument("--twin", action=argparse.BooleanOptionalAction, default=False,
                    help="ours, not in the paper: train a second (π, V) pair and bootstrap both from the "
                         "smaller target value, as TD3's and SAC's twin critics (about 2× the update cost; "
                         "no gain measured on Walker2d-v5, docs/iq.md)")
    iq.add_argument("--max-grad-norm", type=positive_float, default=None,
                    help="clip the IQ gradient norm; None (the paper) does not clip")
    iq.add_argument("--stochastic-eval", action="store_true",
                    help="sample π at evaluation instead of taking its per-dimension mode")

    sac = parser.add_argument_group("SAC baseline (Tianshou's mujoco_sac.py; only for --algo sac)")
    sac.add_argument("--sac-actor-lr", type=positive_float, default=3e-4,
                     help="actor Adam step size (mujoco_sac.py uses 1e-3)")
    sac.add_argument("--sac-critic-lr", type=positive_float, default=3e-4,
                     help="critics' Adam step size (mujoco_sac.py uses 1e-3)")
    sac.add_argument("--sac-auto-alpha", action=argparse.BooleanOptionalAction, default=True,
                     help="tune SAC's entropy coefficient towards entropy -dim(A) (Adam 3e-4), as the IQ "
                          "paper's SAC baseline; --no-sac-auto-alpha fixes it at --sac-alpha")
    sac.add_argument("--sac-alpha", type=positive_float, default=0.2,
                     help="entropy coefficient when not tuned (mujoco_sac.py's 0.2); the start otherwise")


def resolve_alpha(args: argparse.Namespace) -> float:
    """α for ``--algo iq`` (0) or ``miq`` (``--alpha``, 0.9 by default)."""
    if args.algo == "iq":
        if args.alpha not in (None, 0.0):
            raise SystemExit(f"--algo iq is α = 0; use --algo miq for --alpha {args.alpha}")
        return 0.0
    alpha = MIQ_DEFAULT_ALPHA if args.alpha is None else args.alpha
    if not 0.0 < alpha < 1.0:
        raise SystemExit(f"--algo miq needs 0 < --alpha < 1, got {alpha}")
    return alpha


def algorithm_name(args: argparse.Namespace) -> str:
    """The run's name in logs and the summary: iq, miq or sac (+ ``-gaussian`` for the ablation)."""
    if args.algo != "sac" and args.policy_type == "gaussian":
        return f"{args.algo}-gaussian"
    return str(args.algo)


def build_temperature(args: argparse.Namespace, *, act_dim: int, num_bins: int) -> Temperature:
    """τ for ``--temperature-scheme``: fixed, entropy-targeting or reward-scaled."""
    if args.temperature_scheme == "fixed":
        return FixedTemperature(args.temperature)
    if args.temperature_scheme == "reward":
        return RewardScaledTemperature(relative=args.temperature_relative)
    target = args.target_entropy
    if target is None:
        if args.policy_type == "gaussian":
            target = -float(act_dim)  # SAC's choice for a Gaussian's differential entropy
        else:
            target = multicategorical_target_entropy(act_dim=act_dim, num_bins=num_bins,
                                                     share=args.target_entropy_share)
    return EntropyTargetTemperature(target_entropy=target, initial=args.initial_temperature)


def build_iq(
    args: argparse.Namespace,
    env: gym.Env,
    make_optim: Callable[[float], OptimizerFactory] = FusedAdamOptimizerFactory,
) -> IQ:
    """IQ or M-IQ for ``env``'s spaces (``Box`` or ``Discrete`` actions); ``make_optim(lr)`` makes
    the optimizer factory of the single loss (Adam, as §6; fused where the device has the kernel,
    :class:`~tianshou_qmle.optim.FusedAdamOptimizerFactory`)."""
    obs_dim = gym.spaces.flatdim(env.observation_space)
    space = env.action_space
    if isinstance(space, gym.spaces.Discrete):
        act_dim, num_bins = 1, int(space.n)
    else:
        act_dim, num_bins = gym.spaces.flatdim(space), args.num_bins
    model = build_iq_network(
        obs_dim=obs_dim, act_dim=act_dim, num_bins=num_bins, hidden_sizes=args.hidden_sizes,
        policy_type=args.policy_type, probability_floor=args.probability_floor,
        sample_with_floor=args.sample_with_floor, device=args.device,
    )
    policy = IQPolicy(
        model=model, action_space=space, observation_space=env.observation_space,
        deterministic_eval=not args.stochastic_eval,
    )
    return IQ(
        policy=policy, optim=make_optim(args.lr),
        temperature=build_temperature(args, act_dim=act_dim, num_bins=num_bins),
        alpha=resolve_alpha(args), polyak=args.polyak, gamma=args.gamma,
        munchausen_clip=args.munchausen_clip, max_grad_norm=args.max_grad_norm, twin=args.twin,
    )


def build_sac(args: argparse.Namespace, env: gym.Env) -> SAC:
    """Tianshou's SAC as in its ``mujoco_sac.py`` (auto-α by default; learning rates from the flags)."""
    if not isinstance(env.action_space, gym.spaces.Box):
        raise SystemExit(f"--algo sac needs a Box action space, got {env.action_space}")
    obs_dim = gym.spaces.flatdim(env.observation_space)
    act_dim = gym.spaces.flatdim(env.action_space)
    hidden = list(args.hidden_sizes)
    actor = ContinuousActorProbabilistic(
        preprocess_net=Net(state_shape=obs_dim, hidden_sizes=hidden),
        action_shape=act_dim, unbounded=True, conditioned_sigma=True,
    ).to(args.device)
    critics = [
        ContinuousCritic(
            preprocess_net=Net(state_shape=obs_dim, action_shape=act_dim, hidden_sizes=hidden, concat=True)
        ).to(args.device)
        for _ in range(2)
    ]
    policy = SACPolicy(actor=actor, action_space=env.action_space,
                       observation_space=env.observation_space)
    return SAC(
        policy=policy, policy_optim=AdamOptimizerFactory(lr=args.sac_actor_lr),
        critic=critics[0], critic_optim=AdamOptimizerFactory(lr=args.sac_critic_lr),
        critic2=critics[1], critic2_optim=AdamOptimizerFactory(lr=args.sac_critic_lr),
        tau=args.polyak, gamma=args.gamma, alpha=sac_alpha(args, act_dim=act_dim),
    )


def sac_alpha(args: argparse.Namespace, *, act_dim: int) -> float | AutoAlpha:
    """SAC's entropy coefficient: tuned towards entropy -dim(A) (``--sac-auto-alpha``) or fixed."""
    if not getattr(args, "sac_auto_alpha", False):
        return float(args.sac_alpha)
    return AutoAlpha(target_entropy=-float(act_dim), log_alpha=math.log(args.sac_alpha),
                     optim=AdamOptimizerFactory(lr=3e-4)).to(args.device)


def build_algorithm(args: argparse.Namespace, env: gym.Env) -> OffPolicyAlgorithm:
    """The algorithm ``--algo`` names, for ``env``'s spaces."""
    return build_sac(args, env) if args.algo == "sac" else build_iq(args, env)


def setup_from_args(args: argparse.Namespace, make_envs: EnvMaker) -> RunSetup:
    """Validate, build envs, agent and buffer (see :class:`~tianshou_qmle.experiment.runner.RunSetup`)."""
    if round(args.updates_per_step * args.env_steps_per_collect) < 1:
        raise SystemExit("--updates-per-step × --env-steps-per-collect must round to ≥ 1 update")
    if args.algo != "sac":
        resolve_alpha(args)  # fail on flag clashes before building environments
        if args.policy_type == "gaussian" and args.probability_floor > 0.0:
            raise SystemExit(f"--probability-floor {args.probability_floor:g} needs --policy-type "
                             f"multicategorical; the gaussian policy has no bins to floor")
    prepare_run(args)
    env, train_envs, test_envs = make_envs(
        args.task, seed=args.seed, num_train_envs=args.num_train_envs,
        num_test_envs=args.num_test_envs, kind=args.vector_env,
    )
    return plain_replay_setup(
        args=args, algo_name=algorithm_name(args), build_algorithm=lambda: build_algorithm(args, env),
        train_envs=train_envs, test_envs=test_envs,
    )


__all__ = [
    "ALGORITHMS",
    "MIQ_DEFAULT_ALPHA",
    "add_agent_arguments",
    "algorithm_name",
    "build_algorithm",
    "build_iq",
    "build_sac",
    "build_temperature",
    "parse_hidden_sizes",
    "resolve_alpha",
    "setup_from_args",
]
