"""QMLE, IQ and SAVO in Tianshou's high-level API (``tianshou.highlevel``).

A Tianshou user's ``*_hl.py`` script swaps ``TD3ExperimentBuilder`` for one of ours and keeps the
rest, ``build_and_run(num_experiments=...)`` included::

    experiment = (
        QMLEExperimentBuilder(DMCEnvFactory("walker-walk"), experiment_config, training_config)
        .with_qmle_params(QMLEParams(preset="efficient"))
    )
    experiment.build_and_run(num_experiments=3)

Each builder follows Tianshou's developer guide ("Supporting a New Algorithm"): a parameter
dataclass, an :class:`~tianshou.highlevel.algorithm.AlgorithmFactory` subclass whose
``_create_algorithm`` builds the algorithm for the experiment's environments, and an
:class:`~tianshou.highlevel.experiment.ExperimentBuilder` subclass. The parameters map onto the
same flags as the command line (``tianshou-qmle train``): a field left at None keeps the preset's
or the command's default, so every entry point reads one set of defaults.

The experiment's ``OffPolicyTrainingConfig`` decides what Tianshou's trainer does (batch size,
buffer size, env steps per collect, updates per env step); for QMLE's presets,
:meth:`QMLEParams.training_config` gives the matching schedule.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from typing import Any, Literal

import gymnasium as gym
from tianshou.algorithm.algorithm_base import Algorithm
from tianshou.data import Collector, CollectStats
from tianshou.highlevel.algorithm import OffPolicyAlgorithmFactory
from tianshou.highlevel.config import OffPolicyTrainingConfig
from tianshou.highlevel.env import EnvFactory, Environments, EnvMode, VectorEnvType
from tianshou.highlevel.experiment import ExperimentConfig, OffPolicyExperimentBuilder
from tianshou.highlevel.params.optim import OptimizerFactoryFactory

from tianshou_qmle.data.buffer import FastNullCheckVectorReplayBuffer, make_replay_buffer
from tianshou_qmle.env.dmc import make_dmc_env, make_gym_env
from tianshou_qmle.experiment import iq_factory, qmle_factory, savo_factory
from tianshou_qmle.experiment.presets import DEFAULT_QMLE_PRESET


class DMCEnvFactory(EnvFactory):
    """DeepMind Control tasks with flat float32 observations (Tianshou's registered-env factory
    cannot flatten DMC's Dict observations).

    :param task: ``"domain-task"``, e.g. ``"walker-walk"``.
    :param venv_type: Tianshou's vector env type for training and test envs.
    """

    def __init__(self, task: str, venv_type: VectorEnvType = VectorEnvType.DUMMY) -> None:
        super().__init__(venv_type)
        self.task = task

    def _create_env(self, mode: EnvMode) -> gym.Env:
        return make_dmc_env(self.task)

    def create_env(self, mode: EnvMode, seed: int | None = None) -> gym.Env:
        # seeded through reset: Tianshou's default assigns a numpy Generator to np_random, which
        # dm_control's task random state (a RandomState) cannot take
        env = self._create_env(mode)
        if seed is not None:
            env.reset(seed=seed)
            env.action_space.seed(seed)
        return env


class GymEnvFactory(DMCEnvFactory):
    """A gymnasium task (``Hopper-v5``, ``Pendulum-v1``) made and seeded as :class:`DMCEnvFactory`."""

    def _create_env(self, mode: EnvMode) -> gym.Env:
        return make_gym_env(self.task)


def namespace_with(
    parser: argparse.ArgumentParser, base: list[str], overrides: dict[str, Any]
) -> argparse.Namespace:
    """The parser's flags for ``base`` with ``overrides`` (attribute names) set, ``device`` added."""
    args = parser.parse_args(base)
    for name, value in overrides.items():
        if not hasattr(args, name):
            raise ValueError(f"no setting named {name!r}; known: {', '.join(sorted(vars(args)))}")
        setattr(args, name, value)
    return args


def set_fields(params: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The dataclass fields of ``params`` that are not None (None keeps the default)."""
    return {
        f.name: getattr(params, f.name)
        for f in fields(params)
        if f.name not in skip and getattr(params, f.name) is not None
    }


class Spaces:
    """What the factories' ``build_*`` functions read of an env: its two spaces."""

    def __init__(self, envs: Environments) -> None:
        self.observation_space = envs.get_observation_space()
        self.action_space = envs.get_action_space()


# --- QMLE -------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class QMLEParams:
    """QMLE's settings for the high-level API; None keeps the preset's value.

    :param preset: ``"efficient"`` (ours, for ~100k env steps; the default) or ``"paper"``
        (Table 1, the paper's agent); see
        :mod:`tianshou_qmle.experiment.presets`.
    :param lr: Adam step size of Q and the predictors (Table 1: 5e-4).
    :param gamma: discount factor.
    :param n_step: n-step return horizon.
    :param m_target: fresh candidates per TD target (the stored prior is added on top).
    :param m_greedy: candidates per action.
    :param ratios: proposal shares (uniform, delta, categorical).
    :param target_update_env_steps: env steps between hard target copies (converted to updates
        with the training config's updates per env step).
    :param hidden: stream width.
    :param eps: ε of ε-greedy exploration.
    :param uniform_grid_share: share of uniform samples on the bang-off-bang grid.
    :param uniform_replay: uniform instead of prioritized replay.
    :param alpha: priority exponent.
    :param beta: importance-sampling exponent.
    :param scoring_dtype: ``"auto"``, ``"float32"`` or ``"bfloat16"``.
    :param compile_scoring: ``torch.compile`` the candidate-scoring kernel.
    """

    preset: Literal["paper", "efficient"] = DEFAULT_QMLE_PRESET
    lr: float | None = None
    gamma: float | None = None
    n_step: int | None = None
    m_target: int | None = None
    m_greedy: int | None = None
    ratios: tuple[float, ...] | None = None
    target_update_env_steps: int | None = None
    hidden: int | None = None
    eps: float | None = None
    uniform_grid_share: float | None = None
    uniform_replay: bool | None = None
    alpha: float | None = None
    beta: float | None = None
    scoring_dtype: str | None = None
    compile_scoring: bool | None = None

    def namespace(self, *, seed: int = 0, device: str = "cpu", num_train_envs: int = 1) -> argparse.Namespace:
        return qmle_factory.qmle_config(
            self.preset,
            seed=seed,
            device=device,
            num_train_envs=num_train_envs,
            **set_fields(self, skip=("preset",)),
        )

    def training_config(self, **overrides: Any) -> OffPolicyTrainingConfig:
        """An ``OffPolicyTrainingConfig`` with the preset's schedule (updates per env step,
        batch size, buffer size), other fields as given."""
        args = self.namespace()
        schedule = {
            "collection_step_num_env_steps": args.update_every,
            "update_step_num_gradient_steps_per_sample": 1.0 / args.update_every,
            "batch_size": args.batch_size,
            "buffer_size": args.buffer_size,
        }
        return OffPolicyTrainingConfig(**{**schedule, **overrides})


class QMLEAlgorithmFactory(OffPolicyAlgorithmFactory):
    """Builds QMLE (and its arg max prior replay buffer) for the experiment's environments."""

    def __init__(
        self,
        params: QMLEParams,
        training_config: OffPolicyTrainingConfig,
        optim_factory: OptimizerFactoryFactory,
    ) -> None:
        super().__init__(training_config, optim_factory)
        self.params = params

    def _args(self, device: Any) -> argparse.Namespace:
        args = self.params.namespace(
            device=str(device), num_train_envs=self.training_config.num_training_envs
        )
        # targets are copied in gradient updates: N⁻ env steps at the trainer's update rate
        updates_per_env_step = self.training_config.update_step_num_gradient_steps_per_sample
        args.target_update_env_steps = max(1, round(args.target_update_env_steps * updates_per_env_step))
        args.update_every = 1
        return args

    def _create_algorithm(self, envs: Environments, device: Any) -> Algorithm:
        return qmle_factory.build_qmle_algorithm(
            self._args(device),
            Spaces(envs),  # type: ignore[arg-type]
            make_optim=self.optim_factory.create_optimizer_factory,
        )

    def create_train_test_collectors(
        self, algorithm: Algorithm, envs: Environments, reset_collectors: bool = True
    ) -> tuple[Collector, Collector]:
        """Tianshou's collectors, with QMLE's prioritized arg max prior buffer instead of a plain one."""
        args = self.params.namespace()
        buffer = make_replay_buffer(
            size=self.training_config.buffer_size,
            num_envs=len(envs.training_envs),
            prioritized=not args.uniform_replay,
            alpha=args.alpha,
            beta=args.beta,
            action_space=envs.get_action_space(),
        )
        training: Collector[CollectStats] = Collector(
            algorithm, envs.training_envs, buffer, exploration_noise=True
        )
        test: Collector[CollectStats] = Collector(algorithm, envs.test_envs)
        if reset_collectors:
            training.reset()
            test.reset()
        return training, test


class QMLEExperimentBuilder(OffPolicyExperimentBuilder):
    """Tianshou's experiment builder for QMLE; ``with_qmle_params`` sets :class:`QMLEParams`."""

    def __init__(
        self,
        env_factory: EnvFactory,
        experiment_config: ExperimentConfig | None = None,
        training_config: OffPolicyTrainingConfig | None = None,
    ) -> None:
        super().__init__(env_factory, experiment_config, training_config)
        self._params = QMLEParams()

    def with_qmle_params(self, params: QMLEParams) -> QMLEExperimentBuilder:
        self._params = params
        return self

    def _create_algorithm_factory(self) -> QMLEAlgorithmFactory:
        return QMLEAlgorithmFactory(self._params, self._training_config, self._get_optim_factory())


# --- IQ ---------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class IQParams:
    """IQ's and M-IQ's settings for the high-level API; None keeps the command's default
    (``tianshou-qmle train mujoco-iq --help``).

    :param algo: ``"iq"`` (α = 0) or ``"miq"`` (α = ``alpha``, 0.9 by default).
    :param temperature_scheme: ``"reward"`` (the default: τ = ``temperature_relative`` × running
        mean |r|), ``"fixed"`` (``temperature``; 0.01 is the paper's) or ``"entropy"`` (τ holds π's
        entropy at ``target_entropy_share`` of its maximum).
    :param probability_floor: ε of the multicategorical policy, (1 − ε)·softmax + ε/n per dimension
        (ours; 0 is the paper's policy).
    :param sample_with_floor: act with the floored policy (True) or the softmax alone.
    :param twin: train a second (π, V) pair and bootstrap from the smaller target value (ours).
    :param max_grad_norm: clip the gradient norm of the IQ loss (the paper does not clip).
    """

    algo: Literal["iq", "miq"] = "miq"
    temperature_scheme: str | None = None
    temperature: float | None = None
    target_entropy_share: float | None = None
    temperature_relative: float | None = None
    alpha: float | None = None
    num_bins: int | None = None
    policy_type: str | None = None
    lr: float | None = None
    munchausen_clip: float | None = None
    polyak: float | None = None
    gamma: float | None = None
    hidden_sizes: tuple[int, ...] | None = None
    probability_floor: float | None = None
    sample_with_floor: bool | None = None
    twin: bool | None = None
    max_grad_norm: float | None = None

    def namespace(self, *, device: str = "cpu") -> argparse.Namespace:
        parser = argparse.ArgumentParser()
        iq_factory.add_agent_arguments(parser)
        args = namespace_with(parser, ["--algo", self.algo], set_fields(self, skip=("algo",)))
        args.device = device
        return args


class IQAlgorithmFactory(OffPolicyAlgorithmFactory):
    def __init__(
        self,
        params: IQParams,
        training_config: OffPolicyTrainingConfig,
        optim_factory: OptimizerFactoryFactory,
    ) -> None:
        super().__init__(training_config, optim_factory)
        self.params = params

    def _create_algorithm(self, envs: Environments, device: Any) -> Algorithm:
        return iq_factory.build_iq(
            self.params.namespace(device=str(device)),
            Spaces(envs),  # type: ignore[arg-type]
            make_optim=self.optim_factory.create_optimizer_factory,
        )

    def create_train_test_collectors(
        self, algorithm: Algorithm, envs: Environments, reset_collectors: bool = True
    ) -> tuple[Collector, Collector]:
        return plain_collectors(algorithm, envs, self.training_config, reset_collectors)


class IQExperimentBuilder(OffPolicyExperimentBuilder):
    """Tianshou's experiment builder for IQ and M-IQ; ``with_iq_params`` sets :class:`IQParams`."""

    def __init__(
        self,
        env_factory: EnvFactory,
        experiment_config: ExperimentConfig | None = None,
        training_config: OffPolicyTrainingConfig | None = None,
    ) -> None:
        super().__init__(env_factory, experiment_config, training_config)
        self._params = IQParams()

    def with_iq_params(self, params: IQParams) -> IQExperimentBuilder:
        self._params = params
        return self

    def _create_algorithm_factory(self) -> IQAlgorithmFactory:
        return IQAlgorithmFactory(self._params, self._training_config, self._get_optim_factory())


# --- SAVO -------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class SAVOParams:
    """SAVO-TD3's settings for the high-level API; None keeps the command's default (Table 3's
    MuJoCo column, ``tianshou-qmle train restricted-savo --help``)."""

    list_length: int | None = None
    summariser: str | None = None
    summary_dim: int | None = None
    actor_lr: float | None = None
    critic_lr: float | None = None
    surrogate_lr: float | None = None
    gamma: float | None = None
    tau: float | None = None
    update_actor_freq: int | None = None
    proposal_noise_sigma: float | None = None
    max_grad_norm: float | None = None
    surrogate_critics: str | None = None
    eps_decay_steps: int | None = None
    actor_hidden_sizes: tuple[int, ...] | None = None
    critic_hidden_sizes: tuple[int, ...] | None = None

    def namespace(self, *, device: str = "cpu") -> argparse.Namespace:
        parser = argparse.ArgumentParser()
        savo_factory.add_agent_arguments(parser, defaults=savo_factory.MUJOCO_DEFAULTS, with_td3=False)
        args = namespace_with(parser, [], set_fields(self))
        args.device = device
        return args


class SAVOAlgorithmFactory(OffPolicyAlgorithmFactory):
    def __init__(
        self,
        params: SAVOParams,
        training_config: OffPolicyTrainingConfig,
        optim_factory: OptimizerFactoryFactory,
    ) -> None:
        super().__init__(training_config, optim_factory)
        self.params = params

    def _create_algorithm(self, envs: Environments, device: Any) -> Algorithm:
        args = self.params.namespace(device=str(device))
        savo_factory.validate_args(args)
        return savo_factory.build_savo(
            args,
            Spaces(envs),  # type: ignore[arg-type]
            make_optim=self.optim_factory.create_optimizer_factory,
        )

    def create_train_test_collectors(
        self, algorithm: Algorithm, envs: Environments, reset_collectors: bool = True
    ) -> tuple[Collector, Collector]:
        return plain_collectors(algorithm, envs, self.training_config, reset_collectors)


class SAVOExperimentBuilder(OffPolicyExperimentBuilder):
    """Tianshou's experiment builder for SAVO-TD3; ``with_savo_params`` sets :class:`SAVOParams`."""

    def __init__(
        self,
        env_factory: EnvFactory,
        experiment_config: ExperimentConfig | None = None,
        training_config: OffPolicyTrainingConfig | None = None,
    ) -> None:
        super().__init__(env_factory, experiment_config, training_config)
        self._params = SAVOParams()

    def with_savo_params(self, params: SAVOParams) -> SAVOExperimentBuilder:
        self._params = params
        return self

    def _create_algorithm_factory(self) -> SAVOAlgorithmFactory:
        return SAVOAlgorithmFactory(self._params, self._training_config, self._get_optim_factory())


def plain_collectors(
    algorithm: Algorithm, envs: Environments, training_config: OffPolicyTrainingConfig, reset: bool
) -> tuple[Collector, Collector]:
    """Tianshou's collectors over a uniform buffer with an O(1) ``hasnull`` (what the commands use)."""
    buffer = FastNullCheckVectorReplayBuffer(training_config.buffer_size, len(envs.training_envs))
    training: Collector[CollectStats] = Collector(
        algorithm, envs.training_envs, buffer, exploration_noise=True
    )
    test: Collector[CollectStats] = Collector(algorithm, envs.test_envs)
    if reset:
        training.reset()
        test.reset()
    return training, test


__all__ = [
    "DMCEnvFactory",
    "GymEnvFactory",
    "IQAlgorithmFactory",
    "IQExperimentBuilder",
    "IQParams",
    "QMLEAlgorithmFactory",
    "QMLEExperimentBuilder",
    "QMLEParams",
    "SAVOAlgorithmFactory",
    "SAVOExperimentBuilder",
    "SAVOParams",
]
