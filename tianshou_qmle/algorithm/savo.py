"""SAVO: Successive Actors for Value Optimization, on TD3 ("Mitigating Suboptimality of Deterministic
Policy Gradients in Complex Q-functions"; SAVO-TD3 is its Algorithm 1).

:class:`SAVOPolicy` is the maximizer actor μ_M (Eq. 5): it asks μ and the successive actors
ν₁…ν_k for k+1 proposals and executes the one the critic Q values most, scoring all of them in one
batched critic pass. :class:`SAVO` trains it: TD3's twin critics with a clipped double-Q target
taken at μ_M(s') of the *target* actors and critics (no target policy smoothing, §4.3 item 1),
surrogates Ψ̂ᵢ regressed on Ψᵢ (Eq. 7, 8) at the executed action and at νᵢ's proposal, μ ascending Q
(Eq. 3) and each νᵢ ascending its Ψ̂ᵢ (Eq. 9), delayed actor updates and Polyak targets as in TD3.

**Action conventions.** Actors output points u ∈ [-1, 1]^d.

* ``Box`` spaces: u *is* the action, in the normalised box; the buffer's ``act`` holds it and
  ``map_action`` scales it to the env's bounds (Tianshou's ``action_scaling``), as TD3 does.
* ``Discrete(n)`` with ``action_embeddings`` ``[n, d]`` (large discrete action sets, §3.2.1): u is
  mapped affinely onto the embeddings' bounding box, giving a proto-action; a 1-NN lookup turns
  it into an item *before* Q sees it, Q takes the item's embedding, and the policy returns item
  indices (what the buffer stores). The Q-smoothing critic Q̃ (§14.6), trained on proto-actions
  toward Q at their nearest items, gives μ the gradient that the 1-NN step removes; surrogates
  likewise take proto-actions.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, cast

import gymnasium as gym
import numpy as np
import torch
from tianshou.algorithm.algorithm_base import (
    LaggedNetworkPolyakUpdateAlgorithmMixin,
    OffPolicyAlgorithm,
    Policy,
    TArrOrActBatch,
    TrainingStats,
)
from tianshou.algorithm.optim import OptimizerFactory
from tianshou.data import Batch, ReplayBuffer
from tianshou.data.batch import BatchProtocol
from tianshou.data.types import (
    ActStateBatchProtocol,
    BatchWithReturnsProtocol,
    ObsBatchProtocol,
    RolloutBatchProtocol,
)
from tianshou.exploration import BaseNoise, GaussianNoise
from torch import nn

from tianshou_qmle.algorithm.qmle import next_observations
from tianshou_qmle.exploration import EpisodicOUNoise, episode_starts
from tianshou_qmle.net.action_codec import check_flat_bounded_box
from tianshou_qmle.net.savo import (
    SAVOActor,
    SurrogateCritics,
    as_observation_tensor,
    critic_values,
    module_device,
    reinitialise,
)
from tianshou_qmle.search.nearest import NearestNeighbourIndex
from tianshou_qmle.validation import CheckedUpdateMixin, check_observation_batch


def surrogate_targets(q_at_action: torch.Tensor, q_of_previous_proposals: torch.Tensor) -> torch.Tensor:
    """Ψᵢ(s, a; a₍<ᵢ₎) = max{Q(s, a), max_{j<i} Q(s, aⱼ)} for i = 1…k (SAVO Eq. 7).

    :param q_at_action: Q(s, a), shape ``[...]`` (one action for every surrogate) or ``[..., k]``
        (column i-1 is the action scored by Ψᵢ, e.g. νᵢ's own proposal).
    :param q_of_previous_proposals: Q(s, a₀), …, Q(s, a_{k-1}), shape ``[..., k]``: the anchors.
    :return: ``[..., k]``; column i-1 is Ψᵢ. Differentiable in ``q_at_action`` wherever it is the
        larger term (the flat regions pass no gradient, which is why Eq. 8 approximates Ψ).
    """
    anchors = q_of_previous_proposals
    if q_at_action.shape == anchors.shape[:-1]:
        q_at_action = q_at_action.unsqueeze(-1)
    elif q_at_action.shape != anchors.shape:
        raise ValueError(
            f"q_at_action must have shape {tuple(anchors.shape[:-1])} or {tuple(anchors.shape)} to match "
            f"q_of_previous_proposals {tuple(anchors.shape)}, got {tuple(q_at_action.shape)}"
        )
    return torch.maximum(q_at_action, torch.cummax(anchors, dim=-1).values)


@dataclass(frozen=True, kw_only=True)
class NoiseSchedule:
    """ε: a factor on every exploration noise, decayed linearly (Table 3's actor ε rows).

    Table 3 gives ε_start = 1, ε_end = 0.01 and 500K decay steps for MuJoCo (10M for RecSim and
    5M for Mine World) and ε = 0 at evaluation, without saying what ε multiplies; here it scales
    the noise, so ε = 1 means the noise as configured (TD3's σ = 0.1 for the final action).

    :param start: ε at the first exploring env step, ≥ 0.
    :param end: ε after ``decay_steps`` env steps, ≥ 0.
    :param decay_steps: env steps of the linear decay, ≥ 0 (0 jumps straight to ``end``).
    """

    start: float = 1.0
    end: float = 0.01
    decay_steps: int = 500_000

    def __post_init__(self) -> None:
        if not (self.start >= 0.0 and self.end >= 0.0):
            raise ValueError(f"NoiseSchedule start and end must be ≥ 0, got {self.start} and {self.end}")
        steps = self.decay_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"NoiseSchedule decay_steps must be an int ≥ 0, got {self.decay_steps!r}")

    def __call__(self, step: int) -> float:
        if step >= self.decay_steps:
            return self.end
        return self.start + (self.end - self.start) * step / self.decay_steps


TABLE3_NOISE_SCHEDULE = NoiseSchedule(start=1.0, end=0.01, decay_steps=500_000)
"""Table 3, MuJoCo column."""

NEAREST_CHUNK_BYTES = 4 * 2**20
"""Distance-block size for the 1-NN lookups: measured on this 2-core CPU, 1024 proposals against 10,000
45-D items take 39 ms with 4 MiB blocks against 75 ms with one 40 MB block (it stays in cache)."""

SUPPORTED_SPACES = (
    "gymnasium.spaces.Box (flat, finite bounds) or gymnasium.spaces.Discrete with action_embeddings"
)


def check_action_space(action_space: gym.Space, action_embeddings: Any, act_dim: int) -> torch.Tensor | None:
    """Validate the space against the actor and return the embedding table (None for ``Box``)."""
    if isinstance(action_space, gym.spaces.Box):
        if action_embeddings is not None:
            raise ValueError(
                "action_embeddings are only for Discrete action spaces; got them with "
                f"action_space {action_space!r}"
            )
        check_flat_bounded_box(action_space)
        if action_space.shape[0] != act_dim:
            raise ValueError(
                f"action_space has {action_space.shape[0]} dimensions but the actor outputs act_dim={act_dim}"
            )
        return None
    if isinstance(action_space, gym.spaces.Discrete):
        if action_embeddings is None:
            raise ValueError(
                f"a Discrete action_space ({action_space!r}) needs action_embeddings of shape "
                f"[{action_space.n}, d]: actors act in the embedding space and a 1-NN step picks the item"
            )
        # a copy: env tables are read-only arrays
        table = torch.tensor(np.asarray(action_embeddings), dtype=torch.float32)
        if table.ndim != 2 or table.shape[0] != int(action_space.n):
            raise ValueError(
                f"action_embeddings must have shape [n, d] with n = action_space.n = {int(action_space.n)}, "
                f"got shape {tuple(table.shape)}"
            )
        if table.shape[1] != act_dim:
            raise ValueError(
                f"action_embeddings have d = {table.shape[1]} dimensions but the actor outputs "
                f"act_dim={act_dim}"
            )
        if not bool(torch.isfinite(table).all()):
            raise ValueError("action_embeddings must be finite")
        return table
    raise TypeError(f"action_space {action_space!r} is not supported; SAVO accepts {SUPPORTED_SPACES}")


@contextlib.contextmanager
def frozen(*modules: nn.Module | None) -> Iterator[None]:
    """Stop ``modules`` from accumulating weight gradients while only their inputs need one."""
    params = [p for m in modules if m is not None for p in m.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def resolve_noise(noise: BaseNoise | Literal["default"] | None, default: BaseNoise) -> BaseNoise | None:
    if isinstance(noise, str):
        if noise != "default":
            raise ValueError(f"noise must be a BaseNoise, 'default' or None, got {noise!r}")
        return default
    if noise is not None and not isinstance(noise, BaseNoise):
        raise TypeError(f"noise must be a tianshou.exploration.BaseNoise, 'default' or None, got {noise!r}")
    return noise


class MaximizerSelection(NamedTuple):
    """What the maximizer actor (Eq. 5) decided for a batch of k+1 proposals per state."""

    index: torch.Tensor  # type: ignore[assignment]  # shadows tuple.index, as the field name has always done
    """``[B]``: the chosen proposal per state."""
    q: torch.Tensor
    """``[B, k+1]``: the critic's value of every proposal."""
    items: torch.Tensor | None
    """``[B, k+1]``: the proposals' 1-NN items (Discrete), or None (Box)."""
    inputs: torch.Tensor
    """``[B, k+1, d]``: what the critic was queried at (item embeddings for Discrete)."""


class SAVOPolicy(Policy):
    """The maximizer actor μ_M over μ and k successive actors (SAVO Eq. 5, Algorithm 1 "Select Action").

    ``forward`` computes the k+1 proposals, maps them to the critic's action inputs (1-NN items for
    discrete spaces), scores all of them with Q in one ``[B·(k+1)]`` pass and returns the best.
    ``add_exploration_noise`` (called by Tianshou's Collector with ``exploration_noise=True``) follows
    Algorithm 1: it perturbs every proposal (âᵢ = aᵢ + εᵢ), takes the arg max of Q over the perturbed
    proposals, and perturbs the chosen action once more (a = μ_M(s) + ε). Both noises are scaled
    by the ε schedule, which advances with every exploring env step.

    :param actor: the :class:`~tianshou_qmle.net.savo.SAVOActor` (μ, ν₁…ν_k and their summariser).
    :param critic: Q(s, a), called as ``critic(obs [N, o], act [N, d]) -> [N]`` or ``[N, 1]``; the
        maximizer uses it to pick among proposals (the SAVO algorithm trains it as its first critic).
    :param action_space: ``Box`` (flat, finite bounds) or ``Discrete(n)``.
    :param observation_space: the env's observation space, optional.
    :param action_embeddings: ``[n, d]`` item representations, required for ``Discrete(n)`` and
        rejected for ``Box``; d must equal ``actor.act_dim``.
    :param proposal_noise: noise added to every proposal before the arg max ("Add perturbations with
        OU noise" in Algorithm 1). "default" is
        :class:`~tianshou_qmle.exploration.EpisodicOUNoise` with Table 3's θ 0.15 and σ 0.2: one
        process per env, restarted at each episode start, ε scaling its increments (so its spread
        goes as √ε), as in the authors' code. OU was the paper's pick (Fig. 17). None disables it;
        any Tianshou ``BaseNoise`` works (its output is scaled by ε).
    :param exploration_noise: noise added to the chosen action ("a = μ_M(s) + ε"); "default" is
        ``GaussianNoise(sigma=0.1)``, TD3's; None disables it. Both noises act in the normalised
        [-1, 1] actor space and the result is clipped to it.
    :param noise_schedule: the ε factor on both noises (:class:`NoiseSchedule`; Table 3 default).
    :param action_scaling: for ``Box`` spaces, scale [-1, 1] actions to the env's bounds in
        ``map_action`` (keep True unless the env itself is normalised); ignored for ``Discrete``.
    :param action_bound_method: for ``Box`` spaces, "clip" (a no-op: actions are always inside).
    """

    exploration_steps: torch.Tensor  # registered buffers; the embedding ones for Discrete only
    action_embeddings: torch.Tensor
    embedding_low: torch.Tensor
    embedding_high: torch.Tensor

    def __init__(
        self,
        *,
        actor: SAVOActor,
        critic: nn.Module,
        action_space: gym.Space,
        observation_space: gym.Space | None = None,
        action_embeddings: torch.Tensor | np.ndarray | None = None,
        proposal_noise: BaseNoise | Literal["default"] | None = "default",
        exploration_noise: BaseNoise | Literal["default"] | None = "default",
        noise_schedule: NoiseSchedule = TABLE3_NOISE_SCHEDULE,
        action_scaling: bool = True,
        action_bound_method: Literal["clip"] | None = "clip",
    ) -> None:
        if not isinstance(actor, SAVOActor):
            raise TypeError(f"actor must be a SAVOActor, got {type(actor).__name__}")
        if not isinstance(critic, nn.Module):
            raise TypeError(f"critic must be a torch.nn.Module, got {type(critic).__name__}")
        table = check_action_space(action_space, action_embeddings, actor.act_dim)
        discrete = table is not None
        super().__init__(
            action_space=action_space,
            observation_space=observation_space,
            action_scaling=action_scaling and not discrete,
            action_bound_method=None if discrete else action_bound_method,
        )
        if observation_space is not None and gym.spaces.flatdim(observation_space) != actor.obs_dim:
            raise ValueError(
                f"observation_space flattens to {gym.spaces.flatdim(observation_space)} values but the "
                f"actor expects obs_dim={actor.obs_dim}"
            )
        if not isinstance(noise_schedule, NoiseSchedule):
            raise TypeError(f"noise_schedule must be a NoiseSchedule, got {type(noise_schedule).__name__}")
        self.actor = actor
        self.critic = critic
        self.proposal_noise = resolve_noise(proposal_noise, EpisodicOUNoise(sigma=0.2, theta=0.15))
        self.exploration_noise = resolve_noise(exploration_noise, GaussianNoise(sigma=0.1))
        self.noise_schedule = noise_schedule
        self.register_buffer("exploration_steps", torch.zeros((), dtype=torch.long))
        self._nn_index: NearestNeighbourIndex | None = None
        if table is not None:
            device = module_device(actor)
            # not learned and rebuilt from the env: left out of checkpoints
            self.register_buffer("action_embeddings", table.to(device), persistent=False)
            self.register_buffer("embedding_low", table.min(dim=0).values.to(device), persistent=False)
            self.register_buffer("embedding_high", table.max(dim=0).values.to(device), persistent=False)
            self._nn_index = self._build_nn_index()
        self._cached: tuple[Any, torch.Tensor, torch.Tensor] | None = None
        """(the obs batch ``forward`` last saw, its observations, its clean proposals)."""

    # --- representations -------------------------------------------------------------------------

    @property
    def is_discrete(self) -> bool:
        return self._nn_index is not None

    @property
    def num_proposals(self) -> int:
        return self.actor.num_proposals

    @property
    def device(self) -> torch.device:
        return module_device(self.actor)

    def _apply(self, fn: Any, recurse: bool = True) -> SAVOPolicy:
        # keep the 1-NN index on the same device as the embedding buffer after .to(...)
        super()._apply(fn, recurse)
        if self._nn_index is not None:
            self._nn_index = self._build_nn_index()
        return self

    def _build_nn_index(self) -> NearestNeighbourIndex:
        return NearestNeighbourIndex(self.action_embeddings, max_chunk_bytes=NEAREST_CHUNK_BYTES)

    def observation_tensor(self, obs: Any) -> torch.Tensor:
        """A batch of observations as a finite float32 ``[B, obs_dim]`` tensor; a ``ValueError``
        for an unbatched observation, another width, or NaN/inf."""
        if isinstance(obs, torch.Tensor):
            obs_t = obs.to(device=self.device, dtype=torch.float32)
        else:
            obs_t = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=self.device)
        return check_observation_batch(obs_t, self.actor.obs_dim)

    def proposal_representation(self, u: torch.Tensor) -> torch.Tensor:
        """Actor outputs u ∈ [-1, 1]^d → Box: u itself; Discrete: proto-actions in the embeddings' box."""
        if not self.is_discrete:
            return u
        return self.embedding_low + (self.embedding_high - self.embedding_low) * (u + 1.0) / 2.0

    def nearest_items(self, proto: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """1-NN items ``[...]`` and their embeddings ``[..., d]`` for proto-actions ``[..., d]``."""
        assert self._nn_index is not None
        return self._nn_index.lookup(proto.detach())

    def critic_inputs(self, u: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        """What Q is queried at for actor outputs u ``[..., d]``: ``(items or None, action inputs)``.

        Box: ``(None, u)``. Discrete: the 1-NN items of the proto-actions and their embeddings
        (§4.3 item 5: Q only ever sees real items).
        """
        if not self.is_discrete:
            return None, u
        return self.nearest_items(self.proposal_representation(u))

    def executed_representation(self, act: Any) -> torch.Tensor:
        """The critic's action input for buffer actions: Box: ``act`` as float; Discrete: embeddings."""
        if not self.is_discrete:
            return as_observation_tensor(act, self.device)
        items = torch.as_tensor(np.asarray(act), device=self.device).long().reshape(-1)
        return self.action_embeddings[items]

    # --- acting ------------------------------------------------------------------------------------

    def select(
        self, obs: torch.Tensor, proposals: torch.Tensor, critic: nn.Module | None = None
    ) -> MaximizerSelection:
        """The maximizer's choice (Eq. 5) among ``proposals`` ``[B, k+1, d]``, in one critic pass
        (``critic`` or Q)."""
        items, inputs = self.critic_inputs(proposals)
        q = critic_values(critic or self.critic, obs, inputs)
        return MaximizerSelection(index=q.argmax(dim=1), q=q, items=items, inputs=inputs)

    def maximizer_choice(
        self, obs: torch.Tensor, proposals: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(index of μ_M's pick ``[B]``, items ``[B, k+1]`` or None): :meth:`select` without the
        critic call when there is only one proposal (k = 0)."""
        if proposals.shape[1] == 1:
            items, _ = self.critic_inputs(proposals)
            return torch.zeros(proposals.shape[0], dtype=torch.long, device=proposals.device), items
        selection = self.select(obs, proposals)
        return selection.index, selection.items

    def _chosen_action(
        self, proposals: torch.Tensor, index: torch.Tensor, items: torch.Tensor | None
    ) -> np.ndarray:
        rows = torch.arange(proposals.shape[0], device=proposals.device)
        if items is not None:
            return items[rows, index].cpu().numpy()
        return proposals[rows, index].cpu().numpy()

    def forward(
        self,
        batch: ObsBatchProtocol,
        state: dict | BatchProtocol | np.ndarray | None = None,
        **kwargs: Any,
    ) -> ActStateBatchProtocol:
        """The maximizer actor's action for ``batch.obs``: [-1, 1]^d for Box, item indices for Discrete."""
        with torch.no_grad():
            obs = self.observation_tensor(batch.obs)
            proposals = self.actor(obs)
            index, items = self.maximizer_choice(obs, proposals)
        self._cached = (batch, obs, proposals)
        act = self._chosen_action(proposals, index, items)
        return cast(ActStateBatchProtocol, Batch(act=act, state=state))

    def noise_scale(self) -> float:
        """The current ε (see :class:`NoiseSchedule`)."""
        return self.noise_schedule(int(self.exploration_steps))

    @staticmethod
    def _perturbed(u: torch.Tensor, noise: BaseNoise, scale: float) -> torch.Tensor:
        if isinstance(noise, EpisodicOUNoise):  # ε scales its increments (the authors' code)
            values = noise(tuple(u.shape), scale=scale)
        else:
            values = scale * noise(tuple(u.shape))
        sample = torch.as_tensor(values, dtype=u.dtype, device=u.device)
        return (u + sample).clamp(-1.0, 1.0)

    def _restart_noise_of_new_episodes(self, batch: ObsBatchProtocol, rows: int) -> None:
        starts = episode_starts(getattr(batch, "info", None), rows)
        if starts is None or not starts.any():
            return
        for noise in (self.proposal_noise, self.exploration_noise):
            if isinstance(noise, EpisodicOUNoise):
                noise.reset(starts)

    def add_exploration_noise(self, act: TArrOrActBatch, batch: ObsBatchProtocol) -> TArrOrActBatch:
        """Algorithm 1's exploration: perturb all proposals, re-select by Q, perturb the choice."""
        if self.proposal_noise is None and self.exploration_noise is None:
            return act
        scale = self.noise_scale()
        with torch.no_grad():
            if self._cached is not None and self._cached[0] is batch:
                _, obs, proposals = self._cached
            else:
                obs = self.observation_tensor(batch.obs)
                proposals = self.actor(obs)
            self._cached = None
            n = proposals.shape[0]
            self.exploration_steps += n
            self._restart_noise_of_new_episodes(batch, n)
            if self.proposal_noise is not None:
                proposals = self._perturbed(proposals, self.proposal_noise, scale)
            index, _ = self.maximizer_choice(obs, proposals)
            chosen = proposals[torch.arange(n, device=obs.device), index]
            if self.exploration_noise is not None:
                chosen = self._perturbed(chosen, self.exploration_noise, scale)
            if self.is_discrete:
                items, _ = self.critic_inputs(chosen)
                assert items is not None  # discrete spaces always have items
                return cast(TArrOrActBatch, items.cpu().numpy())
            return cast(TArrOrActBatch, chosen.cpu().numpy())


@dataclass(kw_only=True)
class SAVOTrainingStats(TrainingStats):
    critic1_loss: float
    """Mean squared TD error of Q (importance-weighted under prioritized replay)."""
    critic2_loss: float
    """The same for the twin Q₂."""
    surrogate_loss: float
    """Eq. 8: squared error of Ψ̂ᵢ against Ψᵢ, summed over both actions and all surrogates, mean over
    states; 0 without surrogates."""
    q_smoothing_loss: float
    """Squared error of the Q-smoothing critic against Q at the nearest items (§14.6); 0 when off."""
    actor_loss: float
    """−Q(s, μ(s)) − Σᵢ Ψ̂ᵢ(s, νᵢ(s; a₍<ᵢ₎)) of the last actor update (Eq. 3 and 9)."""
    target_q_mean: float
    """Mean TD target."""
    maximizer_gain: float
    """Mean of max_i Q(s, aᵢ) − Q(s, a₀) over the batch: what the maximizer adds to μ alone (Eq. 5)."""
    successive_choice_fraction: float
    """Share of states where the maximizer picks a successive actor's proposal rather than μ's."""


class SAVO(CheckedUpdateMixin, OffPolicyAlgorithm[SAVOPolicy], LaggedNetworkPolyakUpdateAlgorithmMixin):
    """SAVO-TD3 (Algorithm 1 with the §4.3 design choices).

    Each update, on a replay batch:

    1. **TD target**: proposals of the *target* actors at s', the arg max under the target critic
       Q′ (Eq. 5), and r + γ·min{Q′, Q′₂} there (clipped double Q), bootstrapping through
       truncations but not terminations. No target policy smoothing unless ``target_smoothing``.
    2. **Critics** Q and Q₂ regress on it.
    3. **Surrogates** (Eq. 8): with the current proposals a₀…a_k (no noise) and the twin-critic
       minimum ("twin critics for surrogates", §4.3 item 3; the target twins by default, see
       ``surrogate_critics``), Ψᵢ of Eq. 7 is computed at the executed action and at νᵢ's
       proposal, and Ψ̂ᵢ regresses on it at both.
    4. **Q-smoothing** (§14.6; on by default for discrete tasks): Q̃(s, ·) regresses on min{Q, Q₂}
       at the nearest items of the executed action and of μ's proto-action, taking the actions
       themselves as input.
    5. Every ``update_actor_freq`` updates: μ ascends Q (Eq. 3; Q̃ when Q-smoothing), each νᵢ
       ascends Ψ̂ᵢ(s, νᵢ(s; a₍<ᵢ₎)) with the anchors held fixed (Eq. 9; Ψᵢ itself for "SAVO −
       Approximation"), and the target actors and critics move by Polyak averaging.

    :param policy: the :class:`SAVOPolicy`; ``policy.critic`` is Q.
    :param policy_optim: optimizer factory for all actors and their summariser (Table 3: Adam 3e-4,
        the list encoder at the same rate).
    :param critic_optim: optimizer factory for Q (Table 3: Adam 3e-4).
    :param critic2: the twin Q₂ with Q's call signature; None copies Q's architecture with fresh
        weights (identical weights would make the twins identical forever).
    :param critic2_optim: optimizer factory for Q₂; ``critic_optim`` if None.
    :param surrogates: Ψ̂₁…Ψ̂_k, required when k ≥ 1 and ``surrogate_approximation`` is True; must be
        None otherwise.
    :param surrogate_optim: optimizer factory for the surrogates; ``critic_optim`` if None.
    :param surrogate_approximation: True (SAVO) trains νᵢ on Ψ̂ᵢ; False is the "SAVO −
        Approximation" ablation (§6.1): νᵢ ascends Ψᵢ = max{Q(s, νᵢ), max_{j<i} Q(s, aⱼ)} directly,
        which passes no gradient where Q is below the anchors.
    :param q_smoothing: use the Q-smoothing critic Q̃ for the actors' gradients (§14.6). None (the
        paper's choice) means on for ``Discrete`` and off for ``Box`` spaces. Off on a discrete task,
        μ ascends Q at its proto-action directly (the "naive" variant of Table 2); with
        ``surrogate_approximation=False`` the νᵢ then ascend Ψᵢ built from that same function.
    :param q_smoother: the Q̃ network (Q's call signature); None copies Q's architecture with fresh
        weights when ``q_smoothing`` is on.
    :param q_smoother_optim: optimizer factory for Q̃; ``critic_optim`` if None.
    :param tau: Polyak rate of the target actors and critics (TD3's 0.005).
    :param gamma: discount factor (Table 3: 0.99).
    :param n_step_return_horizon: n of n-step returns; 1 is Algorithm 1.
    :param update_actor_freq: critic updates per actor (and target) update; TD3's 2.
    :param target_smoothing: add TD3's clipped Gaussian noise to the target action (the "SAVO +
        Action Smoothing" ablation, §6.1); False is SAVO (§4.3 item 1).
    :param policy_noise: σ of that noise in normalised action units (TD3's 0.2).
    :param noise_clip: its clip (TD3's 0.5); ≤ 0 disables clipping.
    :param max_grad_norm: clip every optimizer's gradient norm to this; None does not. The paper
        does not say; the authors' code clips at 1.0.
    :param surrogate_critics: which twin critics give the surrogates' targets Ψᵢ (Eq. 7) and the
        Q-smoothing targets: ``"target"``, min{Q′, Q′₂} of the Polyak-averaged copies, as in the
        authors' code (the default), or ``"online"``, min{Q, Q₂} (§4.3 item 3 names the twin
        critics without saying which copy).
    """

    num_updates: torch.Tensor  # registered buffers
    num_actor_updates: torch.Tensor

    def __init__(
        self,
        *,
        policy: SAVOPolicy,
        policy_optim: OptimizerFactory,
        critic_optim: OptimizerFactory,
        critic2: nn.Module | None = None,
        critic2_optim: OptimizerFactory | None = None,
        surrogates: SurrogateCritics | None = None,
        surrogate_optim: OptimizerFactory | None = None,
        surrogate_approximation: bool = True,
        q_smoothing: bool | None = None,
        q_smoother: nn.Module | None = None,
        q_smoother_optim: OptimizerFactory | None = None,
        tau: float = 0.005,
        gamma: float = 0.99,
        n_step_return_horizon: int = 1,
        update_actor_freq: int = 2,
        target_smoothing: bool = False,
        policy_noise: float = 0.2,
        noise_clip: float = 0.5,
        max_grad_norm: float | None = None,
        surrogate_critics: Literal["target", "online"] = "target",
    ) -> None:
        if not isinstance(policy, SAVOPolicy):
            raise TypeError(f"policy must be a SAVOPolicy, got {type(policy).__name__}")
        if not 0.0 <= tau <= 1.0:
            raise ValueError(f"tau must be in [0, 1], got {tau}")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        for name, value in (("n_step_return_horizon", n_step_return_horizon),
                            ("update_actor_freq", update_actor_freq)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int ≥ 1, got {value!r}")
        if policy_noise < 0:
            raise ValueError(f"policy_noise must be ≥ 0, got {policy_noise}")
        if surrogate_critics not in ("target", "online"):
            raise ValueError(f"surrogate_critics must be 'target' or 'online', got {surrogate_critics!r}")
        if max_grad_norm is not None and not (np.isfinite(max_grad_norm) and max_grad_norm > 0):
            raise ValueError(f"max_grad_norm must be None or a finite number > 0, got {max_grad_norm}")
        k = policy.actor.num_successive
        self._check_surrogates(surrogates, k, surrogate_approximation)
        super().__init__(policy=policy)
        LaggedNetworkPolyakUpdateAlgorithmMixin.__init__(self, tau=tau)
        self.gamma = float(gamma)
        self.n_step_return_horizon = n_step_return_horizon
        self.update_actor_freq = update_actor_freq
        self.target_smoothing = bool(target_smoothing)
        self.policy_noise = float(policy_noise)
        self.noise_clip = float(noise_clip)
        self.surrogate_approximation = bool(surrogate_approximation)
        self.surrogate_critics = surrogate_critics
        self.q_smoothing = policy.is_discrete if q_smoothing is None else bool(q_smoothing)
        if q_smoother is not None and not self.q_smoothing:
            raise ValueError("q_smoother was given but q_smoothing is off; pass q_smoothing=True to use it")

        self.critic2 = critic2 if critic2 is not None else reinitialise(copy.deepcopy(policy.critic))
        self.surrogates = surrogates
        self.q_smoother = (
            (q_smoother if q_smoother is not None else reinitialise(copy.deepcopy(policy.critic)))
            if self.q_smoothing
            else None
        )
        self.policy_optim = self._create_optimizer(policy.actor, policy_optim, max_grad_norm=max_grad_norm)
        self.critic_optim = self._create_optimizer(policy.critic, critic_optim, max_grad_norm=max_grad_norm)
        self.critic2_optim = self._create_optimizer(
            self.critic2, critic2_optim or critic_optim, max_grad_norm=max_grad_norm
        )
        self.surrogate_optim = (
            self._create_optimizer(surrogates, surrogate_optim or critic_optim, max_grad_norm=max_grad_norm)
            if surrogates is not None
            else None
        )
        self.q_smoother_optim = (
            self._create_optimizer(
                self.q_smoother, q_smoother_optim or critic_optim, max_grad_norm=max_grad_norm
            )
            if self.q_smoother is not None
            else None
        )
        self.actor_old = self._add_lagged_network(policy.actor)
        self.critic_old = self._add_lagged_network(policy.critic)
        self.critic2_old = self._add_lagged_network(self.critic2)
        # buffers, so that checkpoints resume the delayed-update phase where it was
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("num_actor_updates", torch.zeros((), dtype=torch.long))
        self._last_actor_loss = 0.0

    @staticmethod
    def _check_surrogates(surrogates: SurrogateCritics | None, k: int, approximation: bool) -> None:
        if surrogates is not None and not isinstance(surrogates, SurrogateCritics):
            raise TypeError(f"surrogates must be SurrogateCritics, got {type(surrogates).__name__}")
        needed = approximation and k > 0
        if needed and surrogates is None:
            raise ValueError(
                f"the policy has k = {k} successive actors and surrogate_approximation=True, so SAVO needs "
                "surrogates=SurrogateCritics(num_surrogates=k, ...) (see build_savo_networks)"
            )
        if not needed and surrogates is not None:
            reason = "k = 0" if k == 0 else "surrogate_approximation=False"
            raise ValueError(f"surrogates must be None with {reason}: nothing would train or use them")
        if surrogates is not None and surrogates.num_surrogates != k:
            raise ValueError(
                f"surrogates has num_surrogates={surrogates.num_surrogates} but the actor has k = {k} "
                "successive actors; they must match one to one"
            )

    # --- TD target ---------------------------------------------------------------------------------

    def _preprocess_batch(
        self, batch: RolloutBatchProtocol, buffer: ReplayBuffer, indices: np.ndarray
    ) -> BatchWithReturnsProtocol:
        return self.compute_nstep_return(
            batch=batch, buffer=buffer, indices=indices, target_q_fn=self._target_q,
            gamma=self.gamma, n_step=self.n_step_return_horizon,
        )

    def _smoothed(self, u: torch.Tensor) -> torch.Tensor:
        noise = torch.randn_like(u) * self.policy_noise
        if self.noise_clip > 0.0:
            noise = noise.clamp(-self.noise_clip, self.noise_clip)
        return (u + noise).clamp(-1.0, 1.0)

    def target_q_values(self, obs_next: torch.Tensor) -> torch.Tensor:
        """min{Q′, Q′₂}(s′, ã) with ã = μ′_M(s′): target actors propose, Q′ picks (Eq. 5, Alg. 1)."""
        policy = self.policy
        proposals = self.actor_old(obs_next)
        selection = policy.select(obs_next, proposals, critic=self.critic_old)
        rows = torch.arange(obs_next.shape[0], device=obs_next.device)
        if self.target_smoothing:
            _, inputs = policy.critic_inputs(self._smoothed(proposals[rows, selection.index]))
            q1 = self.critic_old(obs_next, inputs).flatten()
        else:
            inputs, q1 = selection.inputs[rows, selection.index], selection.q[rows, selection.index]
        q2 = self.critic2_old(obs_next, inputs).flatten()
        return torch.minimum(q1, q2)

    def _target_q(self, buffer: ReplayBuffer, indices: np.ndarray) -> torch.Tensor:
        obs_next = self.policy.observation_tensor(next_observations(buffer, indices))
        return self.target_q_values(obs_next)

    # --- the update --------------------------------------------------------------------------------

    def _actor_value_critic(self) -> nn.Module:
        """What μ ascends: Q (Eq. 3), or the Q-smoothing critic Q̃ when it is on (§14.6)."""
        return self.q_smoother if self.q_smoother is not None else self.policy.critic

    def _update_critics(
        self, obs: torch.Tensor, act_rep: torch.Tensor, batch: BatchWithReturnsProtocol
    ) -> tuple[float, float, float]:
        target = batch.returns.flatten().to(obs)
        weight = getattr(batch, "weight", None)
        weight_t = 1.0 if weight is None else torch.as_tensor(weight, device=obs.device).flatten().to(obs)
        td1 = self.policy.critic(obs, act_rep).flatten() - target
        loss1 = (td1.pow(2) * weight_t).mean()
        self.critic_optim.step(loss1)
        td2 = self.critic2(obs, act_rep).flatten() - target
        loss2 = (td2.pow(2) * weight_t).mean()
        self.critic2_optim.step(loss2)
        batch.weight = ((td1.abs() + td2.abs()) / 2.0).detach()  # new priorities for prioritized buffers
        return loss1.item(), loss2.item(), target.mean().item()

    def _twin_min_values(self, obs: torch.Tensor, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(min of the twin critics, the first critic) at ``inputs`` ``[B, m, d]``, each ``[B, m]``,
        from the online or the target twins (``surrogate_critics``); no gradient."""
        first, second = (
            (self.critic_old, self.critic2_old) if self.surrogate_critics == "target"
            else (self.policy.critic, self.critic2)
        )
        with torch.no_grad():
            q1 = critic_values(first, obs, inputs)
            q2 = critic_values(second, obs, inputs)
        return torch.minimum(q1, q2), q1

    def _update_surrogates(
        self,
        obs: torch.Tensor,
        act_rep: torch.Tensor,
        proposals: torch.Tensor,
        proposal_reps: torch.Tensor,
        q_exec: torch.Tensor,
        q_props: torch.Tensor,
    ) -> float:
        """Eq. 8 at the executed action μ̃_M(s) and at νᵢ's proposal, toward Ψᵢ of Eq. 7."""
        assert self.surrogates is not None and self.surrogate_optim is not None
        k = self.policy.actor.num_successive
        anchors_q = q_props[:, :k]
        targets = torch.stack(
            [surrogate_targets(q_exec, anchors_q), surrogate_targets(q_props[:, 1:], anchors_q)], dim=1
        )  # [B, 2, k]
        actions = torch.stack(
            [act_rep.unsqueeze(1).expand(-1, k, -1), proposal_reps[:, 1:]], dim=1
        )  # [B, 2, k, d]
        predictions = self.surrogates(obs, actions, anchors=proposals[:, :k])
        loss = (predictions - targets).pow(2).sum(dim=(1, 2)).mean()
        self.surrogate_optim.step(loss)
        return loss.item()

    def _update_q_smoother(
        self,
        obs: torch.Tensor,
        act_rep: torch.Tensor,
        proposal_reps: torch.Tensor,
        q_exec: torch.Tensor,
        q_props: torch.Tensor,
    ) -> float:
        """Q̃ regresses on Q at the nearest items, at the executed action and at μ's proto-action."""
        assert self.q_smoother is not None and self.q_smoother_optim is not None
        inputs = torch.stack([act_rep, proposal_reps[:, 0]], dim=1)  # [B, 2, d]
        targets = torch.stack([q_exec, q_props[:, 0]], dim=1)
        loss = (critic_values(self.q_smoother, obs, inputs) - targets).pow(2).sum(dim=1).mean()
        self.q_smoother_optim.step(loss)
        return loss.item()

    def _update_actors(self, obs: torch.Tensor, proposals: torch.Tensor | None) -> float:
        """μ ascends Q (Eq. 3); each νᵢ ascends Ψ̂ᵢ, or Ψᵢ without approximation (Eq. 9)."""
        value_critic = self._actor_value_critic()
        # the critics and surrogates only pass gradients on to the actions here
        with frozen(value_critic, self.surrogates):
            loss = self._actor_loss(obs, proposals, value_critic)
        self.policy_optim.step(loss)
        return loss.item()

    def _actor_loss(
        self, obs: torch.Tensor, proposals: torch.Tensor | None, value_critic: nn.Module
    ) -> torch.Tensor:
        policy = self.policy
        base = policy.actor.base_action(obs)
        loss = -value_critic(obs, policy.proposal_representation(base)).mean()
        k = policy.actor.num_successive
        if k > 0:
            assert proposals is not None
            anchors = proposals[:, :k]  # detached: νᵢ's gradient reaches νᵢ only (Eq. 9)
            successive = policy.proposal_representation(policy.actor.successive_given_anchors(obs, anchors))
            if self.surrogates is not None:
                values = self.surrogates(obs, successive.unsqueeze(1), anchors=anchors)[:, 0]
            else:
                with torch.no_grad():
                    anchors_q = critic_values(value_critic, obs, policy.proposal_representation(anchors))
                values = surrogate_targets(critic_values(value_critic, obs, successive), anchors_q)
            loss = loss - values.mean(dim=0).sum()
        return loss

    def _update_proposal_critics(
        self, obs: torch.Tensor, act_rep: torch.Tensor
    ) -> tuple[torch.Tensor | None, float, float, float, float]:
        """Steps 3-4: the surrogates (Eq. 8) and Q-smoothing at the current, noise-free proposals.

        :return: (proposals a₀…a_k or None, surrogate loss, Q-smoothing loss, maximizer gain,
            successive choice fraction).
        """
        policy = self.policy
        # with k = 0 and no Q-smoothing nothing here is needed: TD3's cost
        if policy.actor.num_successive == 0 and self.q_smoother is None:
            return None, 0.0, 0.0, 0.0, 0.0
        with torch.no_grad():
            proposals = policy.actor(obs)
            proposal_reps = policy.proposal_representation(proposals)
            _, proposal_inputs = policy.critic_inputs(proposals)
        q_min, q1 = self._twin_min_values(obs, torch.cat([act_rep.unsqueeze(1), proposal_inputs], dim=1))
        q_exec, q_props = q_min[:, 0], q_min[:, 1:]
        surrogate_loss = q_smoothing_loss = 0.0
        if self.surrogates is not None:
            surrogate_loss = self._update_surrogates(obs, act_rep, proposals, proposal_reps, q_exec, q_props)
        if self.q_smoother is not None:
            q_smoothing_loss = self._update_q_smoother(obs, act_rep, proposal_reps, q_exec, q_props)
        return proposals, surrogate_loss, q_smoothing_loss, *maximizer_statistics(q1[:, 1:])

    def _update_with_batch(self, batch: RolloutBatchProtocol) -> SAVOTrainingStats:
        policy = self.policy
        batch = cast(BatchWithReturnsProtocol, batch)
        obs = policy.observation_tensor(batch.obs)
        act_rep = policy.executed_representation(batch.act)
        critic1_loss, critic2_loss, target_mean = self._update_critics(obs, act_rep, batch)

        proposals, surrogate_loss, q_smoothing_loss, maximizer_gain, successive_fraction = (
            self._update_proposal_critics(obs, act_rep)
        )
        if int(self.num_updates) % self.update_actor_freq == 0:
            self._last_actor_loss = self._update_actors(obs, proposals)
            self._update_lagged_network_weights()
            self.num_actor_updates += 1
        self.num_updates += 1
        return SAVOTrainingStats(
            critic1_loss=critic1_loss,
            critic2_loss=critic2_loss,
            surrogate_loss=surrogate_loss,
            q_smoothing_loss=q_smoothing_loss,
            actor_loss=self._last_actor_loss,
            target_q_mean=target_mean,
            maximizer_gain=maximizer_gain,
            successive_choice_fraction=successive_fraction,
        )


def maximizer_statistics(q_of_proposals: torch.Tensor) -> tuple[float, float]:
    """(mean of max_i Q(s, aᵢ) − Q(s, a₀), share of states whose best proposal is not μ's)."""
    best = q_of_proposals.argmax(dim=1)
    gain = q_of_proposals.max(dim=1).values - q_of_proposals[:, 0]
    return gain.mean().item(), (best > 0).float().mean().item()


__all__ = [
    "SAVO",
    "SUPPORTED_SPACES",
    "TABLE3_NOISE_SCHEDULE",
    "NoiseSchedule",
    "SAVOPolicy",
    "SAVOTrainingStats",
    "surrogate_targets",
]
