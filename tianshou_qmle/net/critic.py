"""The action-in Q network of QMLE App. B.1 (Fig. 4), built for scoring many candidates per state."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def as_float_tensor(x: Any, device: torch.device | str) -> torch.Tensor:
    """Convert observations or actions to a float32 tensor on ``device`` (no copy if already so)."""
    if isinstance(x, torch.Tensor):
        return x.to(device=device, dtype=torch.float32)
    return torch.as_tensor(np.asarray(x, dtype=np.float32), device=device)


class ResidualBlock(nn.Module):
    """``x + W2·relu(W1·x)``: a two-layer residual block that keeps its width (He et al. 2016)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(F.relu(self.fc1(x)))


class ObservationStream(nn.Module):
    """Linear embedding → residual block → LayerNorm → ELU (Fig. 4, observation stream)."""

    def __init__(self, obs_dim: int, width: int = 128) -> None:
        super().__init__()
        self.embed = nn.Linear(obs_dim, width)
        self.block = ResidualBlock(width)
        self.norm = nn.LayerNorm(width)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return F.elu(self.norm(self.block(self.embed(obs))))


class ActionInCritic(nn.Module):
    """Q(s, a) with separate observation and action streams joined by a residual block (Fig. 4).

    The joint block's first layer is linear in the concatenation ``[f(s), g(a)]``, so its
    observation half ``W_f·f(s)`` is computed once per state and broadcast over that state's
    candidates; only the action half runs per candidate. That is what makes scoring
    ``batch × m`` candidates cheap (see :meth:`q_from_features`).

    :param obs_dim: flat observation size.
    :param act_dim: action representation size d (the normalised box coordinates for ``Box``).
    :param obs_width: width of the observation stream (128 in App. B.1).
    :param act_width: width of the action stream (128 in App. B.1).
    :param device: where the parameters and inputs live.
    """

    def __init__(
        self,
        *,
        obs_dim: int,
        act_dim: int,
        obs_width: int = 128,
        act_width: int = 128,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__()
        if obs_dim < 1 or act_dim < 1:
            raise ValueError(f"obs_dim and act_dim must be ≥ 1, got {obs_dim=} and {act_dim=}")
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.obs_width, self.act_width = obs_width, act_width
        self.device = device
        self.obs_stream = ObservationStream(obs_dim, obs_width)
        self.act_embed = nn.Linear(act_dim, act_width)
        self.act_norm = nn.LayerNorm(act_width)
        joint = obs_width + act_width
        self.joint = ResidualBlock(joint)
        self.joint_norm = nn.LayerNorm(joint)
        self.head = nn.Linear(joint, 1)
        self.to(device)

    @property
    def feature_dim(self) -> int:
        return self.obs_width

    def features(self, obs: Any) -> torch.Tensor:
        """Observation features ``[batch, obs_width]``, shared by Q and the arg max predictors."""
        return self.obs_stream(as_float_tensor(obs, self.device))

    def action_features(self, actions: torch.Tensor) -> torch.Tensor:
        return F.elu(self.act_norm(self.act_embed(actions)))

    def q_from_features(self, features: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Q-values of ``actions`` ``[batch, m, d]`` (or ``[batch, d]``) given per-state features.

        :return: shape ``[batch, m]`` (or ``[batch]`` for 2-D actions).
        """
        single = actions.dim() == 2
        if single:
            actions = actions.unsqueeze(1)
        act_feat = self.action_features(actions)  # [B, m, A]
        w1 = self.joint.fc1.weight
        obs_part = F.linear(features, w1[:, : self.obs_width], self.joint.fc1.bias)  # [B, J]
        hidden = F.relu(obs_part.unsqueeze(1) + F.linear(act_feat, w1[:, self.obs_width :]))
        skip = torch.cat([features.unsqueeze(1).expand(-1, act_feat.shape[1], -1), act_feat], -1)
        joint = F.elu(self.joint_norm(skip + self.joint.fc2(hidden)))
        q = self.head(joint).squeeze(-1)
        return q.squeeze(1) if single else q

    def forward(self, obs: Any, act: Any) -> torch.Tensor:
        """Q(s, a) for a batch of pairs, shape ``[batch]`` (Tianshou's critic convention)."""
        return self.q_from_features(self.features(obs), as_float_tensor(act, self.device))
