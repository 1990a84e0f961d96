"""IQ and M-IQ: implicit Q-values (Vieillard et al., "Implicitly Regularized RL with Implicit Q-Values").

Q is never a network of its own: it is *implicit*, ``Q(s, a) = τ ln π_θ(a|s) + V_φ(s)`` (Eq. 1), so
π_θ is exactly ``softmax(Q/τ)`` and ``V_φ(s) = τ ln Σ_a exp(Q(s, a)/τ)`` whatever the networks are.
:class:`IQ` minimises the single loss of Eq. 2 over the policy and value networks jointly,

    L(θ, φ) = Ê[(r_t + α τ ln π_θ̄(a_t|s_t) + γ V_φ̄(s_{t+1}) − τ ln π_θ(a_t|s_t) − V_φ(s_t))²],

with target copies θ̄, φ̄ tracked by Polyak averaging (§6). In the ideal (tabular, exact) case one
minimisation is one step of IQ-DP (Eq. 3), which produces the same policies as MD-VI(ατ, (1−α)τ)
(Theorem 1): entropy regularisation (1−α)τ and KL regularisation ατ. α = 0 is IQ (entropy only,
soft VI); α > 0 is M-IQ, the Munchausen form of the KL term (α = 0.9 in §6).

Action conventions (what the replay buffer's ``act`` holds, before ``map_action``):

* ``Box`` with the multicategorical policy (§4): each of the d dimensions takes one of n evenly
  spaced values ``-1 + 2j/(n-1)`` of the normalised box [-1, 1]; the buffer stores these *values*,
  and ``map_action`` scales them to the environment's bounds. For ln π the stored values are mapped
  back to bin indices by rounding to the nearest bin, which is exact for every action the policy
  produced. Random warm-up actions (``Collector.collect(random=True)``) are arbitrary points of the
  box; they count as their nearest bin, i.e. the loss treats the transition as if that bin had
  been taken (the environment saw the unrounded action).
* ``Box`` with the Gaussian policy (the §6 ablation): the raw sample; ``map_action`` clips it to
  [-1, 1] and scales it.
* ``Discrete(n)``: the action itself (an integer). The policy is one categorical over the n actions
  and IQ becomes an exact soft-Q (α = 0) or Munchausen (M-DQN-like, α > 0) update, because the
  implicit Q-table ``τ ln π + V`` is available for every action and ``V̄(s') = τ ln Σ exp(Q̄(s', ·)/τ)``
  is exactly the soft value M-DQN computes from its target Q.

Time limits: V̄(s_{t+1}) is masked on *termination* only (``Algorithm.value_mask``), so the loss
bootstraps through truncations (partial-episode bootstrapping).
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Literal, cast

import gymnasium as gym
import numpy as np
import torch
from tianshou.algorithm.algorithm_base import (
    LaggedNetworkPolyakUpdateAlgorithmMixin,
    OffPolicyAlgorithm,
    Policy,
    TrainingStats,
)
from tianshou.algorithm.optim import AdamOptimizerFactory, OptimizerFactory
from tianshou.data import Batch, ReplayBuffer
from tianshou.data.batch import BatchProtocol
from tianshou.data.types import (
    ActStateBatchProtocol,
    BatchWithReturnsProtocol,
    ObsBatchProtocol,
    RolloutBatchProtocol,
)
from torch import nn

from tianshou_qmle.algorithm.qmle import next_observations
from tianshou_qmle.net.action_codec import check_flat_bounded_box
from tianshou_qmle.net.iq import GaussianActor, IQActor, IQNetwork, MultiCategoricalActor
from tianshou_qmle.net.savo import reinitialise
from tianshou_qmle.validation import CheckedUpdateMixin, check_observation_batch

SUPPORTED_ACTION_SPACES = "gymnasium.spaces.Box (flat, finite bounds) and gymnasium.spaces.Discrete"


def bin_values(num_bins: int) -> np.ndarray:
    """The n evenly spaced values ``-1 + 2j/(n-1)``, j = 0 … n-1, of one dimension of [-1, 1] (§4)."""
    if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 2:
        raise ValueError(f"num_bins must be an integer ≥ 2, got {num_bins!r}")
    return np.linspace(-1.0, 1.0, num_bins).astype(np.float32)


def bins_to_actions(index: torch.Tensor, num_bins: int) -> torch.Tensor:
    """Bin indices → their values in [-1, 1], exactly the float32 entries of :func:`bin_values`."""
    return torch.as_tensor(bin_values(num_bins), device=index.device)[index.long()]


def actions_to_bins(act: torch.Tensor, num_bins: int) -> torch.Tensor:
    """Actions in [-1, 1] → index of the nearest bin (values outside the box go to the end bins).

    Exact for bin values (the round trip with :func:`bins_to_actions` is the identity); any other
    action, e.g. a uniformly random warm-up action, maps to its nearest bin.
    """
    position = (act.to(torch.float64).clamp(-1.0, 1.0) + 1.0) * ((num_bins - 1) / 2.0)
    return position.round().long().clamp_(0, num_bins - 1)


def check_iq_action_space(action_space: gym.Space) -> gym.spaces.Box | gym.spaces.Discrete:
    """Accept a flat ``Box`` with finite bounds or a ``Discrete``; anything else is a ValueError."""
    if isinstance(action_space, gym.spaces.Discrete):
        return action_space
    if not isinstance(action_space, gym.spaces.Box):
        raise ValueError(
            f"action_space {action_space!r} is not supported: IQ accepts {SUPPORTED_ACTION_SPACES}"
        )
    return check_flat_bounded_box(action_space)  # the bins span the bounds


class IQPolicy(Policy):
    """The IQ agent's policy π_θ (and its value network V_φ, which acting does not use).

    Acts by sampling π_θ(·|s) while ``is_within_training_step`` is set (Tianshou's trainer sets it
    while collecting training data); otherwise by its mode (the per-dimension arg max for the
    multicategorical policy) when ``deterministic_eval`` is True, the default. Sampling is the
    only exploration; there is no added noise. Acting runs under ``torch.no_grad``.

    :param model: the policy and value networks (see
        :func:`~tianshou_qmle.net.iq.build_iq_network`). For ``Discrete(n)`` its actor must be a
        :class:`~tianshou_qmle.net.iq.MultiCategoricalActor` with ``act_dim=1, num_bins=n``.
    :param action_space: the environment's action space: a flat ``Box`` with finite bounds (the
        policy acts in the normalised box [-1, 1]^d) or a ``Discrete``.
    :param observation_space: the environment's observation space, optional; checked against the
        model's input size when given.
    :param deterministic_eval: act by the mode outside training steps (True, as Tianshou's SAC);
        False samples there too.
    :param action_scaling: scale [-1, 1] actions to the ``Box`` bounds in ``map_action``; None
        means True for ``Box`` and False for ``Discrete`` (which has nothing to scale).
    :param action_bound_method: bounding before scaling; "clip" (the default for ``Box``) is a
        no-op for the multicategorical policy and clips the Gaussian's samples. None for
        ``Discrete``.
    """

    def __init__(
        self,
        *,
        model: IQNetwork,
        action_space: gym.Space,
        observation_space: gym.Space | None = None,
        deterministic_eval: bool = True,
        action_scaling: bool | None = None,
        action_bound_method: Literal["clip"] | None = "clip",
    ) -> None:
        space = check_iq_action_space(action_space)
        is_box = isinstance(space, gym.spaces.Box)
        if action_bound_method not in ("clip", None):
            raise ValueError(
                f"action_bound_method must be 'clip' or None for IQ, got {action_bound_method!r} "
                f"(IQ's actions are bin values or Gaussian samples, not pre-tanh outputs)"
            )
        if action_scaling is None:
            action_scaling = is_box
        super().__init__(
            action_space=action_space,
            observation_space=observation_space,
            action_scaling=action_scaling,
            action_bound_method=action_bound_method if is_box else None,
        )
        if not isinstance(model, IQNetwork):
            raise TypeError(f"model must be an IQNetwork, got {type(model).__name__}")
        actor = model.actor
        if is_box:
            assert isinstance(space, gym.spaces.Box)  # for mypy: is_box says so
            if space.shape[0] != actor.act_dim:
                raise ValueError(
                    f"action_space has {space.shape[0]} dimensions but the actor's act_dim is "
                    f"{actor.act_dim}"
                )
            if not isinstance(actor, MultiCategoricalActor | GaussianActor):
                raise TypeError(
                    f"a Box action space needs a MultiCategoricalActor or a GaussianActor, got "
                    f"{type(actor).__name__}"
                )
        else:
            n = int(cast(gym.spaces.Discrete, space).n)
            if not (isinstance(actor, MultiCategoricalActor) and actor.act_dim == 1 and actor.num_bins == n):
                raise ValueError(
                    f"a Discrete({n}) action space needs a MultiCategoricalActor with act_dim=1 and "
                    f"num_bins={n} (build_iq_network(act_dim=1, num_bins={n})), got "
                    f"{type(actor).__name__} with act_dim={actor.act_dim}"
                    + (f", num_bins={actor.num_bins}" if isinstance(actor, MultiCategoricalActor) else "")
                )
        if observation_space is not None:
            obs_dim = gym.spaces.flatdim(observation_space)
            if obs_dim != model.obs_dim:
                raise ValueError(
                    f"observation_space flattens to {obs_dim} values but the model expects "
                    f"obs_dim={model.obs_dim}"
                )
        self.model = model
        self.deterministic_eval = bool(deterministic_eval)
        self._discrete_start = (
            0 if is_box else int(cast(gym.spaces.Discrete, space).start)
        )

    # --- conventions -----------------------------------------------------------------------------

    @property
    def actor(self) -> IQActor:
        return self.model.actor

    @property
    def is_discrete(self) -> bool:
        return isinstance(self.action_space, gym.spaces.Discrete)

    @property
    def is_multicategorical(self) -> bool:
        return isinstance(self.model.actor, MultiCategoricalActor)

    @property
    def num_bins(self) -> int | None:
        """n for the multicategorical policy (the number of actions for ``Discrete``), else None."""
        actor = self.model.actor
        return actor.num_bins if isinstance(actor, MultiCategoricalActor) else None

    def observation_tensor(self, obs: Any) -> torch.Tensor:
        """A batch of observations as a finite ``[B, obs_dim]`` tensor in the model's dtype and
        device; a ``ValueError`` for an unbatched observation, another width, or NaN/inf."""
        if isinstance(obs, torch.Tensor):
            obs_t = obs.to(device=self.model.device, dtype=self.model.dtype)
        else:
            obs_t = torch.as_tensor(np.asarray(obs), device=self.model.device, dtype=self.model.dtype)
        return check_observation_batch(obs_t, self.model.obs_dim)

    def action_representation(self, act: Any) -> torch.Tensor:
        """Stored actions (the buffer's ``act``) → what the actor's ``log_prob`` takes.

        Bin indices ``[B, d]`` for the multicategorical policy (nearest bin, see the module
        docstring), ``[B, 1]`` indices for ``Discrete``, the raw ``[B, d]`` values for the Gaussian.
        """
        device = self.model.device
        act_t = act if isinstance(act, torch.Tensor) else torch.as_tensor(np.asarray(act))
        act_t = act_t.to(device)
        if self.is_discrete:
            n = cast(int, self.num_bins)
            index = act_t.long().reshape(-1, 1) - self._discrete_start
            if bool(((index < 0) | (index >= n)).any()):
                raise ValueError(
                    f"discrete actions must lie in [{self._discrete_start}, "
                    f"{self._discrete_start + n - 1}], got {act_t.flatten()[:8].tolist()}"
                )
            return index
        act_t = act_t.reshape(act_t.shape[0], -1)
        if self.is_multicategorical:
            return actions_to_bins(act_t, cast(int, self.num_bins))
        return act_t.to(self.model.dtype)

    def representation_to_action(self, rep: torch.Tensor) -> np.ndarray:
        """The actor's representation → the action the buffer stores (before ``map_action``)."""
        if self.is_discrete:
            return (rep.reshape(-1) + self._discrete_start).cpu().numpy().astype(np.int64)
        if self.is_multicategorical:
            return bins_to_actions(rep, cast(int, self.num_bins)).cpu().numpy()
        return rep.to(torch.float32).cpu().numpy()

    # --- acting ----------------------------------------------------------------------------------

    def forward(
        self,
        batch: ObsBatchProtocol,
        state: dict | BatchProtocol | np.ndarray | None = None,
        **kwargs: Any,
    ) -> ActStateBatchProtocol:
        """Sample π_θ(·|s) within training steps; its mode otherwise (if ``deterministic_eval``)."""
        with torch.no_grad():
            params = self.model.actor(self.observation_tensor(batch.obs))
            if self.deterministic_eval and not self.is_within_training_step:
                rep = self.model.actor.mode(params)
            else:
                rep = self.model.actor.sample(params)
        return cast(ActStateBatchProtocol, Batch(act=self.representation_to_action(rep), state=state))

    def log_prob(self, obs: Any, act: Any) -> torch.Tensor:
        """ln π_θ(a|s) of stored actions ``act`` (with gradient), ``[B]``."""
        actor = self.model.actor
        return actor.log_prob(actor(self.observation_tensor(obs)), self.action_representation(act))


PAPER_TEMPERATURE = 0.01
"""τ of §6 on MuJoCo (0.001 on Adroit): the paper's setting, in reward units."""


class Temperature(nn.Module, ABC):
    """IQ's temperature τ, fixed or adapted during training.

    τ is in reward units: the implicit advantage τ ln π competes with rewards and values, so one
    fixed τ suits only tasks of one reward scale (§6 tunes it per domain). Subclasses adapt it;
    all are modules, so their state is in the algorithm's checkpoint.
    """

    optim_factory: OptimizerFactory | None = None
    """The optimizer of the temperature's parameters, if it has any (the algorithm builds it, so
    its state is in the algorithm's checkpoint)."""

    @property
    @abstractmethod
    def value(self) -> float:
        """τ now."""

    def loss(self, *, entropy: torch.Tensor, reward: torch.Tensor) -> torch.Tensor | None:
        """Adapt τ after an update from the batch's policy ``entropy`` ``[B]`` and ``reward`` ``[B]``:
        update running statistics in place, or return a loss for ``optim_factory``'s optimizer."""
        return None


def check_temperature(value: float, *, name: str = "temperature") -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(
            f"{name} (τ) must be a finite number > 0, got {value} "
            f"(the paper uses 0.01 on MuJoCo, 0.001 on Adroit)"
        )
    return value


class FixedTemperature(Temperature):
    """A constant τ (§6: 0.01 on MuJoCo, the paper's setting)."""

    tau: torch.Tensor  # registered buffer

    def __init__(self, value: float = PAPER_TEMPERATURE) -> None:
        super().__init__()
        self.register_buffer("tau", torch.tensor(check_temperature(value), dtype=torch.float64))

    @property
    def value(self) -> float:
        return float(self.tau)


class EntropyTargetTemperature(Temperature):
    """τ adapted to hold the policy's entropy at a target, as SAC adapts its α (Haarnoja et al.,
    2018b). Not in the IQ paper, which names adaptive τ as future work (§7).

    Each update takes one optimizer step on ``ln τ`` for the loss ``ln τ · (H − H̄)``: τ grows while
    the entropy H of π is below the target H̄ and shrinks while it is above. Since π = softmax(Q/τ)
    for the implicit Q, a larger τ spreads π over more actions, so the target entropy fixes how
    greedy the sampled behaviour is whatever the reward scale.

    :param target_entropy: H̄ in nats, summed over action dimensions (the units of the actor's
        ``entropy``). For the multicategorical policy with n bins per dimension the maximum is
        d·ln n; :func:`multicategorical_target_entropy` gives a share of it.
    :param initial: τ at the start (1.0).
    :param optim: the optimizer of ``ln τ`` (Adam, lr 3e-4 as SAC's α).
    """

    def __init__(
        self, *, target_entropy: float, initial: float = 1.0, optim: OptimizerFactory | None = None
    ) -> None:
        super().__init__()
        if not math.isfinite(target_entropy):
            raise ValueError(f"target_entropy must be finite, got {target_entropy}")
        self.target_entropy = float(target_entropy)
        self.log_tau = nn.Parameter(torch.tensor(math.log(check_temperature(initial, name="initial"))))
        self.optim_factory = optim or AdamOptimizerFactory(lr=3e-4)

    @property
    def value(self) -> float:
        return float(self.log_tau.detach().exp())

    def loss(self, *, entropy: torch.Tensor, reward: torch.Tensor) -> torch.Tensor:
        return self.log_tau * (entropy.detach().mean() - self.target_entropy)


def multicategorical_target_entropy(*, act_dim: int, num_bins: int, share: float) -> float:
    """``share`` of the multicategorical policy's maximum entropy d·ln n, in nats."""
    if not 0.0 < share < 1.0:
        raise ValueError(f"the target entropy share must be in (0, 1), got {share}")
    return share * act_dim * math.log(num_bins)


class RewardScaledTemperature(Temperature):
    """τ = ``relative`` × a running mean of |r|: the paper's fixed τ, made relative to the reward scale.

    Not in the IQ paper. The running mean is an exponential average over the replayed batches'
    mean |r| (the first batch sets it), so τ follows the scale the agent is learning from.

    :param relative: τ per unit of mean |r|; 0.1 gives τ ≈ 1 on a task paying about 9 per step
        (InvertedDoublePendulum, where τ = 1 learned and the paper's τ = 0.01 collapsed π).
    :param momentum: weight of each new batch in the running mean (0.01).
    :param floor: smallest reward scale used, so τ > 0 on tasks that pay nothing yet.
    """

    reward_scale: torch.Tensor  # registered buffer

    def __init__(self, *, relative: float = 0.1, momentum: float = 0.01, floor: float = 1e-3) -> None:
        super().__init__()
        self.relative = check_temperature(relative, name="relative")
        if not 0.0 < momentum <= 1.0:
            raise ValueError(f"momentum must be in (0, 1], got {momentum}")
        self.momentum = float(momentum)
        self.floor = check_temperature(floor, name="floor")
        self.register_buffer("reward_scale", torch.tensor(float("nan"), dtype=torch.float64))

    @property
    def value(self) -> float:
        scale = float(self.reward_scale)
        return self.relative * (1.0 if math.isnan(scale) else max(scale, self.floor))

    def loss(self, *, entropy: torch.Tensor, reward: torch.Tensor) -> None:
        batch_scale = float(reward.detach().abs().mean())
        if math.isnan(float(self.reward_scale)):
            self.reward_scale.fill_(batch_scale)
        else:
            self.reward_scale.mul_(1.0 - self.momentum).add_(self.momentum * batch_scale)
        return None


@dataclass(kw_only=True)
class IQTrainingStats(TrainingStats):
    loss: float
    """Eq. 2: the (importance-weighted) mean squared residual."""
    td_abs_mean: float
    """Mean |residual| of the batch (the new priorities for prioritized replay)."""
    target_mean: float
    """Mean regression target r + α[τ ln π̄(a|s)] + γ V̄(s')."""
    value_mean: float
    """Mean V_φ(s_t)."""
    munchausen_mean: float
    """Mean Munchausen term α[τ ln π̄(a_t|s_t)] (after clipping, if enabled); 0 for IQ (α = 0)."""
    entropy: float
    """Mean entropy of π_θ(·|s_t) (summed over action dimensions)."""
    temperature: float
    """τ used in this update (before the temperature's own update)."""


class IQ(CheckedUpdateMixin, OffPolicyAlgorithm[IQPolicy], LaggedNetworkPolyakUpdateAlgorithmMixin):
    """Implicit Q-values: one loss (Eq. 2) for a policy and a value network, with target copies.

    Each update samples a batch of transitions (s_t, a_t, r_t, s_{t+1}) and

    1. forms the target ``r_t + α[τ ln π_θ̄(a_t|s_t)] + γ·(1 − terminated)·V_φ̄(s_{t+1})`` with the
       target copies π_θ̄, V_φ̄ (truncated transitions bootstrap);
    2. regresses the implicit Q-value ``τ ln π_θ(a_t|s_t) + V_φ(s_t)`` (Eq. 1) on it, one Adam step
       on θ and φ together (importance-weighted under prioritized replay, |residual| as priority);
    3. moves θ̄ and φ̄ towards θ and φ by Polyak averaging with rate λ.

    :param policy: the :class:`IQPolicy`; its model holds both networks.
    :param optim: optimizer factory for the policy *and* value networks (one loss, one optimizer;
        Adam with lr 3e-4 as SAC in §6).
    :param temperature: τ, the scale of the implicit Q (Eq. 1) and of the regularisation, in
        reward units: a float > 0 for a fixed τ (0.01 on MuJoCo, 0.001 on Adroit in §6, the
        paper's setting; Fig. 4 shows performance is sensitive to it), or a :class:`Temperature`
        that adapts it: :class:`EntropyTargetTemperature` (holds π's entropy, as SAC's α) or
        :class:`RewardScaledTemperature` (τ relative to the reward scale). A τ that is small
        against the rewards makes π nearly deterministic within a thousand updates, and since
        sampling π is IQ's only exploration, IQ then explores no more than greedy DQN.
    :param alpha: α ∈ [0, 1), the Munchausen coefficient: 0 gives IQ (entropy regularisation τ),
        α > 0 gives M-IQ, MD-VI with KL weight ατ and entropy weight (1−α)τ (Theorem 1). 0.9 in §6.
    :param polyak: λ ∈ (0, 1], the target networks' Polyak rate θ̄ ← (1−λ)θ̄ + λθ (0.005 as SAC,
        §6). 1 copies the networks after every update. Stored in ``self.tau`` by Tianshou's
        mixin; not to be confused with the temperature τ.
    :param gamma: discount factor γ (0.99).
    :param munchausen_clip: None (default) uses Eq. 2 as written. A negative l₀ clips the term
        as M-DQN does, ``α·clip(τ ln π̄(a_t|s_t), l₀, 0)`` (M-DQN uses l₀ = −1). Eq. 2 has no clip;
        it only matters where π̄ gives the stored action very little mass (e.g. random warm-up
        actions under a peaked policy).
    :param max_grad_norm: clip the gradient norm of each update; None (the paper) disables it.
    :param twin: ours, not in the paper. False (default, the paper) trains one (π, V) pair. True
        trains a second pair ``twin_model``, initialised independently, on the same transitions,
        each with its own target copies and Munchausen term, and bootstraps both from
        ``min(V̄₁, V̄₂)(s_{t+1})``: the clipped double-Q of TD3 and SAC, since V of the implicit
        Q is a soft maximum over all n^d joint actions and its estimation errors add up over the
        action dimensions. The policy acts with the first pair; an update costs about twice as
        much. Measured on Walker2d-v5 (seed 0, 100k env steps) it did not help: 123 against 158,
        V barely lower (``docs/iq.md``); kept for experiments.
    """

    def __init__(
        self,
        *,
        policy: IQPolicy,
        optim: OptimizerFactory,
        temperature: float | Temperature = PAPER_TEMPERATURE,
        alpha: float = 0.9,
        polyak: float = 0.005,
        gamma: float = 0.99,
        munchausen_clip: float | None = None,
        max_grad_norm: float | None = None,
        twin: bool = False,
    ) -> None:
        if not isinstance(policy, IQPolicy):
            raise TypeError(f"policy must be an IQPolicy, got {type(policy).__name__}")
        if isinstance(temperature, bool) or not isinstance(temperature, int | float | Temperature):
            raise TypeError(
                f"temperature must be a float > 0 or a Temperature, got {type(temperature).__name__}"
            )
        schedule = temperature if isinstance(temperature, Temperature) else FixedTemperature(temperature)
        alpha, polyak, gamma = (float(x) for x in (alpha, polyak, gamma))
        if not 0.0 <= alpha < 1.0:
            raise ValueError(
                f"alpha (α) must be in [0, 1), got {alpha}: 0 gives IQ, 0 < α < 1 gives M-IQ "
                f"(0.9 in the paper)"
            )
        if not 0.0 < polyak <= 1.0:
            raise ValueError(f"polyak (λ) must be in (0, 1], got {polyak} (0.005 as SAC)")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        if munchausen_clip is not None and not (np.isfinite(munchausen_clip) and munchausen_clip < 0.0):
            raise ValueError(
                f"munchausen_clip (l₀) must be None (no clipping, Eq. 2) or a finite number < 0 "
                f"(M-DQN uses -1), got {munchausen_clip}"
            )
        super().__init__(policy=policy)
        LaggedNetworkPolyakUpdateAlgorithmMixin.__init__(self, tau=polyak)
        self.temperature_schedule = schedule
        """τ and how it adapts; a submodule, so its state is in checkpoints."""
        self.temperature_optim = (
            self._create_optimizer(schedule, schedule.optim_factory)
            if schedule.optim_factory is not None else None
        )
        self.alpha = alpha
        self.gamma = gamma
        self.munchausen_clip = None if munchausen_clip is None else float(munchausen_clip)
        if not isinstance(twin, bool):
            raise TypeError(f"twin must be a bool, got {type(twin).__name__}")
        model = policy.model
        self.twin_model: IQNetwork | None = (
            cast(IQNetwork, reinitialise(copy.deepcopy(model))) if twin else None
        )
        """The second (π, V) pair when ``twin`` is True (trained, never acting), else None."""
        trained = model if self.twin_model is None else nn.ModuleList([model, self.twin_model])
        self.optim = self._create_optimizer(trained, optim, max_grad_norm=max_grad_norm)
        self.actor_old = self._add_lagged_network(model.actor)
        """π_θ̄: the target policy (its ``forward`` gives the distribution parameters)."""
        self.value_old = self._add_lagged_network(model.value)
        """V_φ̄: the target value network."""
        self.twin_actor_old: nn.Module | None = None
        self.twin_value_old: nn.Module | None = None
        if self.twin_model is not None:
            self.twin_actor_old = self._add_lagged_network(self.twin_model.actor)
            self.twin_value_old = self._add_lagged_network(self.twin_model.value)

    @property
    def temperature(self) -> float:
        """τ now."""
        return self.temperature_schedule.value

    @property
    def polyak(self) -> float:
        """λ, the Polyak rate of the target copies (Tianshou's mixin keeps it as ``self.tau``)."""
        return float(self.tau)

    @property
    def is_munchausen(self) -> bool:
        """True for M-IQ (α > 0)."""
        return self.alpha > 0.0

    # --- implicit Q (Eq. 1) ---------------------------------------------------------------------

    def implicit_q(self, obs: Any, act: Any) -> torch.Tensor:
        """Q(s, a) = τ ln π_θ(a|s) + V_φ(s) for stored-convention actions ``act``, ``[B]``."""
        model = self.policy.model
        obs_t = self.policy.observation_tensor(obs)
        rep = self.policy.action_representation(act)
        return self.temperature * model.actor.log_prob(model.actor(obs_t), rep) + model.value(obs_t)

    def implicit_q_values(self, obs: Any) -> torch.Tensor:
        """The whole implicit Q-table ``[B, n]`` of a one-dimensional categorical policy.

        Available for ``Discrete(n)`` (the exact soft-Q table) and for one-dimensional ``Box``
        spaces with the multicategorical policy (one column per bin). For d > 1 the joint table
        has n^d entries: use :meth:`implicit_q` on the actions you need.
        """
        actor = self.policy.model.actor
        if not isinstance(actor, MultiCategoricalActor) or actor.act_dim != 1:
            raise ValueError(
                "implicit_q_values needs a one-dimensional categorical policy (Discrete(n) or a "
                "1-d Box with the multicategorical policy); use implicit_q(obs, act) otherwise"
            )
        obs_t = self.policy.observation_tensor(obs)
        log_pi = actor.log_policy(actor(obs_t))[:, 0, :]
        return self.temperature * log_pi + self.policy.model.value(obs_t).unsqueeze(-1)

    # --- the loss (Eq. 2) -----------------------------------------------------------------------

    def _target_value(self, buffer: ReplayBuffer, indices: np.ndarray) -> torch.Tensor:
        """V_φ̄(s_{t+1}) for the transitions at ``indices`` (masked by ``compute_nstep_return``);
        with ``twin``, the smaller of the two target values."""
        obs_next = self.policy.observation_tensor(next_observations(buffer, indices))
        value = self.value_old(obs_next)
        if self.twin_value_old is not None:
            value = torch.minimum(value, self.twin_value_old(obs_next))
        return value

    def _preprocess_batch(
        self,
        batch: RolloutBatchProtocol,
        buffer: ReplayBuffer,
        indices: np.ndarray,
    ) -> BatchWithReturnsProtocol:
        """Add ``returns = r_t + γ·(1 − terminated)·V_φ̄(s_{t+1})``.

        Tianshou's ``compute_nstep_return`` applies ``value_mask`` (``~terminated``), so truncated
        transitions bootstrap and terminated ones do not. One-step returns, as in Eq. 2.
        """
        return self.compute_nstep_return(
            batch=batch,
            buffer=buffer,
            indices=indices,
            target_q_fn=self._target_value,
            gamma=self.gamma,
            n_step=1,
        )

    def munchausen_term(
        self, obs: torch.Tensor, act_rep: torch.Tensor, actor_old: nn.Module | None = None
    ) -> torch.Tensor:
        """α·τ ln π_θ̄(a_t|s_t), clipped to α·[l₀, 0] if ``munchausen_clip`` is set; ``[B]``, no grad.

        ``actor_old`` is the target policy to read (the acting pair's, ``actor_old``, by default).
        """
        if not self.is_munchausen:
            return obs.new_zeros(obs.shape[0])
        actor_old = self.actor_old if actor_old is None else actor_old
        with torch.no_grad():
            scaled_log_pi = self.temperature * self.policy.model.actor.log_prob(actor_old(obs), act_rep)
            if self.munchausen_clip is not None:
                scaled_log_pi = scaled_log_pi.clamp(self.munchausen_clip, 0.0)
            return self.alpha * scaled_log_pi

    def td_target(self, batch: BatchWithReturnsProtocol) -> torch.Tensor:
        """The regression target of Eq. 2, ``[B]``, from a batch that went through preprocessing."""
        obs = self.policy.observation_tensor(batch.obs)
        rep = self.policy.action_representation(batch.act)
        return batch.returns.flatten().to(obs) + self.munchausen_term(obs, rep)

    def compute_loss(self, batch: BatchWithReturnsProtocol) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Eq. 2 on a preprocessed batch: ``(loss, residual, diagnostics)``.

        The residual is ``τ ln π_θ(a|s) + V_φ(s) − target`` per transition; the loss is its
        square averaged with the batch's importance weights (``batch.weight``) if it has any. With
        ``twin`` the second pair's loss, against its own Munchausen term, is added; the residual
        and the diagnostics are the acting pair's.
        """
        obs = self.policy.observation_tensor(batch.obs)
        rep = self.policy.action_representation(batch.act)
        weight = getattr(batch, "weight", None)
        loss, residual, diagnostics = self._pair_loss(
            self.policy.model, self.actor_old, obs, rep, batch.returns, weight
        )
        if self.twin_model is not None:
            twin_loss, _, _ = self._pair_loss(
                self.twin_model, self.twin_actor_old, obs, rep, batch.returns, weight
            )
            loss = loss + twin_loss
        return loss, residual, diagnostics

    def _pair_loss(
        self, model: IQNetwork, actor_old: nn.Module | None, obs: torch.Tensor, rep: torch.Tensor,
        returns: Any, weight: Any,
    ) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Eq. 2 for one (π, V) pair and its target policy ``actor_old``."""
        params = model.actor(obs)
        value = model.value(obs)
        q = self.temperature * model.actor.log_prob(params, rep) + value
        munchausen = self.munchausen_term(obs, rep, actor_old)
        target = torch.as_tensor(returns).flatten().to(q) + munchausen
        residual = q - target
        if weight is None:
            loss = residual.pow(2).mean()
        else:
            weight_t = torch.as_tensor(weight, device=q.device).to(q.dtype).flatten()
            loss = (weight_t * residual.pow(2)).mean()
        diagnostics = {
            "target": target.detach(),
            "value": value.detach(),
            "munchausen": munchausen,
            "entropy": model.actor.entropy(params.detach()),
        }
        return loss, residual, diagnostics

    def _update_with_batch(self, batch: RolloutBatchProtocol) -> IQTrainingStats:
        batch = cast(BatchWithReturnsProtocol, batch)
        temperature = self.temperature
        loss, residual, diag = self.compute_loss(batch)
        self.optim.step(loss)
        self._update_lagged_network_weights()
        temperature_loss = self.temperature_schedule.loss(
            entropy=diag["entropy"], reward=torch.as_tensor(batch.rew).flatten()
        )
        if temperature_loss is not None and self.temperature_optim is not None:
            self.temperature_optim.step(temperature_loss)
        batch.weight = residual.detach().abs()  # new priorities for prioritized buffers
        return IQTrainingStats(
            loss=loss.item(),
            td_abs_mean=batch.weight.mean().item(),
            target_mean=diag["target"].mean().item(),
            value_mean=diag["value"].mean().item(),
            munchausen_mean=diag["munchausen"].mean().item(),
            entropy=diag["entropy"].mean().item(),
            temperature=temperature,
        )


def iq_dp_step(
    reward: np.ndarray,
    transition: np.ndarray,
    log_policy: np.ndarray,
    value: np.ndarray,
    *,
    temperature: float,
    alpha: float,
    gamma: float,
) -> tuple[np.ndarray, np.ndarray]:
    """One exact IQ-DP(α, τ) iteration on a finite MDP (Eq. 3), in closed form.

    Solves ``τ ln π_{k+2} + V_{k+1} = r + ατ ln π_{k+1} + γ P V_k`` with π_{k+2} a distribution:
    with ``y`` the right-hand side, ``V_{k+1}(s) = τ ln Σ_a exp(y(s, a)/τ)`` and
    ``ln π_{k+2} = (y − V_{k+1})/τ``. By Theorem 1 this is MD-VI(ατ, (1−α)τ).

    :param reward: r, ``[S, A]``.
    :param transition: P(s'|s, a), ``[S, A, S]``.
    :param log_policy: ln π_{k+1} (the target policy), ``[S, A]``.
    :param value: V_k (the target value), ``[S]``.
    :return: ``(ln π_{k+2}, V_{k+1})``.
    """
    y = reward + alpha * temperature * log_policy + gamma * transition @ value
    scaled = y / temperature
    top = scaled.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(scaled - top).sum(axis=1))
    return scaled - lse[:, None], temperature * lse


__all__ = [
    "IQ",
    "PAPER_TEMPERATURE",
    "EntropyTargetTemperature",
    "FixedTemperature",
    "IQPolicy",
    "IQTrainingStats",
    "RewardScaledTemperature",
    "Temperature",
    "actions_to_bins",
    "bin_values",
    "bins_to_actions",
    "check_iq_action_space",
    "iq_dp_step",
    "multicategorical_target_entropy",
]
