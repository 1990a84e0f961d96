"""Approximate arg max over sampled candidates (QMLE Eq. 17–18), batched over states."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import torch

from tianshou_qmle.search.proposals import draw_candidates

if TYPE_CHECKING:
    from tianshou_qmle.net.action_codec import ActionCodec
    from tianshou_qmle.net.critic import ActionInCritic
    from tianshou_qmle.net.predictors import ArgmaxPredictor


class ArgmaxResult(NamedTuple):
    """The outcome of one approximate maximisation per state."""

    actions: torch.Tensor
    """The best candidate per state, ``[batch, d]``."""
    values: torch.Tensor
    """Its Q-value, ``[batch]``."""
    index: torch.Tensor  # type: ignore[assignment]  # shadows tuple.index, as the field name has always done
    """Its position among the state's candidates, ``[batch]``; the prior, if any, is last."""


def best_candidates(q_values: torch.Tensor, candidates: torch.Tensor) -> ArgmaxResult:
    """Pick, per state, the candidate with the highest Q (Eq. 17).

    :param q_values: ``[batch, m]``.
    :param candidates: ``[batch, m, d]``.
    """
    values, index = q_values.max(dim=1)
    rows = torch.arange(candidates.shape[0], device=candidates.device)
    return ArgmaxResult(actions=candidates[rows, index], values=values, index=index)


def approximate_argmax(
    critic: ActionInCritic,
    predictors: Sequence[ArgmaxPredictor],
    features: torch.Tensor,
    counts: Sequence[int],
    prior: torch.Tensor | None = None,
    scoring_dtype: torch.dtype | None = None,
    codec: ActionCodec | None = None,
    grid_share: float = 0.0,
) -> ArgmaxResult:
    """Sample the Eq. 21 candidate set for each state and return its best member under ``critic``.

    All ``batch × m`` candidates are scored in one forward pass that reuses each state's
    observation features. The result is never worse under ``critic`` than the prior.

    :param critic: the action-in Q network used for scoring.
    :param predictors: the arg max predictors to sample from.
    :param features: observation features ``[batch, f]`` from ``critic.features``.
    :param counts: samples for uniform and for each predictor (see
        :func:`~tianshou_qmle.search.proposals.search_counts`).
    :param prior: the stored arg max per state ``[batch, d]``, included as a candidate.
    :param scoring_dtype: None scores in the parameters' dtype (float32). ``torch.bfloat16`` scores
        the candidates with bf16 weights and activations (``ActionInCritic.score_candidates``; other
        critics under autocast), 2–3× cheaper on CPUs and GPUs with bf16 matrix units, then
        re-scores each state's winner in full precision, so the returned values are exact for the
        returned actions. Candidates whose Q are within bf16's rounding of the activations may swap
        (measured: ≥ 95% identical winners, and the value lost stays under 5% of the spread of Q
        over a state's candidates); the never-worse-than-the-prior guarantee then holds only up to
        that rounding.
    :param codec: the action space's codec; candidates are in its internal form and scored through
        its representation. None means the continuous box [-1, 1]^d with d = ``critic.act_dim``.
    :param grid_share: share of the uniform samples drawn from the bang-off-bang grid (see
        :func:`~tianshou_qmle.search.proposals.draw_candidates`).
    """
    candidates = draw_candidates(
        features, predictors, counts, critic.act_dim if codec is None else codec, prior=prior,
        grid_share=grid_share,
    )
    inputs = candidates if codec is None else codec.represent(candidates)
    if scoring_dtype is None or scoring_dtype == features.dtype:
        return best_candidates(critic.q_from_features(features, inputs), candidates)
    if hasattr(critic, "score_candidates"):
        low_precision_q = critic.score_candidates(features, inputs, dtype=scoring_dtype)
    else:
        with torch.autocast(device_type=features.device.type, dtype=scoring_dtype):
            low_precision_q = critic.q_from_features(features, inputs)
    best = best_candidates(low_precision_q.float(), candidates)
    best_inputs = best.actions if codec is None else codec.represent(best.actions)
    return best._replace(values=critic.q_from_features(features, best_inputs))
