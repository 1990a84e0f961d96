"""The QMLE model of Fig. 4: an action-in critic plus an ensemble of arg max predictors."""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from tianshou_qmle.net.action_codec import (
    ActionCodec,
    BoxCodec,
    DiscreteCodec,
    MultiDiscreteCodec,
    make_action_codec,
)
from tianshou_qmle.net.critic import ActionInCritic
from tianshou_qmle.net.predictors import (
    ArgmaxPredictor,
    DeltaPredictor,
    FactoredCategoricalPredictor,
    ItemCategoricalPredictor,
)
from tianshou_qmle.validation import check_positive_int

PREDICTOR_FAMILIES = ("delta", "categorical")


class QMLENetwork(nn.Module):
    """Container for the action-in critic and the arg max predictor ensemble.

    Both live in one module so that a single lagged copy is the target network of Algorithm 1,
    which covers Q *and* the predictors. Predictors read the critic's observation features with
    the gradient stopped (the dashed lines of Fig. 4).

    :param critic: the action-in Q network; its ``act_dim`` is the codec's representation width.
    :param predictors: the arg max predictors ρ1 … ρk, in the order of the ratios after ρ0.
    :param codec: how actions of the space are represented (see
        :mod:`tianshou_qmle.net.action_codec`); None means the continuous box of the critic's
        ``act_dim``.
    """

    def __init__(
        self,
        *,
        critic: ActionInCritic,
        predictors: Sequence[ArgmaxPredictor],
        codec: ActionCodec | None = None,
    ) -> None:
        super().__init__()
        codec = BoxCodec(act_dim=critic.act_dim) if codec is None else codec
        if codec.representation_dim != critic.act_dim:
            raise ValueError(
                f"the critic takes {critic.act_dim}-wide actions but the codec represents them with "
                f"{codec.representation_dim} values"
            )
        for i, p in enumerate(predictors):
            if not isinstance(p, ArgmaxPredictor):
                raise TypeError(f"predictors[{i}] must be an ArgmaxPredictor, got {type(p).__name__}")
            if p.feature_dim != critic.feature_dim:
                raise ValueError(
                    f"predictors[{i}] has feature_dim={p.feature_dim}; the critic has "
                    f"feature_dim={critic.feature_dim}"
                )
            p.check_codec(codec)
        self.critic = critic
        self.predictors = nn.ModuleList(predictors)
        self.codec = codec
        self.to(critic.device)

    @property
    def act_dim(self) -> int:
        """Width of QMLE's internal action form (d for boxes and bins, 1 for item indices)."""
        return self.codec.action_dim

    @property
    def device(self) -> torch.device:
        """Where the parameters are now (follows ``.to(...)``)."""
        return self.critic.device

    def predictor_list(self) -> list[ArgmaxPredictor]:
        return list(self.predictors)  # type: ignore[arg-type]


def default_predictor_families(action_space: gym.Space | None) -> tuple[str, ...]:
    """App. B's ensemble for boxes; App. D.3's single factored categorical for ``MultiDiscrete``;
    a delta in embedding space plus a categorical over items for ``Discrete``."""
    if isinstance(action_space, gym.spaces.MultiDiscrete):
        return ("categorical",)
    return PREDICTOR_FAMILIES


def build_qmle_network(
    *,
    obs_dim: int,
    act_dim: int | None = None,
    action_space: gym.Space | None = None,
    action_embeddings: np.ndarray | torch.Tensor | None = None,
    grid_bins: int | None = None,
    hidden_width: int = 128,
    predictor_families: Sequence[str] | None = None,
    delta_std: float = 0.05,
    num_bins: int | None = None,
    bilinear_head: bool = False,
    device: torch.device | str = "cpu",
) -> QMLENetwork:
    """Build the App. B.1 agent's network: 128-wide streams, a 256-wide joint block, predictors.

    :param obs_dim: flat observation size.
    :param act_dim: action dimension d of a continuous box; give this or ``action_space``.
    :param action_space: the environment's action space: ``Box``, ``MultiDiscrete`` or
        ``Discrete`` (see :mod:`tianshou_qmle.net.action_codec` for how each is represented).
    :param action_embeddings: ``Discrete(n)`` only: ``[n, e]`` item representations fed to Q (e.g.
        ``RecSimEnv.item_embeddings``); None uses one-hot vectors (n ≤ 4096).
    :param grid_bins: ``Box`` only: restrict actions to K grid points per dimension, for the
        discrete→continuous curriculum (App. E.3); None is the continuous box.
    :param hidden_width: width of the observation and action streams and of each predictor's
        hidden layer (128 in the paper; the joint block is twice this).
    :param predictor_families: the ensemble, in ratio order: any of ``"delta"`` and
        ``"categorical"``. None picks per space: ("delta", "categorical") for ``Box`` (App. B) and
        ``Discrete`` (a delta in embedding space with nearest-item snapping, and a categorical
        over items), ("categorical",) for ``MultiDiscrete`` (App. D.3).
    :param delta_std: σ of the delta predictor's Gaussian perturbations (in representation units).
    :param num_bins: K, bins per dimension of the factored categorical predictor; None means 3
        (bang-off-bang) for ``Box`` and the space's own bins for ``MultiDiscrete``.
    :param bilinear_head: give the critic a state-weighted linear term in the action
        representation (see :class:`ActionInCritic`); off in the paper's network, useful for item
        embeddings whose value is an inner product with the user's state (the recommender).
    :param device: where to put the parameters.
    """
    check_positive_int(obs_dim, "obs_dim")
    check_positive_int(hidden_width, "hidden_width")
    if isinstance(delta_std, bool) or not isinstance(delta_std, int | float) or not delta_std > 0:
        raise ValueError(f"delta_std must be a number > 0 (σ of the delta predictor's samples; 0.05 in "
                         f"Table 1), got {delta_std!r}")
    if num_bins is not None and (isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 2):
        raise ValueError(f"num_bins must be None or an integer ≥ 2 (3 is bang-off-bang), got {num_bins!r}")
    codec = _codec_for(act_dim, action_space, action_embeddings, grid_bins)
    families = default_predictor_families(action_space) if predictor_families is None else predictor_families
    critic = ActionInCritic(
        obs_dim=obs_dim, act_dim=codec.representation_dim, obs_width=hidden_width,
        act_width=hidden_width, bilinear_head=bilinear_head, device=device,
    )
    predictors = [
        _build_predictor(family, codec, hidden_width=hidden_width, delta_std=delta_std, num_bins=num_bins)
        for family in families
    ]
    return QMLENetwork(critic=critic, predictors=predictors, codec=codec)


def _codec_for(
    act_dim: int | None,
    action_space: gym.Space | None,
    action_embeddings: np.ndarray | torch.Tensor | None,
    grid_bins: int | None,
) -> ActionCodec:
    if (act_dim is None) == (action_space is None):
        raise ValueError(
            f"give exactly one of act_dim (a continuous box) and action_space, got act_dim={act_dim!r} "
            f"and action_space={action_space!r}"
        )
    if action_space is None:
        if act_dim is None or act_dim < 1:
            raise ValueError(f"act_dim must be ≥ 1, got {act_dim}")
        space = gym.spaces.Box(-1.0, 1.0, (act_dim,), np.float32)
        return make_action_codec(space, action_embeddings=action_embeddings, grid_bins=grid_bins)
    return make_action_codec(action_space, action_embeddings=action_embeddings, grid_bins=grid_bins)


def _build_predictor(
    family: str, codec: ActionCodec, *, hidden_width: int, delta_std: float, num_bins: int | None
) -> ArgmaxPredictor:
    if family == "delta":
        bound = 1.0
        if isinstance(codec, DiscreteCodec):
            bound = float(codec.table.abs().max().clamp(min=1e-6))
        return DeltaPredictor(
            feature_dim=hidden_width, act_dim=codec.representation_dim, hidden_dim=hidden_width,
            perturbation_std=delta_std, bound=bound,
        )
    if family == "categorical":
        if isinstance(codec, DiscreteCodec):
            return ItemCategoricalPredictor(
                feature_dim=hidden_width, num_items=codec.n, hidden_dim=hidden_width
            )
        if num_bins is None:
            num_bins = codec.max_bins if isinstance(codec, MultiDiscreteCodec) else 3
        return FactoredCategoricalPredictor(
            feature_dim=hidden_width, act_dim=codec.action_dim, hidden_dim=hidden_width, num_bins=num_bins,
        )
    raise ValueError(f"predictor_families entries must be 'delta' or 'categorical', got {family!r}")
