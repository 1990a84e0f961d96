"""The QMLE model of Fig. 4: an action-in critic plus an ensemble of arg max predictors."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from tianshou_qmle.net.critic import ActionInCritic
from tianshou_qmle.net.predictors import (
    ArgmaxPredictor,
    DeltaPredictor,
    FactoredCategoricalPredictor,
)


class QMLENetwork(nn.Module):
    """Container for the action-in critic and the arg max predictor ensemble.

    Both live in one module so that a single lagged copy is the target network of Algorithm 1,
    which covers Q *and* the predictors. Predictors read the critic's observation features with
    the gradient stopped (the dashed lines of Fig. 4).

    :param critic: the action-in Q network.
    :param predictors: the arg max predictors ρ1 … ρk, in the order of the ratios after ρ0.
    """

    def __init__(self, *, critic: ActionInCritic, predictors: Sequence[ArgmaxPredictor]) -> None:
        super().__init__()
        for i, p in enumerate(predictors):
            if not isinstance(p, ArgmaxPredictor):
                raise TypeError(f"predictors[{i}] must be an ArgmaxPredictor, got {type(p).__name__}")
            if p.act_dim != critic.act_dim or p.feature_dim != critic.feature_dim:
                raise ValueError(
                    f"predictors[{i}] has act_dim={p.act_dim}, feature_dim={p.feature_dim}; the "
                    f"critic has act_dim={critic.act_dim}, feature_dim={critic.feature_dim}"
                )
        self.critic = critic
        self.predictors = nn.ModuleList(predictors)
        self.to(critic.device)

    @property
    def act_dim(self) -> int:
        return self.critic.act_dim

    @property
    def device(self) -> torch.device | str:
        return self.critic.device

    def predictor_list(self) -> list[ArgmaxPredictor]:
        return list(self.predictors)  # type: ignore[arg-type]


def build_qmle_network(
    *,
    obs_dim: int,
    act_dim: int,
    hidden_width: int = 128,
    predictor_families: Sequence[str] = ("delta", "categorical"),
    delta_std: float = 0.05,
    num_bins: int = 3,
    device: torch.device | str = "cpu",
) -> QMLENetwork:
    """Build the App. B.1 agent's network: 128-wide streams, a 256-wide joint block, predictors.

    :param obs_dim: flat observation size.
    :param act_dim: action dimension d.
    :param hidden_width: width of the observation and action streams and of each predictor's
        hidden layer (128 in the paper; the joint block is twice this).
    :param predictor_families: the ensemble, in ratio order: any of ``"delta"`` and
        ``"categorical"`` (App. B uses both, in that order).
    :param delta_std: σ of the delta predictor's Gaussian perturbations.
    :param num_bins: K, bins per dimension of the factored categorical predictor (3 =
        bang-off-bang).
    :param device: where to put the parameters.
    """
    critic = ActionInCritic(
        obs_dim=obs_dim, act_dim=act_dim, obs_width=hidden_width, act_width=hidden_width,
        device=device,
    )
    predictors: list[ArgmaxPredictor] = []
    for family in predictor_families:
        if family == "delta":
            predictors.append(
                DeltaPredictor(
                    feature_dim=hidden_width, act_dim=act_dim, hidden_dim=hidden_width,
                    perturbation_std=delta_std,
                )
            )
        elif family == "categorical":
            predictors.append(
                FactoredCategoricalPredictor(
                    feature_dim=hidden_width, act_dim=act_dim, hidden_dim=hidden_width,
                    num_bins=num_bins,
                )
            )
        else:
            raise ValueError(
                f"predictor_families entries must be 'delta' or 'categorical', got {family!r}"
            )
    return QMLENetwork(critic=critic, predictors=predictors)
