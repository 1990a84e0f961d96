"""Sampling budgets and candidate proposals for approximate arg max search (QMLE Eq. 16, 20, 21)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import numpy as np
import torch

if TYPE_CHECKING:
    from tianshou_qmle.net.action_codec import ActionCodec
    from tianshou_qmle.net.predictors import ArgmaxPredictor

RATIO_TOLERANCE = 1e-6


def validate_ratios(ratios: Sequence[float], *, name: str = "proposal_ratios") -> tuple[float, ...]:
    """Check that sample-allocation ratios are finite, non-negative and sum to 1.

    :param ratios: one ratio per proposal family, uniform (ρ0) first.
    :param name: the parameter name used in error messages.
    :return: the ratios as a tuple of floats.
    """
    if isinstance(ratios, str | bytes) or not isinstance(ratios, Sequence):
        raise TypeError(f"{name} must be a sequence of floats, got {ratios!r}")
    values = tuple(float(r) for r in ratios)
    if len(values) == 0:
        raise ValueError(f"{name} must contain at least one ratio, got {ratios!r}")
    if any(not math.isfinite(r) or r < 0.0 for r in values):
        raise ValueError(f"{name} must be finite and non-negative, got {ratios!r}")
    total = sum(values)
    if abs(total - 1.0) > RATIO_TOLERANCE:
        raise ValueError(
            f"{name} must sum to 1 (within {RATIO_TOLERANCE}), got {ratios!r} summing to {total}"
        )
    return values


def validate_budget(m: int, *, name: str) -> int:
    """Check that a sampling budget is an integer ≥ 1."""
    if isinstance(m, bool) or not isinstance(m, int | np.integer):
        raise TypeError(f"{name} must be an int ≥ 1, got {m!r} of type {type(m).__name__}")
    if m < 1:
        raise ValueError(f"{name} must be ≥ 1, got {m}")
    return int(m)


def proposal_counts(m: int, ratios: Sequence[float]) -> tuple[int, ...]:
    """Split a budget of ``m`` samples over proposal families; every family with ρ_i > 0 gets one.

    Every family receives ``floor(ρ_i·m)`` samples; the samples left over go to the families with the
    largest fractional remainders, ties broken by position (uniform first). A family with ρ_i > 0
    that got none then takes one sample from the family holding the most (the last such on ties),
    so that small budgets still draw from every proposal Algorithm 1 names (with m = 2 and
    ρ = (0.5, 0.5), one uniform sample and one delta sample). The result is deterministic and sums
    to ``m``; without that fix-up each count is within one of ``ρ_i·m``.

    :param m: the number of samples to split, ≥ 1, and at least the number of positive ratios.
    :param ratios: the allocation ratios ρ0 (uniform), ρ1 … ρk (predictors), summing to 1.
    :return: one count per ratio.
    :raises ValueError: when ``m`` is smaller than the number of families with ρ_i > 0, which
        then cannot all be sampled.
    """
    m = validate_budget(m, name="m")
    values = validate_ratios(ratios)
    positive = [i for i, r in enumerate(values) if r > 0.0]
    if m < len(positive):
        raise ValueError(
            f"a budget of m={m} cannot sample each of the {len(positive)} proposals with a positive "
            f"ratio in {ratios!r}: raise m to at least {len(positive)} or set unused ratios to 0"
        )
    exact = [r * m for r in values]
    counts = [math.floor(x + 1e-9) for x in exact]
    leftover = m - sum(counts)
    order = sorted(range(len(values)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[:leftover]:
        counts[i] += 1
    for i in positive:
        if counts[i] == 0:
            donor = max(range(len(counts)), key=lambda j: (counts[j], j))
            counts[donor] -= 1
            counts[i] += 1
    return tuple(counts)


def search_counts(m: int, ratios: Sequence[float], *, with_prior: bool) -> tuple[int, ...]:
    """The per-family counts of one search of budget ``m``.

    The stored prior, when there is one, is scored *on top of* the ``m`` fresh samples, as in
    Algorithm 1 (App. A: m_i = ρ_i × m_target samples per family, plus the prior in Eq. 21) and in
    the authors' code (101 candidates for m_target = 100). Eq. 20 writes the prior as one of the m;
    we follow Algorithm 1, so that every proposal keeps its share however small m is.

    :param with_prior: whether a prior will be added; it does not change the counts, which sum to
        ``m`` (the search then scores ``m + 1`` candidates). Kept so callers state it.
    :return: the counts for uniform and each predictor.
    """
    del with_prior  # the prior is added on top, see above
    return proposal_counts(m, ratios)


def uniform_box_samples(
    batch_size: int, n: int, act_dim: int, *, device: torch.device | str, dtype: torch.dtype
) -> torch.Tensor:
    """Uniform samples over the normalised action box [-1, 1]^d, shape ``[batch, n, d]`` (ρ0)."""
    return torch.rand(batch_size, n, act_dim, device=device, dtype=dtype).mul_(2.0).sub_(1.0)


def bang_off_bang_samples(
    batch_size: int, n: int, act_dim: int, *, device: torch.device | str, dtype: torch.dtype
) -> torch.Tensor:
    """Uniform samples over the grid {-1, 0, 1}^d, shape ``[batch, n, d]``."""
    return torch.randint(3, (batch_size, n, act_dim), device=device).to(dtype).sub_(1.0)


def validate_grid_share(share: float, *, name: str = "uniform_grid_share") -> float:
    """Check that the bang-off-bang share of the uniform samples is in [0, 1]."""
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0.0 <= share <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {share!r}")
    return float(share)


def grid_count(n_uniform: int, grid_share: float) -> int:
    """How many of ``n_uniform`` uniform samples go to the bang-off-bang grid (rounded half up)."""
    return math.floor(n_uniform * grid_share + 0.5)


def draw_candidates(
    features: torch.Tensor,
    predictors: Sequence[ArgmaxPredictor],
    counts: Sequence[int],
    actions: ActionCodec | int,
    prior: torch.Tensor | None = None,
    grid_share: float = 0.0,
) -> torch.Tensor:
    """Draw the candidate set of Eq. 21 for a batch of states in one tensor.

    :param features: observation features from the shared stream, shape ``[batch, f]``.
    :param predictors: the arg max predictors ρ1 … ρk (online ones when acting, target ones when
        computing TD targets).
    :param counts: the number of samples for uniform and each predictor, as from
        :func:`search_counts`.
    :param actions: the action codec of the space (see :mod:`tianshou_qmle.net.action_codec`), or
        just d for the continuous box [-1, 1]^d.
    :param prior: the stored arg max prior per state, shape ``[batch, d]``, or None.
    :param grid_share: the share of the uniform samples (ρ0) drawn uniformly from the
        bang-off-bang grid {-1, 0, 1}^d instead of the box (continuous ``Box`` only; the authors'
        code uses 0.5, the paper describes 0). The grid's corners and centre are where bang-bang
        optimal controls live, and a continuous uniform sample almost never lands on them.
    :return: candidates of shape ``[batch, m, d]`` in the codec's internal form (the normalised
        box for ``Box``); the prior, when given, is the last candidate of each state.
    """
    if len(counts) != len(predictors) + 1:
        raise ValueError(
            f"counts must have one entry for uniform plus one per predictor "
            f"({len(predictors) + 1}), got {len(counts)}"
        )
    batch_size = features.shape[0]
    codec = None if isinstance(actions, int) else actions
    parts: list[torch.Tensor] = []
    # only the continuous box (is_continuous) has a grid finer than its own action set
    n_grid = grid_count(counts[0], grid_share) if codec is None or codec.is_continuous else 0
    n_box = counts[0] - n_grid
    if n_box > 0:
        if codec is None:
            uniform = uniform_box_samples(
                batch_size, n_box, int(cast(int, actions)), device=features.device, dtype=features.dtype
            )
        else:
            uniform = codec.uniform(batch_size, n_box, device=features.device, dtype=features.dtype)
        parts.append(uniform)
    if n_grid > 0:
        act_dim = int(cast(int, actions)) if codec is None else codec.action_dim
        parts.append(bang_off_bang_samples(batch_size, n_grid, act_dim, device=features.device,
                                           dtype=features.dtype))
    for predictor, n in zip(predictors, counts[1:], strict=True):
        if n > 0:
            parts.append(predictor.sample(predictor(features), n, codec))
    if prior is not None:
        parts.append(prior.to(features.dtype).unsqueeze(1))
    if not parts:
        raise ValueError("the candidate budget is empty: every count is 0 and no prior was given")
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
