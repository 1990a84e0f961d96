"""QMLE: Q-learning with maximum-likelihood arg max predictors (Tavakoli et al., TMLR; arXiv 2410.06317).

:class:`QMLEPolicy` acts ε-greedily around an approximate arg max of an action-in Q network over
``m_greedy`` sampled candidates; :class:`QMLE` implements Algorithm 1 (App. A) with the App. B agent:
TD targets maximised over ``m_target`` candidates from the *target* predictors plus the stored prior,
the refined arg max written back to the buffer, predictors fitted to it by maximum likelihood, and
hard target copies of Q and the predictors.

Actions everywhere inside QMLE (Q's input, the predictors, the buffer's ``act`` and ``act_max``)
live in the normalised box [-1, 1]^d; ``map_action`` scales them to the environment's bounds.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import gymnasium as gym
import numpy as np
import torch
from tianshou.algorithm.algorithm_base import (
    LaggedNetworkFullUpdateAlgorithmMixin,
    OffPolicyAlgorithm,
    Policy,
    TArrOrActBatch,
    TrainingStats,
)
from tianshou.algorithm.optim import OptimizerFactory
from tianshou.data import Batch, ReplayBuffer
from tianshou.data.batch import BatchProtocol, TArr
from tianshou.data.types import (
    ActStateBatchProtocol,
    BatchWithReturnsProtocol,
    ObsBatchProtocol,
    RolloutBatchProtocol,
)

from tianshou_qmle.data.buffer import ARGMAX_PRIOR_KEY
from tianshou_qmle.net.action_codec import (
    SUPPORTED_SPACES,
    ActionCodec,
    BoxCodec,
    DiscreteCodec,
    MultiDiscreteCodec,
    make_action_codec,
)
from tianshou_qmle.net.critic import AUTO_BF16_MIN_CANDIDATES, as_float_tensor
from tianshou_qmle.net.qmle_net import QMLENetwork
from tianshou_qmle.search.argmax import approximate_argmax
from tianshou_qmle.search.proposals import (
    proposal_counts,
    search_counts,
    validate_budget,
    validate_grid_share,
    validate_ratios,
)
from tianshou_qmle.utils import has_native_bf16
from tianshou_qmle.validation import CheckedUpdateMixin, check_observation_batch

log = logging.getLogger(__name__)

TABLE1_RATIOS = (0.9, 0.01, 0.09)
"""ρ0 (uniform), ρ1 (delta), ρ2 (factored categorical) from Table 1."""

DISCRETE_RATIOS = (0.9, 0.1)
"""ρ0 (uniform) and ρ (factored categorical) of App. D.3's discrete agent: Table 1's uniform share,
the rest to the one predictor."""


def default_proposal_ratios(num_predictors: int) -> tuple[float, ...]:
    """Table 1's ratios for the two-predictor ensemble, App. D.3's for one predictor."""
    if num_predictors == 2:
        return TABLE1_RATIOS
    if num_predictors == 1:
        return DISCRETE_RATIOS
    if num_predictors == 0:
        return (1.0,)
    raise ValueError(
        f"no default proposal_ratios for {num_predictors} predictors; pass proposal_ratios explicitly"
    )


def check_action_space_matches(action_space: gym.Space, codec: ActionCodec) -> None:
    """Raise unless ``codec`` (the model's) represents ``action_space``; name the supported spaces."""
    if isinstance(action_space, gym.spaces.Box):
        make_action_codec(action_space)  # validates shape and bounds
        matches = isinstance(codec, BoxCodec) and codec.action_dim == action_space.shape[0]
    elif isinstance(action_space, gym.spaces.MultiDiscrete):
        matches = isinstance(codec, MultiDiscreteCodec) and np.array_equal(
            codec.nvec.cpu().numpy(), np.asarray(action_space.nvec).reshape(-1)
        )
    elif isinstance(action_space, gym.spaces.Discrete):
        matches = isinstance(codec, DiscreteCodec) and codec.n == int(action_space.n)
    else:
        raise TypeError(
            f"action_space {action_space!r} is not supported by QMLE; supported: {SUPPORTED_SPACES}"
        )
    if not matches:
        raise ValueError(
            f"the model was built for {type(codec).__name__} actions of width {codec.action_dim}, not "
            f"for action_space {action_space!r}; build it with build_qmle_network(action_space=...)"
        )


def check_budget_covers_ratios(m: int, ratios: Sequence[float], *, name: str) -> None:
    """Raise a ``ValueError`` naming ``name`` when ``m`` cannot sample every proposal with ρ_i > 0."""
    try:
        proposal_counts(m, ratios)
    except ValueError as err:
        raise ValueError(f"{name}={m} is too small for proposal_ratios={tuple(ratios)}: {err}") from err


def next_observations(buffer: ReplayBuffer, indices: np.ndarray) -> np.ndarray:
    """``obs_next`` at ``indices``, also for buffers built with ``ignore_obs_next=True``."""
    if buffer._save_obs_next:
        return cast(np.ndarray, buffer.get(indices, "obs_next"))
    return cast(np.ndarray, buffer.get(buffer.next(indices), "obs"))


class QMLEPolicy(Policy):
    """ε-greedy policy around an approximate arg max of an action-in Q network (Algorithm 1).

    With probability ε it acts uniformly at random in the box; otherwise it draws ``m_greedy``
    candidates from uniform sampling and the arg max predictors (Eq. 21, with the ratios below) and
    takes the one with the highest Q (Eq. 17). Acting needs no gradient and runs under
    ``torch.inference_mode``.

    :param model: the action-in critic and arg max predictors (see
        :func:`~tianshou_qmle.net.qmle_net.build_qmle_network`), built for ``action_space``.
    :param action_space: the environment's action space: a bounded flat ``Box``, a flat
        ``MultiDiscrete`` (e.g. a discretised control task, App. D.3) or a ``Discrete(n)``
        (one-hot or item embeddings). Actions are never enumerated, so n or ∏K may be huge.
    :param observation_space: the environment's observation space (a flat ``Box``), optional.
    :param m_greedy: candidates per state when acting (1000 in Table 1). Values from 2 upwards
        work (App. D.1); cost grows linearly.
    :param proposal_ratios: the share of each budget for uniform sampling (ρ0) and for each
        predictor in ``model.predictors`` order (ρ1 …). Must be non-negative and sum to 1;
        Table 1 uses (0.9, 0.01, 0.09) for (uniform, delta, factored categorical), App. D.3 uses
        (0.9, 0.1) for (uniform, factored categorical). None picks these by the number of
        predictors.
    :param eps_training: ε while collecting training data (0.1 in Table 1).
    :param eps_inference: ε at evaluation; 0 gives greedy evaluation.
    :param scoring_dtype: precision for scoring candidates, here and in :class:`QMLE`'s target
        search. ``"auto"`` (default) is ``torch.bfloat16`` where the model's device multiplies
        bf16 in hardware (:func:`~tianshou_qmle.utils.has_native_bf16`: CPUs with AVX-512 BF16 or
        AMX, CUDA GPUs with bf16) and float32 elsewhere, re-read when the model moves; searches of
        fewer than 512 candidates in all (acting in a single environment) stay in float32, which
        is faster there (:data:`~tianshou_qmle.net.critic.AUTO_BF16_MIN_CANDIDATES`). None or
        ``torch.float32`` keeps float32 (the paper's numerics); ``torch.bfloat16`` picks winners
        with bf16 weights and activations and re-scores them in float32: 2.0× faster updates on
        this CPU (87.5 → 44.6 ms on walker-walk, ``benchmarks/results/speed``); near-ties may
        resolve differently (99.6% identical winners measured, see ``approximate_argmax``);
        learning curves matched fp32 within noise (``benchmarks/results/learning/bf16``).
    :param uniform_grid_share: the share of the uniform samples (ρ0) drawn from the
        bang-off-bang grid {-1, 0, 1}^d instead of the continuous box, when acting and for TD
        targets. 0 (default) is the paper; the authors' released code uses 0.5. Continuous
        ``Box`` spaces only (a ``MultiDiscrete`` or gridded space is its own grid).
    :param action_scaling: scale [-1, 1] actions to the environment's bounds in ``map_action``
        (``Box`` only); None means True for ``Box`` and False otherwise.
    :param action_bound_method: how to bound ``Box`` actions before scaling; "clip" is a no-op for
        QMLE, whose actions are always inside the box. Ignored for finite spaces.
    """

    def __init__(
        self,
        *,
        model: QMLENetwork,
        action_space: gym.Space,
        observation_space: gym.Space | None = None,
        m_greedy: int = 1000,
        proposal_ratios: Sequence[float] | None = None,
        eps_training: float = 0.1,
        eps_inference: float = 0.0,
        scoring_dtype: torch.dtype | Literal["auto"] | None = "auto",
        uniform_grid_share: float = 0.0,
        action_scaling: bool | None = None,
        action_bound_method: Literal["clip"] | None = "clip",
    ) -> None:
        if not isinstance(model, QMLENetwork):
            raise TypeError(f"model must be a QMLENetwork, got {type(model).__name__}")
        check_action_space_matches(action_space, model.codec)
        is_box = isinstance(action_space, gym.spaces.Box)
        super().__init__(
            action_space=action_space,
            observation_space=observation_space,
            action_scaling=is_box if action_scaling is None else action_scaling,
            action_bound_method=action_bound_method if is_box else None,
        )
        if observation_space is not None:
            obs_dim = gym.spaces.flatdim(observation_space)
            if obs_dim != model.critic.obs_dim:
                raise ValueError(
                    f"observation_space flattens to {obs_dim} values but the critic expects "
                    f"obs_dim={model.critic.obs_dim}"
                )
        self.model = model
        self.m_greedy = validate_budget(m_greedy, name="m_greedy")
        if proposal_ratios is None:
            proposal_ratios = default_proposal_ratios(len(model.predictors))
        self.proposal_ratios = validate_ratios(proposal_ratios)
        if len(self.proposal_ratios) != len(model.predictors) + 1:
            raise ValueError(
                f"proposal_ratios has {len(self.proposal_ratios)} entries but the model has "
                f"{len(model.predictors)} predictors: give one ratio for uniform sampling plus one "
                f"per predictor ({len(model.predictors) + 1} in total)"
            )
        check_budget_covers_ratios(self.m_greedy, self.proposal_ratios, name="m_greedy")
        self.eps_training = self._check_eps(eps_training, "eps_training")
        self.eps_inference = self._check_eps(eps_inference, "eps_inference")
        if scoring_dtype not in ("auto", None, torch.float32, torch.bfloat16, torch.float16):
            raise ValueError(
                f"scoring_dtype must be 'auto', None, torch.float32, torch.bfloat16 or torch.float16, "
                f"got {scoring_dtype!r}"
            )
        self.scoring_dtype_setting = scoring_dtype
        self.uniform_grid_share = validate_grid_share(uniform_grid_share)
        if self.uniform_grid_share > 0 and not isinstance(model.codec, BoxCodec):
            raise ValueError(
                f"uniform_grid_share applies to continuous Box action spaces, got "
                f"{uniform_grid_share} for action_space {action_space!r}; use 0"
            )

    @property
    def scoring_dtype(self) -> torch.dtype | None:
        """The precision large searches are scored in now (``"auto"`` resolved for the model's
        device); see :meth:`scoring_dtype_for` for a search of a given size."""
        if self.scoring_dtype_setting == "auto":
            return torch.bfloat16 if has_native_bf16(self.model.device) else None
        return self.scoring_dtype_setting

    def scoring_dtype_for(self, num_candidates: int) -> torch.dtype | None:
        """The precision of a search that scores ``num_candidates`` candidates in all.

        ``"auto"`` keeps float32 for searches below :data:`~tianshou_qmle.net.critic.
        AUTO_BF16_MIN_CANDIDATES`, where bf16 costs more than it saves (acting in one
        environment); an explicit dtype applies to every search.
        """
        if self.scoring_dtype_setting == "auto" and num_candidates < AUTO_BF16_MIN_CANDIDATES:
            return None
        return self.scoring_dtype

    @staticmethod
    def _check_eps(eps: float, name: str) -> float:
        if not 0.0 <= eps <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {eps}")
        return float(eps)

    @property
    def act_dim(self) -> int:
        return self.model.act_dim

    @property
    def codec(self) -> ActionCodec:
        return self.model.codec

    def set_grid_bins(self, grid_bins: int | None) -> None:
        """Restrict a ``Box`` policy to K grid points per dimension, or lift the restriction (None).

        The discrete→continuous curriculum of App. E.3: train with ``set_grid_bins(3)``
        (bang-off-bang), then call ``set_grid_bins(None)`` at the chosen step. The change applies to
        the online and, through :class:`QMLE`, the target search; stored actions and priors are grid
        points of the same box, so the buffer stays valid.
        """
        if not isinstance(self.codec, BoxCodec):
            raise TypeError(f"grid_bins applies to Box action spaces only, got {self.action_space!r}")
        self.codec.set_grid_bins(grid_bins)

    def set_eps_training(self, eps: float) -> None:
        self.eps_training = self._check_eps(eps, "eps_training")

    def set_eps_inference(self, eps: float) -> None:
        self.eps_inference = self._check_eps(eps, "eps_inference")

    def observation_tensor(self, obs: Any) -> torch.Tensor:
        """A batch of observations as a finite float32 ``[batch, obs_dim]`` tensor on the model's
        device; a ``ValueError`` for an unbatched observation, another width, or NaN/inf."""
        return check_observation_batch(as_float_tensor(obs, self.model.device), self.model.critic.obs_dim)

    def greedy_actions(self, obs: Any, m: int | None = None) -> torch.Tensor:
        """The approximate arg max action for each observation, ``[batch, d]`` in [-1, 1].

        :param obs: a batch of observations.
        :param m: the candidate budget; ``m_greedy`` if None.
        """
        m = self.m_greedy if m is None else validate_budget(m, name="m")
        with torch.inference_mode():
            features = self.model.critic.features(self.observation_tensor(obs))
            counts = search_counts(m, self.proposal_ratios, with_prior=False)
            result = approximate_argmax(
                self.model.critic, self.model.predictor_list(), features, counts,
                scoring_dtype=self.scoring_dtype_for(features.shape[0] * m), codec=self.codec,
                grid_share=self.uniform_grid_share,
            )
        return result.actions

    def forward(
        self,
        batch: ObsBatchProtocol,
        state: dict | BatchProtocol | np.ndarray | None = None,
        **kwargs: Any,
    ) -> ActStateBatchProtocol:
        """Greedy actions for ``batch.obs`` (exploration is added by ``add_exploration_noise``)."""
        act = self.greedy_actions(batch.obs).cpu().numpy()
        return cast(ActStateBatchProtocol, Batch(act=act, state=state))

    def map_action(self, act: TArr) -> np.ndarray:
        """Internal actions → env actions: scaled for ``Box``, bin or item indices otherwise."""
        if isinstance(self.codec, BoxCodec):
            return super().map_action(act)
        return self.codec.to_env(self._action_to_numpy(act))

    def map_action_inverse(self, act: TArr) -> np.ndarray:
        """Env actions (the collector's random warm-up) → internal actions."""
        if isinstance(self.codec, BoxCodec):
            internal = super().map_action_inverse(act)
            grid_bins = self.codec.grid_bins
            if grid_bins is None:
                return internal
            return self.codec.snap(torch.as_tensor(internal, dtype=torch.float32)).numpy()
        return self.codec.from_env(self._action_to_numpy(act))

    def add_exploration_noise(self, act: TArrOrActBatch, batch: ObsBatchProtocol) -> TArrOrActBatch:
        """Replace each action by a uniform one (a uniform valid action of the space) with
        probability ε (ε-greedy)."""
        eps = self.eps_training if self.is_within_training_step else self.eps_inference
        if eps <= 0.0:
            return act
        if not isinstance(act, np.ndarray):
            raise TypeError(f"QMLE exploration expects a numpy array of actions, got {type(act)}")
        explore = np.random.rand(act.shape[0]) < eps
        if explore.any():
            act = act.copy()
            uniform = self.codec.uniform(int(explore.sum()), 1, device=self.codec.device, dtype=torch.float32)
            act[explore] = uniform[:, 0].cpu().numpy()
        return act


@dataclass(kw_only=True)
class QMLETrainingStats(TrainingStats):
    critic_loss: float
    """Importance-weighted mean squared TD error."""
    predictor_loss: float
    """Sum over predictors of the mean negative log-likelihood of the refined arg max."""
    td_abs_mean: float
    """Mean |TD error| of the batch (the new priorities)."""
    target_q_mean: float
    """Mean TD target."""
    prior_kept_fraction: float
    """Share of next states whose stored prior stayed the best candidate (amortisation at work)."""


class QMLE(CheckedUpdateMixin, OffPolicyAlgorithm[QMLEPolicy], LaggedNetworkFullUpdateAlgorithmMixin):
    """Q-learning with maximum likelihood estimation: Algorithm 1 (App. A) with the App. B agent.

    Each update:

    1. samples a batch (prioritized replay in App. B, uniform in Algorithm 1; both work);
    2. for every next state, draws ``m_target`` candidates from uniform sampling, the *target*
       predictors and the stored prior, keeps the best under the *target* Q, and writes it back to
       the buffer as the new prior (Principle 2);
    3. regresses Q(s, a) on r + γ·Q⁻(s', a^max), bootstrapping through truncations but not
       terminations (partial-episode bootstrapping), weighted by importance-sampling weights and
       returning |TD| as the new priority;
    4. fits every predictor by maximum likelihood to the refined arg max, on observation features
       with the gradient stopped;
    5. copies Q and the predictors into their targets every ``target_update_freq`` updates.

    Use with the buffers of :mod:`tianshou_qmle.data`, which store the prior. Any other Tianshou
    buffer works too, but then the search has no prior (Eq. 16 rather than Eq. 20).

    :param policy: the :class:`QMLEPolicy`; its ``proposal_ratios`` are used for targets too.
    :param optim: optimizer factory for the critic (Adam, lr 5e-4 in Table 1).
    :param predictor_optim: optimizer factory for the predictors (Adam, lr 5e-4 in Table 1);
        ``optim`` if None.
    :param gamma: discount factor (0.99 in Table 1).
    :param n_step_return_horizon: n of n-step returns; 1 reproduces the paper (App. E.1 suggests
        more).
    :param m_target: fresh candidates per next state for the TD target (100 in Table 1); the stored
        prior is scored on top of them, as in Algorithm 1 and the authors' code (101 candidates).
        Target scoring costs ``batch_size × (m_target + 1)`` Q evaluations per update.
    :param target_update_freq: gradient updates between hard target copies. Algorithm 1 copies
        every N⁻ = 2000 *environment* steps; Tianshou's algorithm only sees updates, and with
        Table 1's one update per 10 environment steps that is every 200 updates, our default.
        Change it together with the update ratio to keep N⁻ in environment steps.
    :param max_grad_norm: clip each optimizer's gradient norm to this value; None (the paper)
        disables clipping.
    :param use_stored_prior: score each transition's stored arg max prior with the candidates and
        write the winner back (Eq. 20, Principle 2; True in the paper). False searches with the
        fresh candidates of Eq. 21 only and leaves the buffer's priors untouched: the ablation
        of App. D.2 without any amortisation, when combined with ratios (1, 0, …).
    """

    num_updates: torch.Tensor  # registered buffer

    def __init__(
        self,
        *,
        policy: QMLEPolicy,
        optim: OptimizerFactory,
        predictor_optim: OptimizerFactory | None = None,
        gamma: float = 0.99,
        n_step_return_horizon: int = 1,
        m_target: int = 100,
        target_update_freq: int = 200,
        max_grad_norm: float | None = None,
        use_stored_prior: bool = True,
    ) -> None:
        if not isinstance(policy, QMLEPolicy):
            raise TypeError(f"policy must be a QMLEPolicy, got {type(policy).__name__}")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        super().__init__(policy=policy)
        LaggedNetworkFullUpdateAlgorithmMixin.__init__(self)
        self.gamma = float(gamma)
        self.n_step_return_horizon = validate_budget(
            n_step_return_horizon, name="n_step_return_horizon"
        )
        self.m_target = validate_budget(m_target, name="m_target")
        check_budget_covers_ratios(self.m_target, policy.proposal_ratios, name="m_target")
        self.target_update_freq = validate_budget(target_update_freq, name="target_update_freq")
        model = policy.model
        self.optim = self._create_optimizer(model.critic, optim, max_grad_norm=max_grad_norm)
        self.predictor_optim = (
            self._create_optimizer(
                model.predictors, predictor_optim or optim, max_grad_norm=max_grad_norm
            )
            if len(model.predictors) > 0
            else None
        )
        self.model_old = self._add_lagged_network(model)
        # a buffer, so that checkpoints resume the target-copy schedule where it was
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))
        self.use_stored_prior = bool(use_stored_prior)
        self._warned_no_prior = False
        self._argmax_targets: tuple[torch.Tensor, torch.Tensor, float] | None = None
        """(next observations, refined arg max, prior-kept share) from the last target search."""

    @property
    def target_model(self) -> QMLENetwork:
        """The lagged copy of the policy's model (Q⁻ and the target predictors θ⁻)."""
        return cast(QMLENetwork, self.model_old.module)

    def _preprocess_batch(
        self,
        batch: RolloutBatchProtocol,
        buffer: ReplayBuffer,
        indices: np.ndarray,
    ) -> BatchWithReturnsProtocol:
        """Add n-step TD targets; the target search also refreshes the buffer's priors."""
        self._argmax_targets = None
        batch = self.compute_nstep_return(
            batch=batch,
            buffer=buffer,
            indices=indices,
            target_q_fn=self._target_q,
            gamma=self.gamma,
            n_step=self.n_step_return_horizon,
        )
        return batch

    def _stored_priors(self, buffer: ReplayBuffer, indices: np.ndarray) -> np.ndarray | None:
        if not self.use_stored_prior:
            return None
        if ARGMAX_PRIOR_KEY in buffer._meta.get_keys():
            return buffer._meta[ARGMAX_PRIOR_KEY][indices]
        if not self._warned_no_prior:
            warnings.warn(
                f"{type(buffer).__name__} stores no arg max prior ('{ARGMAX_PRIOR_KEY}'); QMLE "
                f"will search without one. Use a buffer from tianshou_qmle.data for Principle 2.",
                stacklevel=2,
            )
            self._warned_no_prior = True
        return None

    def _target_q(self, buffer: ReplayBuffer, indices: np.ndarray) -> torch.Tensor:
        """max over sampled candidates of Q⁻(s', ·) for the next states at ``indices``.

        ``indices`` are those ``n`` steps ahead, whose ``obs_next`` is s_{t+n} and whose stored
        prior belongs to that same state, so the write-back is right for any n.
        """
        target = self.target_model
        obs_next = self.policy.observation_tensor(next_observations(buffer, indices))
        priors_np = self._stored_priors(buffer, indices)
        prior = None
        if priors_np is not None:
            prior = as_float_tensor(priors_np, target.device).reshape(len(indices), target.act_dim)
        with torch.inference_mode():
            features = target.critic.features(obs_next)
            counts = search_counts(
                self.m_target, self.policy.proposal_ratios, with_prior=prior is not None
            )
            per_state = sum(counts) + (prior is not None)
            result = approximate_argmax(
                target.critic, target.predictor_list(), features, counts, prior=prior,
                scoring_dtype=self.policy.scoring_dtype_for(len(indices) * per_state),
                codec=self.policy.codec,
                grid_share=self.policy.uniform_grid_share,
            )
        kept = 0.0
        if prior is not None:
            # any buffer holding the field works; duplicate indices: the last write wins
            buffer._meta[ARGMAX_PRIOR_KEY][indices] = result.actions.cpu().numpy()
            # compare values, not positions: on finite spaces an earlier duplicate of the prior
            # may be the winner returned by argmax
            kept = float((result.actions == prior).all(dim=-1).float().mean())
        self._argmax_targets = (obs_next, result.actions.clone(), kept)
        return result.values.clone()

    def _update_with_batch(self, batch: RolloutBatchProtocol) -> QMLETrainingStats:
        if int(self.num_updates) % self.target_update_freq == 0:
            self._update_lagged_network_weights()
        self.num_updates += 1
        if self._argmax_targets is None:
            raise RuntimeError("QMLE._update_with_batch needs the batch from _preprocess_batch")
        argmax_obs, argmax_act, prior_kept = self._argmax_targets
        self._argmax_targets = None
        batch = cast(BatchWithReturnsProtocol, batch)
        model = self.policy.model
        obs = self.policy.observation_tensor(batch.obs)
        batch_size = obs.shape[0]

        # one pass of the observation stream over s_t and the searched next states
        features = model.critic.features(torch.cat([obs, argmax_obs], dim=0))
        actions = as_float_tensor(batch.act, model.device).reshape(batch_size, model.act_dim)
        q = model.critic.q_from_features(features[:batch_size], model.codec.represent(actions))
        target_q = batch.returns.flatten().to(q)
        td = q - target_q
        weight = batch.pop("weight", None)
        weight_t = 1.0 if weight is None else as_float_tensor(weight, model.device).flatten()
        critic_loss = (td.pow(2) * weight_t).mean()

        predictor_features = features[batch_size:].detach()
        predictor_loss = features.new_zeros(())
        for predictor in model.predictor_list():
            params = predictor(predictor_features)
            predictor_loss = predictor_loss + predictor.negative_log_likelihood(
                params, argmax_act, model.codec
            ).mean()

        self.optim.step(critic_loss)
        if self.predictor_optim is not None:
            self.predictor_optim.step(predictor_loss)
        batch.weight = td.detach().abs()  # new priorities for prioritized buffers
        return QMLETrainingStats(
            critic_loss=critic_loss.item(),
            predictor_loss=predictor_loss.item(),
            td_abs_mean=batch.weight.mean().item(),
            target_q_mean=target_q.mean().item(),
            prior_kept_fraction=prior_kept,
        )
