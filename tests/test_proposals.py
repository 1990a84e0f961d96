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


def positive(ratios) -> int:
    return sum(r > 0 for r in ratios)


@pytest.mark.parametrize(("m", "ratios"), itertools.product(BUDGETS, RATIO_SETS))
def test_counts_sum_to_m_give_every_positive_ratio_a_slot_and_follow_the_shares(m, ratios):
    if m < positive(ratios):
        with pytest.raises(ValueError, match=f"m={m} cannot sample each of the {positive(ratios)}"):
            proposal_counts(m, ratios)
        return
    counts = proposal_counts(m, ratios)
    assert len(counts) == len(ratios)
    assert sum(counts) == m
    assert all(c >= 1 if r > 0 else c == 0 for c, r in zip(counts, ratios, strict=True))
    # within one of the share, but for the slots given up to families whose share rounded to 0
    for c, r in zip(counts, ratios, strict=True):
        assert math.floor(r * m + 1e-9) - positive(ratios) <= c <= max(1, math.ceil(r * m - 1e-9))
    assert proposal_counts(m, ratios) == counts  # deterministic


def test_table1_counts_match_hand_computation():
    # 1000 × (0.9, 0.01, 0.09) is exact; the prior is scored on top of the m (Algorithm 1)
    assert proposal_counts(1000, (0.9, 0.01, 0.09)) == (900, 10, 90)
    assert search_counts(100, (0.9, 0.01, 0.09), with_prior=True) == (90, 1, 9)
    assert search_counts(100, (0.9, 0.01, 0.09), with_prior=False) == (90, 1, 9)


def test_largest_remainder_prefers_bigger_fraction_then_position():
    assert proposal_counts(3, (0.5, 0.5)) == (2, 1)
    assert proposal_counts(3, (0.2, 0.3, 0.5)) == (1, 1, 1)


def test_small_budgets_sample_every_proposal_with_a_positive_ratio():
    # App. D.1/D.2: m = 2 shared by uniform and delta, one each (the largest remainder alone gave
    # the delta predictor nothing)
    assert proposal_counts(2, (0.5, 0.5, 0.0)) == (1, 1, 0)
    # Table 1's ratios at m = 20: 0.2 delta samples round to 0, so delta takes one from uniform
    assert proposal_counts(20, (0.9, 0.01, 0.09)) == (17, 1, 2)
    with pytest.raises(ValueError, match="m=2 cannot sample each of the 3 proposals"):
        proposal_counts(2, (0.2, 0.3, 0.5))


def test_prior_is_scored_on_top_of_the_m_samples():
    assert sum(search_counts(17, (0.5, 0.5), with_prior=True)) == 17
    assert search_counts(2, (0.5, 0.5), with_prior=True) == (1, 1)
    feats = torch.zeros(3, 8)
    delta = DeltaPredictor(feature_dim=8, act_dim=2)
    cands = draw_candidates(feats, [delta], search_counts(2, (0.5, 0.5), with_prior=True), 2,
                            prior=torch.zeros(3, 2))
    assert cands.shape == (3, 3, 2)  # m = 2 fresh samples and the prior


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
