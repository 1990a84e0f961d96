"""The algorithms a benchmark can run, each built with its documented settings.

Ours:

* ``qmle``: exactly what ``examples/dmc_qmle.py`` builds, with that script's own flag defaults
  (Table 1 of Tavakoli et al.): the defaults are read from its parser, not copied here;
* ``iq`` / ``miq``: IQ (α = 0) and M-IQ (α = 0.9) from :mod:`tianshou_qmle.experiment.iq_factory`
  with its §6 defaults;
* ``savo``: SAVO-TD3 from :mod:`tianshou_qmle.experiment.savo_factory` with its Table 3 MuJoCo
  column (list length 3); ``savo-l1``: the same with list length 1, the control that separates
  the successive actors from SAVO's exploration and optimisation.

Tianshou 2's own, with the settings of Tianshou's ``examples/mujoco`` scripts:

* ``ddpg`` (``mujoco_ddpg.py``): 256-256 MLPs, Adam 1e-3 for actor and critic, τ 0.005, γ 0.99,
  Gaussian exploration σ 0.1·max_action, batch 256, one update per env step, 25 000 random steps;
* ``td3`` (``mujoco_td3.py``): 256-256 MLPs, Adam 3e-4, τ 0.005, γ 0.99, exploration σ 0.1,
  target smoothing σ 0.2 clipped at 0.5 (times max_action), actor every 2 critic updates, batch
  256, one update per env step, 25 000 random steps;
* ``sac`` (``mujoco_sac.py``): 256-256 MLPs, Adam 1e-3 for actor and critics, τ 0.005, γ 0.99,
  fixed entropy coefficient α 0.2 (``sac-auto``: α tuned towards entropy −dim(A) with Adam 3e-4),
  batch 256, one update per env step, 10 000 random steps.

Every algorithm gets a replay buffer with the same O(1) ``hasnull`` and the run's seed
(:class:`~tianshou_qmle.FastNullCheckVectorReplayBuffer` for the baselines, QMLE's prioritized
arg max prior buffer for QMLE), its capacity capped at ``buffer_size``: the worker passes the run's
budget plus some headroom, so the buffer never wraps and the cap changes nothing but memory.
"""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import gymnasium as gym
import numpy as np
from tianshou.algorithm import DDPG, SAC, TD3
from tianshou.algorithm.algorithm_base import OffPolicyAlgorithm
from tianshou.algorithm.modelfree.ddpg import ContinuousDeterministicPolicy
from tianshou.algorithm.modelfree.sac import AutoAlpha, SACPolicy
from tianshou.algorithm.optim import AdamOptimizerFactory
from tianshou.data import ReplayBuffer
from tianshou.exploration import GaussianNoise
from tianshou.utils.net.common import Net
from tianshou.utils.net.continuous import (
    ContinuousActorDeterministic,
    ContinuousActorProbabilistic,
    ContinuousCritic,
)

from tianshou_qmle.data.buffer import FastNullCheckVectorReplayBuffer
from tianshou_qmle.experiment.presets import qmle_preset
from tianshou_qmle.experiment.qmle_factory import build_qmle_from_args
from tianshou_qmle.experiment.runner import Schedule

ROOT = Path(__file__).resolve().parents[2]
"""The repository root (``examples/`` lives there)."""

MUJOCO_HIDDEN = (256, 256)
"""Hidden widths of every MLP in Tianshou's ``examples/mujoco`` scripts."""


@dataclass(kw_only=True)
class Agent:
    """What one run trains: the algorithm, its buffer, its collect/update schedule, its settings."""

    algorithm: OffPolicyAlgorithm
    buffer: ReplayBuffer
    schedule: Schedule
    hyperparameters: dict[str, Any] = field(default_factory=dict)


Builder = Callable[..., Agent]
"""``(*, env, seed, device, buffer_size) -> Agent``."""


@dataclass(frozen=True, kw_only=True)
class AlgorithmEntry:
    """One algorithm the harness can run."""

    name: str
    label: str
    """Name in tables and plots."""
    origin: str
    """``"ours"`` or ``"tianshou"``."""
    warmup: int
    """Uniformly random env steps before learning, as documented for this algorithm (the tiers
    scale it down for short budgets; ``--warmup`` overrides it for all)."""
    source: str
    """Where the settings come from."""
    build: Builder


def _obs_act_dims(env: gym.Env) -> tuple[int, int]:
    if not isinstance(env.action_space, gym.spaces.Box):
        raise ValueError(f"this benchmark needs a Box action space, got {env.action_space}")
    return gym.spaces.flatdim(env.observation_space), gym.spaces.flatdim(env.action_space)


def _baseline_buffer(*, buffer_size: int, seed: int) -> FastNullCheckVectorReplayBuffer:
    return FastNullCheckVectorReplayBuffer(buffer_size, 1, random_seed=seed)


def _one_update_per_step() -> Schedule:
    return Schedule(env_steps_per_collect=1, updates_per_env_step=1.0, batch_size=256)


def _critic(*, obs_dim: int, act_dim: int, device: str) -> ContinuousCritic:
    net = Net(state_shape=obs_dim, action_shape=act_dim, hidden_sizes=list(MUJOCO_HIDDEN), concat=True)
    return ContinuousCritic(preprocess_net=net).to(device)


def _deterministic_policy(
    env: gym.Env, *, obs_dim: int, act_dim: int, device: str, exploration: float
) -> ContinuousDeterministicPolicy:
    max_action = float(np.asarray(env.action_space.high).flat[0])
    actor = ContinuousActorDeterministic(
        preprocess_net=Net(state_shape=obs_dim, hidden_sizes=list(MUJOCO_HIDDEN)),
        action_shape=act_dim, max_action=max_action,
    ).to(device)
    return ContinuousDeterministicPolicy(
        actor=actor, exploration_noise=GaussianNoise(sigma=exploration * max_action),
        action_space=env.action_space, observation_space=env.observation_space,
    )


def build_ddpg(*, env: gym.Env, seed: int, device: str, buffer_size: int) -> Agent:
    """Tianshou's DDPG with ``examples/mujoco/mujoco_ddpg.py``'s settings."""
    obs_dim, act_dim = _obs_act_dims(env)
    settings = {"hidden_sizes": list(MUJOCO_HIDDEN), "actor_lr": 1e-3, "critic_lr": 1e-3, "tau": 0.005,
                "gamma": 0.99, "exploration_noise": 0.1, "batch_size": 256, "n_step": 1,
                "updates_per_env_step": 1.0}
    policy = _deterministic_policy(env, obs_dim=obs_dim, act_dim=act_dim, device=device,
                                   exploration=settings["exploration_noise"])
    algorithm = DDPG(
        policy=policy, policy_optim=AdamOptimizerFactory(lr=settings["actor_lr"]),
        critic=_critic(obs_dim=obs_dim, act_dim=act_dim, device=device),
        critic_optim=AdamOptimizerFactory(lr=settings["critic_lr"]),
        tau=settings["tau"], gamma=settings["gamma"], n_step_return_horizon=settings["n_step"],
    )
    return Agent(algorithm=algorithm, buffer=_baseline_buffer(buffer_size=buffer_size, seed=seed),
                 schedule=_one_update_per_step(), hyperparameters=settings)


def build_td3(*, env: gym.Env, seed: int, device: str, buffer_size: int) -> Agent:
    """Tianshou's TD3 with ``examples/mujoco/mujoco_td3.py``'s settings."""
    obs_dim, act_dim = _obs_act_dims(env)
    max_action = float(np.asarray(env.action_space.high).flat[0])
    settings = {"hidden_sizes": list(MUJOCO_HIDDEN), "actor_lr": 3e-4, "critic_lr": 3e-4, "tau": 0.005,
                "gamma": 0.99, "exploration_noise": 0.1, "policy_noise": 0.2, "noise_clip": 0.5,
                "update_actor_freq": 2, "batch_size": 256, "n_step": 1, "updates_per_env_step": 1.0}
    policy = _deterministic_policy(env, obs_dim=obs_dim, act_dim=act_dim, device=device,
                                   exploration=settings["exploration_noise"])
    algorithm = TD3(
        policy=policy, policy_optim=AdamOptimizerFactory(lr=settings["actor_lr"]),
        critic=_critic(obs_dim=obs_dim, act_dim=act_dim, device=device),
        critic_optim=AdamOptimizerFactory(lr=settings["critic_lr"]),
        critic2=_critic(obs_dim=obs_dim, act_dim=act_dim, device=device),
        critic2_optim=AdamOptimizerFactory(lr=settings["critic_lr"]),
        tau=settings["tau"], gamma=settings["gamma"],
        policy_noise=settings["policy_noise"] * max_action, noise_clip=settings["noise_clip"] * max_action,
        update_actor_freq=settings["update_actor_freq"], n_step_return_horizon=settings["n_step"],
    )
    return Agent(algorithm=algorithm, buffer=_baseline_buffer(buffer_size=buffer_size, seed=seed),
                 schedule=_one_update_per_step(), hyperparameters=settings)


def _build_sac(*, env: gym.Env, seed: int, device: str, buffer_size: int, auto_alpha: bool) -> Agent:
    obs_dim, act_dim = _obs_act_dims(env)
    settings: dict[str, Any] = {
        "hidden_sizes": list(MUJOCO_HIDDEN), "actor_lr": 1e-3, "critic_lr": 1e-3, "tau": 0.005,
        "gamma": 0.99, "alpha": 0.2, "auto_alpha": auto_alpha, "batch_size": 256, "n_step": 1,
        "updates_per_env_step": 1.0,
    }
    actor = ContinuousActorProbabilistic(
        preprocess_net=Net(state_shape=obs_dim, hidden_sizes=list(MUJOCO_HIDDEN)),
        action_shape=act_dim, unbounded=True, conditioned_sigma=True,
    ).to(device)
    alpha: float | AutoAlpha = settings["alpha"]
    if auto_alpha:
        settings.update(alpha_lr=3e-4, target_entropy=-float(act_dim))
        alpha = AutoAlpha(target_entropy=-float(act_dim), log_alpha=0.0,
                          optim=AdamOptimizerFactory(lr=settings["alpha_lr"])).to(device)
    policy = SACPolicy(actor=actor, action_space=env.action_space, observation_space=env.observation_space)
    algorithm = SAC(
        policy=policy, policy_optim=AdamOptimizerFactory(lr=settings["actor_lr"]),
        critic=_critic(obs_dim=obs_dim, act_dim=act_dim, device=device),
        critic_optim=AdamOptimizerFactory(lr=settings["critic_lr"]),
        critic2=_critic(obs_dim=obs_dim, act_dim=act_dim, device=device),
        critic2_optim=AdamOptimizerFactory(lr=settings["critic_lr"]),
        tau=settings["tau"], gamma=settings["gamma"], alpha=alpha, n_step_return_horizon=settings["n_step"],
    )
    return Agent(algorithm=algorithm, buffer=_baseline_buffer(buffer_size=buffer_size, seed=seed),
                 schedule=_one_update_per_step(), hyperparameters=settings)


def build_sac(*, env: gym.Env, seed: int, device: str, buffer_size: int) -> Agent:
    """Tianshou's SAC with ``examples/mujoco/mujoco_sac.py``'s settings (fixed α = 0.2)."""
    return _build_sac(env=env, seed=seed, device=device, buffer_size=buffer_size, auto_alpha=False)


def build_sac_auto(*, env: gym.Env, seed: int, device: str, buffer_size: int) -> Agent:
    """As :func:`build_sac` with ``mujoco_sac.py --auto-alpha``."""
    return _build_sac(env=env, seed=seed, device=device, buffer_size=buffer_size, auto_alpha=True)


@cache
def load_example(name: str) -> ModuleType:
    """Import ``examples/NAME.py`` by path (``examples`` is not a package)."""
    path = ROOT / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_bench_example_{name}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


QMLE_RUN_FLAGS = frozenset({
    "task", "total_steps", "warmup", "seed", "device", "threads", "logdir", "checkpoint", "summary_json",
    "epoch_steps", "test_episodes", "eval_episodes", "num_train_envs", "num_test_envs", "vector_env",
    "no_progress",
})
"""The shared run flags of the example; the harness sets these itself."""


def qmle_defaults(preset: str = "paper") -> argparse.Namespace:
    """``examples/dmc_qmle.py``'s flags at the defaults of ``preset`` (paper: Table 1)."""
    return load_example("dmc_qmle").build_parser().parse_args(["--preset", preset])


def build_qmle(
    *, env: gym.Env, seed: int, device: str, buffer_size: int, preset: str = "paper", **overrides: Any
) -> Agent:
    """QMLE as ``examples/dmc_qmle.py --preset PRESET`` builds it (``qmle_factory``), except for
    ``overrides`` (flag names as attributes, e.g. ``m_target=2``)."""
    args = qmle_defaults(preset)
    for name, value in overrides.items():
        if not hasattr(args, name):
            raise ValueError(f"dmc_qmle.py has no flag {name!r} to override")
        setattr(args, name, value)
    args.seed, args.device, args.num_train_envs = seed, device, 1
    args.buffer_size = min(args.buffer_size, buffer_size)
    algorithm, buffer, schedule = build_qmle_from_args(args, env)
    settings = {k: v for k, v in vars(args).items() if k not in QMLE_RUN_FLAGS}
    return Agent(algorithm=algorithm, buffer=buffer, schedule=schedule, hyperparameters=settings)


D1_D2_BUDGET = {"m_target": 2, "m_greedy": 2}
"""App. D.1 / D.2: two candidates per search, for targets and for acting."""


QMLE_ENTRY_FLAGS: dict[str, dict[str, Any]] = {
    "qmle": {"preset": "paper"},
    "qmle-efficient": {"preset": "efficient"},
    "qmle-fp32": {"preset": "paper", "scoring_dtype": "float32"},
    "qmle-bf16": {"preset": "paper", "scoring_dtype": "bfloat16"},
    "qmle-m2": {"preset": "paper", **D1_D2_BUDGET, "ratios": (0.5, 0.5, 0.0)},
    "qmle-m2-uniform": {"preset": "paper", **D1_D2_BUDGET, "ratios": (1.0, 0.0, 0.0), "no_prior": True},
}
"""Each QMLE entry: the ``dmc_qmle.py`` preset it starts from and the flags it changes (as
attributes)."""


def build_qmle_m2(*, env: gym.Env, seed: int, device: str, buffer_size: int) -> Agent:
    """App. D.1 / D.2's QMLE: budgets of 2, shared equally by uniform sampling and the delta
    predictor (ρ = 0.5, 0.5; the categorical predictor gets 0), the stored prior kept."""
    return build_qmle(env=env, seed=seed, device=device, buffer_size=buffer_size,
                      **QMLE_ENTRY_FLAGS["qmle-m2"])


def build_qmle_m2_uniform(*, env: gym.Env, seed: int, device: str, buffer_size: int) -> Agent:
    """App. D.2's ablation without amortised maximisation: budgets of 2, all uniform (ρ0 = 1), and
    no stored prior, so nothing learned about the arg max is reused."""
    return build_qmle(env=env, seed=seed, device=device, buffer_size=buffer_size,
                      **QMLE_ENTRY_FLAGS["qmle-m2-uniform"])


def build_qmle_bf16(*, env: gym.Env, seed: int, device: str, buffer_size: int) -> Agent:
    """QMLE at Table 1 settings with bf16 candidate scoring (the speed lever; winners re-scored in fp32)."""
    return build_qmle(env=env, seed=seed, device=device, buffer_size=buffer_size,
                      **QMLE_ENTRY_FLAGS["qmle-bf16"])


def build_qmle_fp32(*, env: gym.Env, seed: int, device: str, buffer_size: int) -> Agent:
    """QMLE at Table 1 settings with float32 candidate scoring: the paper's arithmetic."""
    return build_qmle(env=env, seed=seed, device=device, buffer_size=buffer_size,
                      **QMLE_ENTRY_FLAGS["qmle-fp32"])


def build_qmle_efficient(*, env: gym.Env, seed: int, device: str, buffer_size: int) -> Agent:
    """QMLE with ``dmc_qmle.py --preset efficient`` (ours, for ~100k env steps)."""
    return build_qmle(env=env, seed=seed, device=device, buffer_size=buffer_size,
                      **QMLE_ENTRY_FLAGS["qmle-efficient"])


VARIANT_SEPARATOR = "+"
"""Joins a QMLE entry and the ``dmc_qmle.py`` flags of a variant: ``qmle+update-every=2+n-step=3``."""


def variant_flags(name: str) -> tuple[str, list[str]]:
    """``"qmle+update-every=2+uniform-replay"`` → ``("qmle", ["--update-every", "2",
    "--uniform-replay"])``."""
    base, *parts = name.split(VARIANT_SEPARATOR)
    argv: list[str] = []
    for part in parts:
        flag, sep, value = part.partition("=")
        if not flag:
            raise ValueError(f"algorithm {name!r}: empty flag between {VARIANT_SEPARATOR!r} separators")
        argv += [f"--{flag}", value] if sep else [f"--{flag}"]
    return base, argv


def build_qmle_variant(
    *, env: gym.Env, seed: int, device: str, buffer_size: int, base: str, argv: list[str]
) -> Agent:
    """The QMLE entry ``base`` with ``argv`` parsed by ``dmc_qmle.py``'s parser on top of it."""
    flags = dict(QMLE_ENTRY_FLAGS[base])
    preset = flags.pop("preset")
    parser = load_example("dmc_qmle").build_parser()
    parser.set_defaults(**qmle_preset(preset).values, **flags)
    overrides = {k: v for k, v in vars(parser.parse_args(["--preset", preset, *argv])).items()
                 if k not in QMLE_RUN_FLAGS and k != "preset"}
    # the variant's replay capacity still gets the run's cap
    buffer_size = min(buffer_size, overrides.pop("buffer_size"))
    return build_qmle(env=env, seed=seed, device=device, buffer_size=buffer_size, preset=preset, **overrides)


IQ_ENTRY_FLAGS: dict[str, list[str]] = {
    "iq": ["--algo", "iq"],
    "miq": ["--algo", "miq"],
    "miq-paper": ["--algo", "miq", "--temperature-scheme", "fixed", "--temperature", "0.01",
                  "--no-munchausen-clip"],
    "miq-gaussian": ["--algo", "miq", "--policy-type", "gaussian"],
}
"""Each IQ entry as ``iq_factory`` flags on top of its defaults (``miq-paper``: the paper's M-IQ,
fixed τ = 0.01 and Eq. 2 without the clip; ``miq-gaussian``: the §6 Gaussian-policy ablation)."""


def iq_parser() -> argparse.ArgumentParser:
    from tianshou_qmle.experiment import iq_factory

    parser = argparse.ArgumentParser(prog="iq_factory")
    iq_factory.add_agent_arguments(parser)
    return parser


def build_iq_variant(
    *, env: gym.Env, seed: int, device: str, buffer_size: int, base: str, argv: list[str]
) -> Agent:
    """The IQ entry ``base`` with further ``iq_factory`` flags ``argv``."""
    from tianshou_qmle.experiment import iq_factory

    args = iq_parser().parse_args([*IQ_ENTRY_FLAGS[base], *argv])
    args.device = device
    agent = factory_agent(iq_factory.build_iq(args, env), args, seed=seed, buffer_size=buffer_size)
    agent.hyperparameters["alpha"] = iq_factory.resolve_alpha(args)
    return agent


def factory_agent(
    algorithm: OffPolicyAlgorithm, args: argparse.Namespace, *, seed: int, buffer_size: int
) -> Agent:
    """An algorithm built by a factory from ``args`` (the IQ or SAVO flags), with the schedule
    those flags set and a baseline replay buffer capped at ``buffer_size``."""
    schedule = Schedule(env_steps_per_collect=args.env_steps_per_collect,
                        updates_per_env_step=args.updates_per_step, batch_size=args.batch_size)
    settings = {k: v for k, v in vars(args).items() if k != "device"}
    buffer = _baseline_buffer(buffer_size=min(args.buffer_size, buffer_size), seed=seed)
    return Agent(algorithm=algorithm, buffer=buffer, schedule=schedule, hyperparameters=settings)


def build_iq(*, env: gym.Env, seed: int, device: str, buffer_size: int) -> Agent:
    """IQ (α = 0) from ``iq_factory`` with its defaults."""
    return build_iq_variant(env=env, seed=seed, device=device, buffer_size=buffer_size, base="iq", argv=[])


def build_miq(*, env: gym.Env, seed: int, device: str, buffer_size: int) -> Agent:
    """M-IQ (α = 0.9) from ``iq_factory`` with its defaults."""
    return build_iq_variant(env=env, seed=seed, device=device, buffer_size=buffer_size, base="miq", argv=[])


def build_miq_paper(*, env: gym.Env, seed: int, device: str, buffer_size: int) -> Agent:
    """The paper's M-IQ: α = 0.9, fixed τ = 0.01, Eq. 2 without the Munchausen clip."""
    return build_iq_variant(env=env, seed=seed, device=device, buffer_size=buffer_size, base="miq-paper",
                            argv=[])


def build_miq_gaussian(*, env: gym.Env, seed: int, device: str, buffer_size: int) -> Agent:
    """M-IQ with the Gaussian policy of the §6 ablation, other settings as ``miq``."""
    return build_iq_variant(env=env, seed=seed, device=device, buffer_size=buffer_size,
                            base="miq-gaussian", argv=[])


SAVO_ENTRY_FLAGS: dict[str, list[str]] = {
    "savo": [],
    "savo-l1": ["--list-length", "1"],
}
"""Each SAVO entry as ``savo_factory`` flags on top of its Table 3 MuJoCo defaults (``savo-l1``:
issue 14's control, list length 1, i.e. μ alone with SAVO's noise, schedule and optimisation)."""


def savo_parser() -> argparse.ArgumentParser:
    from tianshou_qmle.experiment import savo_factory

    parser = argparse.ArgumentParser(prog="savo_factory")
    savo_factory.add_agent_arguments(parser, defaults=savo_factory.MUJOCO_DEFAULTS, with_td3=False)
    return parser


def build_savo_variant(
    *, env: gym.Env, seed: int, device: str, buffer_size: int, base: str, argv: list[str]
) -> Agent:
    """The SAVO entry ``base`` with further ``savo_factory`` flags ``argv``."""
    from tianshou_qmle.experiment import savo_factory

    args = savo_parser().parse_args([*SAVO_ENTRY_FLAGS[base], *argv])
    args.device = device
    savo_factory.validate_args(args)
    return factory_agent(savo_factory.build_savo(args, env), args, seed=seed, buffer_size=buffer_size)


def build_savo(*, env: gym.Env, seed: int, device: str, buffer_size: int) -> Agent:
    """SAVO-TD3 from ``savo_factory`` with its Table 3 MuJoCo defaults (list length 3)."""
    return build_savo_variant(env=env, seed=seed, device=device, buffer_size=buffer_size, base="savo",
                              argv=[])


def build_savo_l1(*, env: gym.Env, seed: int, device: str, buffer_size: int) -> Agent:
    """SAVO with list length 1: no successive actors, everything else as ``savo``."""
    return build_savo_variant(env=env, seed=seed, device=device, buffer_size=buffer_size, base="savo-l1",
                              argv=[])


def _has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def registry() -> dict[str, AlgorithmEntry]:
    """Every algorithm available in this checkout, by name (``savo`` only where its factory exists)."""
    entries = [
        AlgorithmEntry(name="qmle", label="QMLE (paper)", origin="ours", warmup=1000, build=build_qmle,
                       source="examples/dmc_qmle.py --preset paper (QMLE paper, Table 1)"),
        AlgorithmEntry(name="qmle-efficient", label="QMLE efficient", origin="ours", warmup=1000,
                       build=build_qmle_efficient,
                       source="examples/dmc_qmle.py --preset efficient (ours, for ~100k env steps)"),
        AlgorithmEntry(name="qmle-bf16", label="QMLE bf16 scoring", origin="ours", warmup=1000,
                       build=build_qmle_bf16, source="examples/dmc_qmle.py --scoring-dtype bfloat16"),
        AlgorithmEntry(name="qmle-fp32", label="QMLE fp32 scoring", origin="ours", warmup=1000,
                       build=build_qmle_fp32,
                       source="examples/dmc_qmle.py --preset paper --scoring-dtype float32 (the paper's "
                              "arithmetic)"),
        AlgorithmEntry(name="qmle-m2", label="QMLE m=2", origin="ours", warmup=1000, build=build_qmle_m2,
                       source="App. D.1/D.2: m_target = m_greedy = 2, ρ uniform 0.5 / delta 0.5"),
        AlgorithmEntry(name="qmle-m2-uniform", label="QMLE m=2 uniform only", origin="ours", warmup=1000,
                       build=build_qmle_m2_uniform,
                       source="App. D.2 ablation: m = 2, ρ uniform 1, no stored prior (no amortisation)"),
        AlgorithmEntry(name="iq", label="IQ", origin="ours", warmup=10_000, build=build_iq,
                       source="tianshou_qmle.experiment.iq_factory defaults, α = 0"),
        AlgorithmEntry(name="miq", label="M-IQ", origin="ours", warmup=10_000, build=build_miq,
                       source="tianshou_qmle.experiment.iq_factory defaults, α = 0.9"),
        AlgorithmEntry(name="miq-paper", label="M-IQ (paper τ)", origin="ours", warmup=10_000,
                       build=build_miq_paper,
                       source="IQ paper §6: α = 0.9, fixed τ = 0.01, Eq. 2 without the Munchausen clip"),
        AlgorithmEntry(name="miq-gaussian", label="M-IQ Gaussian", origin="ours", warmup=10_000,
                       build=build_miq_gaussian, source="iq_factory defaults with --policy-type gaussian"),
        AlgorithmEntry(name="ddpg", label="DDPG (Tianshou)", origin="tianshou", warmup=25_000,
                       build=build_ddpg, source="Tianshou examples/mujoco/mujoco_ddpg.py"),
        AlgorithmEntry(name="td3", label="TD3 (Tianshou)", origin="tianshou", warmup=25_000,
                       build=build_td3, source="Tianshou examples/mujoco/mujoco_td3.py"),
        AlgorithmEntry(name="sac", label="SAC (Tianshou)", origin="tianshou", warmup=10_000,
                       build=build_sac, source="Tianshou examples/mujoco/mujoco_sac.py (fixed α 0.2)"),
        AlgorithmEntry(name="sac-auto", label="SAC auto-α (Tianshou)", origin="tianshou", warmup=10_000,
                       build=build_sac_auto, source="Tianshou examples/mujoco/mujoco_sac.py --auto-alpha"),
    ]
    if _has_module("tianshou_qmle.experiment.savo_factory"):
        entries[3:3] = [
            AlgorithmEntry(
                name="savo", label="SAVO", origin="ours", warmup=10_000, build=build_savo,
                source="tianshou_qmle.experiment.savo_factory MUJOCO_DEFAULTS (SAVO paper, Table 3)",
            ),
            AlgorithmEntry(
                name="savo-l1", label="SAVO list length 1", origin="ours", warmup=10_000,
                build=build_savo_l1, source="savo_factory MUJOCO_DEFAULTS with --list-length 1",
            ),
        ]
    return {entry.name: entry for entry in entries}


def _check_variant_flags(name: str, parser: argparse.ArgumentParser, argv: list[str]) -> None:
    parser.exit_on_error = False
    try:
        _, unknown = parser.parse_known_args(argv)
    except argparse.ArgumentError as err:
        raise ValueError(f"algorithm {name!r}: {parser.prog} rejects {argv}: {err}") from err
    if unknown:
        raise ValueError(f"algorithm {name!r}: {parser.prog} has no flag {' '.join(unknown)}")


def entry_for(name: str) -> AlgorithmEntry:
    """The registered algorithm ``name``, or a variant ``BASE+flag=value+…`` of a QMLE, IQ or SAVO
    entry: the flags (without their leading ``--``) of ``examples/dmc_qmle.py``, ``iq_factory`` or
    ``savo_factory``, applied on top of ``BASE``, e.g. ``qmle-efficient+update-every=4``,
    ``miq+temperature-scheme=reward`` or ``savo+surrogate-critics=online`` for a sweep point.

    :raises ValueError: for an unknown name, a variant of another entry, or flags its parser rejects.
    """
    entries = registry()
    if name in entries:
        return entries[name]
    base_name, argv = variant_flags(name)
    base = entries.get(base_name)
    extensible = [*QMLE_ENTRY_FLAGS, *IQ_ENTRY_FLAGS, *SAVO_ENTRY_FLAGS]
    if base is None or base_name not in extensible:
        raise ValueError(f"unknown algorithm {name!r}; known: {', '.join(entries)}; variants "
                         f"('qmle{VARIANT_SEPARATOR}update-every=2') extend one of {', '.join(extensible)}")
    variant_builder: Callable[..., Agent]
    if base_name in QMLE_ENTRY_FLAGS:
        parser = load_example("dmc_qmle").build_parser()
        parser.prog = "dmc_qmle.py"
        _check_variant_flags(name, parser, argv)
        variant_builder = build_qmle_variant
    elif base_name in IQ_ENTRY_FLAGS:
        _check_variant_flags(name, iq_parser(), [*IQ_ENTRY_FLAGS[base_name], *argv])
        variant_builder = build_iq_variant
    else:
        _check_variant_flags(name, savo_parser(), [*SAVO_ENTRY_FLAGS[base_name], *argv])
        variant_builder = build_savo_variant

    def build(*, env: gym.Env, seed: int, device: str, buffer_size: int) -> Agent:
        return variant_builder(env=env, seed=seed, device=device, buffer_size=buffer_size,
                               base=base_name, argv=argv)

    return AlgorithmEntry(name=name, label=f"{base.label} {' '.join(argv).replace('--', '')}",
                          origin="ours", warmup=base.warmup, build=build,
                          source=f"{base.source}, with {' '.join(argv)}")


__all__ = [
    "Agent",
    "AlgorithmEntry",
    "build_ddpg",
    "build_iq",
    "build_iq_variant",
    "build_miq",
    "build_miq_gaussian",
    "build_miq_paper",
    "build_qmle",
    "build_qmle_bf16",
    "build_qmle_efficient",
    "build_qmle_fp32",
    "build_qmle_m2",
    "build_qmle_m2_uniform",
    "build_sac",
    "build_sac_auto",
    "build_savo",
    "build_td3",
    "entry_for",
    "load_example",
    "qmle_defaults",
    "registry",
]
