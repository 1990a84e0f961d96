import itertools
import math

import numpy as np
import pytest
import torch

from tianshou_qmle.net.predictors import DeltaPredictor, FactoredCategoricalPredictor
from tianshou_qmle.search.proposals import (
    draw_candidates,
    proposal_counts,
    search_counts,
    validate_ratios,
)

RATIO_SETS = [
    (1.0,),
    (0.9, 0.01, 0.09),
    (0.5, 0.5),
    (0.0, 1.0),
    (1 / 3, 1 / 3, 1 / 3),
    (0.25, 0.25, 0.25, 0.25),
    (0.7, 0.2, 0.05, 0.05),
    (0.999, 0.001),
]


BUDGETS = [1, 2, 3, 7, 10, 99, 100, 1000, 1001]


@pytest.mark.parametrize(("m", "ratios"), itertools.product(BUDGETS, RATIO_SETS))
def test_counts_sum_to_m_and_stay_within_one_of_share(m, ratios):
    counts = proposal_counts(m, ratios)
    assert len(counts) == len(ratios)
    assert sum(counts) == m
    assert all(c >= 0 for c in counts)
    for c, r in zip(counts, ratios, strict=True):
        assert math.floor(r * m + 1e-9) <= c <= math.ceil(r * m - 1e-9)
    assert proposal_counts(m, ratios) == counts  # deterministic


def test_table1_counts_match_hand_computation():
    # 1000 × (0.9, 0.01, 0.09) is exact; 99 (target budget after the prior) needs remainders
    assert proposal_counts(1000, (0.9, 0.01, 0.09)) == (900, 10, 90)
    assert search_counts(100, (0.9, 0.01, 0.09), with_prior=True) == (89, 1, 9)
    assert search_counts(100, (0.9, 0.01, 0.09), with_prior=False) == (90, 1, 9)


def test_largest_remainder_prefers_bigger_fraction_then_position():
    assert proposal_counts(3, (0.5, 0.5)) == (2, 1)
    assert proposal_counts(2, (0.2, 0.3, 0.5)) == (0, 1, 1)


def test_prior_takes_a_slot_and_m_one_is_prior_only():
    assert sum(search_counts(17, (0.5, 0.5), with_prior=True)) == 16
    assert search_counts(1, (0.5, 0.5), with_prior=True) == (0, 0)


@pytest.mark.parametrize("bad", [(-0.1, 1.1), (0.5, 0.4), (0.6, 0.6), (float("nan"), 1.0), ()])
def test_bad_ratios_raise_value_error_naming_parameter(bad):
    with pytest.raises(ValueError, match="proposal_ratios"):
        validate_ratios(bad)


@pytest.mark.parametrize("m", [0, -3])
def test_budget_below_one_raises(m):
    with pytest.raises(ValueError, match="m must be ≥ 1"):
        proposal_counts(m, (1.0,))


def test_non_integer_budget_and_string_ratios_raise_type_error():
    with pytest.raises(TypeError):
        proposal_counts(2.5, (1.0,))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        validate_ratios("0.5,0.5")  # type: ignore[arg-type]


def test_draw_candidates_shapes_order_and_prior_last():
    torch.manual_seed(0)
    feats = torch.randn(4, 128)
    delta = DeltaPredictor(feature_dim=128, act_dim=3)
    cat = FactoredCategoricalPredictor(feature_dim=128, act_dim=3, num_bins=3)
    prior = torch.full((4, 3), 0.123)
    cands = draw_candidates(feats, [delta, cat], (5, 2, 4), 3, prior=prior)
    assert cands.shape == (4, 12, 3)
    assert torch.all(cands.abs() <= 1.0)
    # delta block: the first of its samples is its mean
    assert torch.allclose(cands[:, 5], delta(feats))
    # categorical samples lie on the bang-off-bang grid
    assert set(torch.unique(cands[:, 7:11]).tolist()) <= {-1.0, 0.0, 1.0}
    assert torch.equal(cands[:, -1], prior)


def test_delta_perturbations_differ_per_state():
    torch.manual_seed(0)
    delta = DeltaPredictor(feature_dim=8, act_dim=2, perturbation_std=0.1)
    feats = torch.zeros(2, 8)  # identical states: identical means
    samples = delta.sample(delta(feats), 6)
    assert torch.equal(samples[0, 0], samples[1, 0])
    assert not torch.allclose(samples[0, 1:], samples[1, 1:])


def test_categorical_nll_is_cross_entropy_on_logits():
    pred = FactoredCategoricalPredictor(feature_dim=4, act_dim=2, num_bins=5)
    logits = torch.tensor([[[0.0, 1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0, 0.0]]])
    actions = torch.tensor([[1.0, -0.45]])  # nearest bins: 4 and 1
    expected = -(torch.log_softmax(logits[0, 0], -1)[4] + torch.log_softmax(logits[0, 1], -1)[1])
    assert torch.allclose(pred.negative_log_likelihood(logits, actions), expected.reshape(1))
    # huge logits stay finite (no log of a softmax that underflows)
    big = torch.tensor([[[1000.0, -1000.0, 0.0, 0.0, 0.0]] * 2])
    assert torch.isfinite(pred.negative_log_likelihood(big, torch.tensor([[0.0, 1.0]]))).all()


def test_num_bins_below_two_rejected():
    with pytest.raises(ValueError, match="num_bins"):
        FactoredCategoricalPredictor(feature_dim=4, act_dim=2, num_bins=1)


def test_uniform_candidates_cover_the_box():
    torch.manual_seed(1)
    cands = draw_candidates(torch.zeros(1, 4), [], (20000,), 2)
    arr = cands.numpy().reshape(-1, 2)
    assert arr.min() >= -1.0 and arr.max() <= 1.0
    assert np.allclose(arr.mean(0), 0.0, atol=0.03)
    assert np.allclose(arr.var(0), 1 / 3, atol=0.02)
