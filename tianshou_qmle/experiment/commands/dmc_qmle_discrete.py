"""QMLE on a bang-off-bang discretised DeepMind Control task, next to Tianshou's DQN and BDQN.

Every action dimension gets K values between its bounds (K = 3: {low, centre, high}), so a task
with d action dimensions has K^d joint actions (3³⁸ ≈ 1.35·10¹⁸ for dog). This is the setting of
App. D.3 of Tavakoli et al. (arXiv 2410.06317), "Action-in architecture".

--algo qmle   QMLE with App. D.3's agent: the action-in critic of Fig. 4, fed the bin coordinates in
              [-1, 1], and one factored categorical arg max predictor; m_greedy 1000 and m_target
              100 candidates with ratios 0.9 uniform / 0.1 predictor (Table 1's uniform share).
--algo dqn    Tianshou's DQN on the joint Discrete(K^d) space: App. D.3's action-out ablation,
              which "reduces to DQN". Its network keeps QMLE's observation stream and 256-wide
              joint residual block but outputs one Q-value per joint action. It refuses tasks
              whose K^d exceeds --max-joint-actions (DQN is intractable there).
--algo bdqn   Tianshou's BDQN (branching dueling Q-network, Tavakoli et al. 2018) on the
              MultiDiscrete space: a shared trunk, a state value and one advantage branch per
              dimension, so its outputs grow as d·K rather than K^d.

The three share everything else, from Table 1: Adam 5e-4, γ 0.99, batch 256, one gradient update
per 10 env steps, 1000 uniformly random warm-up steps, prioritized replay (α 0.6, β 0.2; the same
buffer class for all three, whose arg max prior column only QMLE reads), ε-greedy with ε 0.1
(uniform over the valid actions of each agent's space), greedy evaluation, and hard target copies
every 2000 env steps. The baselines use plain max targets by default, as QMLE does (its TD target
is a max under the target network); --double switches them to Tianshou's Double-Q targets.
DQN and QMLE bootstrap through DMC's 1000-step time limit (partial-episode bootstrapping);
Tianshou's BDQN computes its own 1-step returns and treats truncations as terminal (1 transition
in 1000 here).

    tianshou-qmle train dmc-qmle-discrete                          # walker-walk, QMLE, 50k steps
    tianshou-qmle train dmc-qmle-discrete --algo dqn --task finger-spin
    tianshou-qmle train dmc-qmle-discrete --algo bdqn --task humanoid-walk --total-steps 200000
    tensorboard --logdir log
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
from typing import Any, cast

import gymnasium as gym
import torch
import torch.nn.functional as F
from tianshou.algorithm import BDQN, DQN
from tianshou.algorithm.algorithm_base import OffPolicyAlgorithm
from tianshou.algorithm.modelfree.bdqn import BDQNPolicy
from tianshou.algorithm.modelfree.dqn import DiscreteQLearningPolicy
from tianshou.algorithm.optim import AdamOptimizerFactory
from tianshou.utils.net.common import BranchingNet
from torch import nn

from tianshou_qmle import QMLE
from tianshou_qmle.env import make_dmc_env
from tianshou_qmle.env.discretize import MAX_JOINT_ACTIONS, JointDiscreteActions
from tianshou_qmle.env.dmc import make_seeded_vector_envs
from tianshou_qmle.experiment.commands import run_command
from tianshou_qmle.experiment.qmle_factory import (
    add_qmle_arguments,
    build_qmle_algorithm,
    check_qmle_arguments,
    replay_buffer_from_args,
    schedule_from_args,
)
from tianshou_qmle.experiment.runner import (
    HelpFormatter,
    RunSetup,
    add_run_arguments,
    prepare_run,
)
from tianshou_qmle.net.critic import ObservationStream, ResidualBlock, as_float_tensor

ALGORITHMS = ("qmle", "dqn", "bdqn")
"""``--algo`` choices."""

DEFAULT_TASK = "walker-walk"
"""Six action dimensions (729 joint actions, so DQN still runs). Random bang-off-bang play scores
about 41; QMLE's greedy return went from about 20 to 60-90 in 20k steps (two seeds)."""


class ActionOutQNetwork(nn.Module):
    """Q(s, ·) over every joint action: QMLE's network (Fig. 4) with the action stream removed.

    Observation stream (linear embedding, residual block, LayerNorm, ELU; ``hidden_width`` wide) →
    a linear widening to ``2·hidden_width`` (QMLE's joint width, which there comes from
    concatenating the action stream) → residual block → LayerNorm → ELU → one output per action.
    The forward signature is Tianshou's ``(obs, state, info) → (values, state)``.

    :param obs_dim: flat observation size.
    :param num_actions: the number of joint actions (output units).
    :param hidden_width: observation stream width; the joint block is twice this.
    """

    def __init__(self, *, obs_dim: int, num_actions: int, hidden_width: int = 128) -> None:
        super().__init__()
        joint = 2 * hidden_width
        self.obs_stream = ObservationStream(obs_dim, hidden_width)
        self.widen = nn.Linear(hidden_width, joint)
        self.joint = ResidualBlock(joint)
        self.joint_norm = nn.LayerNorm(joint)
        self.head = nn.Linear(joint, num_actions)

    def forward(self, obs: Any, state: Any = None, info: Any = None) -> tuple[torch.Tensor, Any]:
        obs_t = as_float_tensor(obs, self.head.weight.device)
        hidden = F.elu(self.joint_norm(self.joint(self.widen(self.obs_stream(obs_t.flatten(1))))))
        return self.head(hidden), state


def parse_sizes(text: str) -> list[int]:
    """``"128,256"`` → ``[128, 256]``; an empty string gives no hidden layer."""
    try:
        sizes = [int(x) for x in text.split(",") if x.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from err
    if any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"hidden sizes must be positive, got {text!r}")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    add_run_arguments(p, task=DEFAULT_TASK, total_steps=50_000, warmup=1000)
    add_qmle_arguments(p, ratios=None)  # Table 1 flags; DQN and BDQN share the replay/update ones
    agents = p.add_argument_group("agent and discretisation")
    agents.add_argument("--algo", choices=ALGORITHMS, default="qmle",
                        help="qmle: QMLE (action-in, App. D.3); dqn: Tianshou's DQN on the joint "
                             "actions (action-out ablation); bdqn: Tianshou's branching dueling Q-network")
    agents.add_argument("--action-bins", type=int, default=3,
                        help="K values per action dimension (3 = bang-off-bang)")

    base = p.add_argument_group("DQN and BDQN baselines (--algo dqn / bdqn)")
    base.add_argument("--double", action="store_true",
                      help="Double-Q targets (Tianshou's default); off matches QMLE's max target")
    base.add_argument("--max-joint-actions", type=int, default=MAX_JOINT_ACTIONS,
                      help="DQN only: refuse tasks with more joint actions K^d than this")
    base.add_argument("--bdqn-common-sizes", type=parse_sizes, default="128,256",
                      help="BDQN's shared trunk (QMLE's stream and joint widths)")
    base.add_argument("--bdqn-value-sizes", type=parse_sizes, default="128",
                      help="BDQN's state-value hidden layers (Tianshou's bipedal_bdqn.py)")
    base.add_argument("--bdqn-action-sizes", type=parse_sizes, default="128",
                      help="hidden layers of each BDQN action branch (Tianshou's bipedal_bdqn.py)")
    return p


def make_discrete_env(
    task: str, *, action_bins: int, joint: bool = False, max_joint_actions: int = MAX_JOINT_ACTIONS,
    render_mode: str | None = None,
) -> gym.Env:
    """A DMC task with ``MultiDiscrete([K] * d)`` actions, or ``Discrete(K^d)`` when ``joint``."""
    env = make_dmc_env(task, action_bins=action_bins, render_mode=render_mode)
    if joint:
        env = JointDiscreteActions(env, max_actions=max_joint_actions)
    return env


def check_dqn_tractable(args: argparse.Namespace) -> None:
    """Exit with App. D.3's reason when the joint action set is too large for an action-out net."""
    env = make_dmc_env(args.task, action_bins=args.action_bins)
    try:
        JointDiscreteActions(env, max_actions=args.max_joint_actions)
    except ValueError as err:
        raise SystemExit(
            f"--algo dqn is intractable on {args.task} with --action-bins {args.action_bins}: DQN's "
            f"action-out network needs one output unit (and one Q-value per state) for every joint "
            f"action. {err}. Use --algo qmle or --algo bdqn."
        ) from err
    finally:
        env.close()


def validate_args(args: argparse.Namespace) -> None:
    check_qmle_arguments(args)
    if args.algo == "bdqn" and args.n_step != 1:
        raise SystemExit("Tianshou's BDQN computes 1-step returns only; use --n-step 1")
    if args.algo != "qmle" and args.ratios is not None:
        raise SystemExit(f"--ratios applies to --algo qmle only, not {args.algo}")


def build_qmle(args: argparse.Namespace, env: gym.Env) -> QMLE:
    """QMLE with App. D.3's agent for the MultiDiscrete space (one factored categorical)."""
    return build_qmle_algorithm(args, env)


def build_dqn(args: argparse.Namespace, env: gym.Env) -> DQN:
    """Tianshou's DQN on the joint ``Discrete(K^d)`` space with :class:`ActionOutQNetwork`."""
    net = ActionOutQNetwork(
        obs_dim=gym.spaces.flatdim(env.observation_space),
        num_actions=int(cast(gym.spaces.Discrete, env.action_space).n),
        hidden_width=args.hidden,
    ).to(args.device)
    policy = DiscreteQLearningPolicy(
        model=net, action_space=env.action_space, observation_space=env.observation_space,
        eps_training=args.eps, eps_inference=0.0,
    )
    return DQN(
        policy=policy, optim=AdamOptimizerFactory(lr=args.lr), gamma=args.gamma,
        n_step_return_horizon=args.n_step,
        target_update_freq=args.target_update_env_steps // args.update_every,
        is_double=args.double,
    )


def build_bdqn(args: argparse.Namespace, env: gym.Env) -> BDQN:
    """Tianshou's BDQN on the ``MultiDiscrete([K] * d)`` space with a ``BranchingNet``."""
    space = cast(gym.spaces.MultiDiscrete, env.action_space)
    net = BranchingNet(
        state_shape=gym.spaces.flatdim(env.observation_space), num_branches=len(space.nvec),
        action_per_branch=int(space.nvec[0]), common_hidden_sizes=args.bdqn_common_sizes,
        value_hidden_sizes=args.bdqn_value_sizes, action_hidden_sizes=args.bdqn_action_sizes,
    ).to(args.device)
    policy = BDQNPolicy(
        # tianshou annotates a Discrete space, but BDQN acts on MultiDiscrete ones
        model=net, action_space=space, observation_space=env.observation_space,  # type: ignore[arg-type]
        eps_training=args.eps, eps_inference=0.0,
    )
    return BDQN(
        policy=policy, optim=AdamOptimizerFactory(lr=args.lr), gamma=args.gamma,
        target_update_freq=args.target_update_env_steps // args.update_every,
        is_double=args.double,
    )


BUILDERS = {"qmle": build_qmle, "dqn": build_dqn, "bdqn": build_bdqn}
"""``--algo`` → a function ``(args, env) → algorithm`` for that agent's action space."""


def build_algorithm(args: argparse.Namespace, env: gym.Env) -> OffPolicyAlgorithm:
    """The agent named by ``args.algo`` for ``env`` (MultiDiscrete, or the joint Discrete for DQN)."""
    return BUILDERS[args.algo](args, env)


def env_factory(args: argparse.Namespace) -> functools.partial:
    """A picklable factory of the algorithm's environment (joint actions for DQN)."""
    return functools.partial(
        make_discrete_env, args.task, action_bins=args.action_bins, joint=args.algo == "dqn",
        max_joint_actions=args.max_joint_actions,
    )


def discretisation_facts(env: gym.Env) -> dict[str, int]:
    """Bins per dimension, action dimensions and joint actions of a discretised task's env."""
    if isinstance(env, JointDiscreteActions):
        nvec = env.nvec
    else:
        nvec = cast(gym.spaces.MultiDiscrete, env.action_space).nvec
    return {
        "action_bins": int(nvec[0]),
        "action_dims": len(nvec),
        "joint_actions": math.prod(int(k) for k in nvec),
    }


NAME = "dmc-qmle-discrete"


def setup(args: argparse.Namespace) -> RunSetup:
    validate_args(args)
    if args.algo == "dqn":
        check_dqn_tractable(args)
    prepare_run(args)
    env, train_envs, test_envs = make_seeded_vector_envs(
        env_factory(args), seed=args.seed, num_train_envs=args.num_train_envs,
        num_test_envs=args.num_test_envs, kind=args.vector_env,
    )
    return RunSetup(
        algo_name=args.algo, algorithm=build_algorithm(args, env), buffer=replay_buffer_from_args(args),
        schedule=schedule_from_args(args), train_envs=train_envs, test_envs=test_envs,
        summary_extra=discretisation_facts(env),
    )


def make_env(args: argparse.Namespace, render_mode: str | None = None) -> gym.Env:
    return make_discrete_env(args.task, action_bins=args.action_bins, joint=args.algo == "dqn",
                             max_joint_actions=args.max_joint_actions, render_mode=render_mode)


def main(argv: list[str] | None = None) -> dict:
    return run_command(sys.modules[__name__], argv)
