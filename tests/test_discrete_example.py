"""examples/dmc_qmle_discrete.py: QMLE, DQN and BDQN on bang-off-bang DMC tasks.

Fast tests run each agent at a tiny budget and check the summary contract, the checkpoint and every
action the environment received; the DQN refusal on huge joint action sets; the agents' settings
(App. D.3 / Table 1). The learning test (``-m slow``) trains QMLE at its defaults.
"""

import json

import numpy as np
import pytest
import torch

from tianshou_qmle.env.discretize import DiscretizedActions, JointDiscreteActions
from tianshou_qmle.experiment.runner import SUMMARY_KEYS
from tianshou_qmle.net.predictors import FactoredCategoricalPredictor
from tianshou_qmle.utils import has_native_bf16

from .conftest import load_script

torch.set_num_threads(1)

TINY_RUN = [
    "--total-steps", "1300", "--warmup", "1000", "--epoch-steps", "300", "--m-greedy", "16",
    "--m-target", "8", "--batch-size", "32", "--eval-episodes", "1", "--num-test-envs", "1",
    "--test-episodes", "1", "--no-progress", "--seed", "2", "--task", "finger-spin",
]
"""1000 random steps, then 300 learning steps = 30 updates; a test episode before and after the one
epoch, and one evaluation episode (1000 steps each)."""


def load_example():
    return load_script("examples/dmc_qmle_discrete.py")


@pytest.fixture
def env_actions(monkeypatch):
    """Every action handed to a discretised env's ``step`` (bin indices), and every joint index
    handed to the DQN env's, recorded in this process (Dummy vector envs)."""
    seen = {"bins": [], "joint": []}
    bins_action, joint_action = DiscretizedActions.action, JointDiscreteActions.action

    def record_bins(self, action):
        seen["bins"].append(np.array(action, copy=True))
        return bins_action(self, action)

    def record_joint(self, action):
        seen["joint"].append(np.array(action, copy=True))
        return joint_action(self, action)

    monkeypatch.setattr(DiscretizedActions, "action", record_bins)
    monkeypatch.setattr(JointDiscreteActions, "action", record_joint)
    return seen


def test_help_documents_every_flag():
    text = load_example().build_parser().format_help()
    for flag in ("--algo", "--action-bins", "--task", "--total-steps", "--summary-json", "--m-greedy",
                 "--m-target", "--ratios", "--double", "--max-joint-actions", "--bdqn-common-sizes",
                 "--uniform-replay", "--target-update-env-steps", "--threads"):
        assert flag in text
    assert "{qmle,dqn,bdqn}" in text and "(default: walker-walk)" in text


@pytest.mark.parametrize("algo", ["qmle", "dqn", "bdqn"])
def test_tiny_run_keeps_the_summary_contract_and_sends_valid_actions(algo, tmp_path, env_actions):
    summary_path = tmp_path / "summary.json"
    summary = load_example().main([
        *TINY_RUN, "--algo", algo, "--logdir", str(tmp_path / "log"), "--summary-json", str(summary_path),
    ])
    on_disk = json.loads(summary_path.read_text())
    assert on_disk == summary
    assert set(SUMMARY_KEYS) <= set(on_disk)
    assert on_disk["task"] == "finger-spin" and on_disk["algorithm"] == algo and on_disk["seed"] == 2
    assert on_disk["env_steps"] == 1300
    assert (on_disk["action_bins"], on_disk["action_dims"], on_disk["joint_actions"]) == (3, 2, 9)
    assert 0.0 <= on_disk["eval_return_mean"] <= 1000.0
    assert on_disk["gradient_updates_per_second"] > 0

    checkpoint = torch.load(tmp_path / "log" / "finger-spin" / algo / "seed_2" / "checkpoint.pt",
                            weights_only=True)
    assert checkpoint["env_step"] == 1300 and checkpoint["gradient_step"] == 30
    weights = [v for v in checkpoint["algorithm"].values() if torch.is_tensor(v) and v.is_floating_point()]
    assert len(weights) > 10 and all(bool(torch.isfinite(w).all()) for w in weights)

    # 1300 training steps, 2 test episodes (before and after the epoch) and 1 evaluation episode of
    # 1000 steps each: all of them bin indices of finger-spin
    bins = np.stack(env_actions["bins"])
    assert bins.shape == (4300, 2) and bins.dtype == np.int64
    assert bins.min() == 0 and bins.max() == 2
    assert all(set(np.unique(bins[:, j])) == {0, 1, 2} for j in range(2))
    if algo == "dqn":  # DQN acts in Discrete(9); the joint env decodes each index to those bins
        joint = np.array([int(a) for a in env_actions["joint"]])
        assert len(joint) == 4300 and joint.min() >= 0 and joint.max() <= 8
        np.testing.assert_array_equal(np.stack(np.unravel_index(joint, (3, 3)), axis=1), bins)
    else:
        assert env_actions["joint"] == []


def test_dqn_refuses_joint_action_sets_it_cannot_enumerate(tmp_path):
    # humanoid-walk has 21 action dimensions: 3^21 = 10 460 353 203 joint actions
    with pytest.raises(SystemExit) as refusal:
        load_example().main(["--algo", "dqn", "--task", "humanoid-walk", "--logdir", str(tmp_path / "log")])
    message = str(refusal.value)
    assert "intractable" in message and "10460353203" in message and "--algo qmle" in message
    assert not (tmp_path / "log").exists()  # refused before any environment or network was built


def test_dqn_limit_is_a_flag(tmp_path):
    with pytest.raises(SystemExit, match=r"intractable.*has 729 actions"):
        load_example().main(["--algo", "dqn", "--max-joint-actions", "728", "--logdir", str(tmp_path)])


@pytest.mark.parametrize(("flags", "match"), [
    (["--algo", "bdqn", "--n-step", "3"], "1-step returns only"),
    (["--algo", "dqn", "--ratios", "0.5,0.5"], "--algo qmle only"),
    (["--update-every", "7"], "multiple of --update-every"),
])
def test_inconsistent_flags_exit_with_a_reason(flags, match, tmp_path):
    with pytest.raises(SystemExit, match=match):
        load_example().main([*flags, "--logdir", str(tmp_path)])


def build_default(algo: str, task: str = "walker-walk"):
    example = load_example()
    args = example.build_parser().parse_args(["--algo", algo, "--task", task])
    env = example.env_factory(args)()
    return example.build_algorithm(args, env), env


def test_qmle_uses_app_d3_settings():
    algorithm, env = build_default("qmle")
    policy = algorithm.policy
    assert policy.proposal_ratios == (0.9, 0.1) and policy.m_greedy == 1000 and policy.eps_training == 0.1
    assert algorithm.m_target == 100 and algorithm.gamma == 0.99
    assert algorithm.target_update_freq == 200  # 2000 env steps at one update per 10 env steps
    predictors = policy.model.predictor_list()
    assert len(predictors) == 1 and isinstance(predictors[0], FactoredCategoricalPredictor)
    assert list(env.action_space.nvec) == [3] * 6
    assert algorithm.optim._optim.param_groups[0]["lr"] == 5e-4


def test_no_prior_flag_turns_off_the_stored_prior():
    assert build_default("qmle")[0].use_stored_prior
    example = load_example()
    args = example.build_parser().parse_args(["--algo", "qmle", "--task", "walker-walk", "--no-prior"])
    assert not example.build_algorithm(args, example.env_factory(args)()).use_stored_prior


def test_dqn_is_the_action_out_ablation():
    algorithm, env = build_default("dqn")
    assert env.action_space.n == 3**6
    assert algorithm.target_update_freq == 200 and not algorithm.is_double and algorithm.gamma == 0.99
    assert algorithm.policy.eps_training == 0.1 and algorithm.policy.eps_inference == 0.0
    net = algorithm.policy.model
    assert net.obs_stream.embed.out_features == 128 and net.head.in_features == 256
    values, _ = net(np.zeros((4, 24), dtype=np.float32))
    assert values.shape == (4, 729)


def test_bdqn_branches_per_dimension():
    algorithm, _ = build_default("bdqn")
    net = algorithm.policy.model
    assert net.num_branches == 6 and net.action_per_branch == 3
    assert algorithm.target_update_freq == 200 and not algorithm.is_double
    values, _ = net(np.zeros((4, 24), dtype=np.float32))
    assert values.shape == (4, 6, 3)  # d·K outputs, not K^d


def load_benchmark():
    return load_script("benchmarks/discrete_update_cost.py")


def test_update_cost_benchmark_smoke(tmp_path):
    report = load_benchmark().main([
        "--tasks", "finger-spin", "--algorithms", "qmle", "dqn", "--repeats", "2", "--warmup-updates", "1",
        "--fill-steps", "300", "--m-greedy", "16", "--m-target", "8", "--batch-size", "64",
        "--buffer-size", "5000", "--out", str(tmp_path),
    ])
    rows = {r["algorithm"]: r for r in report["results"]}
    assert set(rows) == {"qmle", "dqn"} and all(r["status"] == "ok" for r in rows.values())
    for r in rows.values():
        assert r["update_cpu_ms"] > 0 and r["update_ms"] > 0 and r["gflops"] > 0 and r["parameters"] > 0
        assert r["largest_tensor_mb"] > 0 and r["allocated_mb"] >= r["largest_tensor_mb"]
    # QMLE's largest tensor: the joint block's activations over batch × (m_target + prior)
    # candidates, 64 × 9 × 256 float32 (in some layout), over twice the 256 × 256 joint weights
    assert np.prod(rows["qmle"]["largest_tensor_shape"]) == 64 * (8 + 1) * 256
    scoring_bytes = 2 if has_native_bf16() else 4  # --scoring-dtype auto
    assert rows["qmle"]["largest_tensor_mb"] == pytest.approx(64 * 9 * 256 * scoring_bytes / 2**20, abs=1e-3)
    expected = rows["dqn"]["update_cpu_ms"] / rows["qmle"]["update_cpu_ms"]
    assert report["ratios"]["finger-spin"]["dqn_over_qmle_update_cpu_ms"] == pytest.approx(expected, rel=1e-2)
    on_disk = json.loads((tmp_path / "discrete_update_cost.json").read_text())
    assert on_disk["results"] == report["results"] and on_disk["machine"]["torch_threads"] == 1
    assert (tmp_path / "discrete_update_cost.png").stat().st_size > 1000


def test_update_cost_benchmark_marks_dqn_intractable_with_its_size():
    bench = load_benchmark()
    row = bench.measure("dqn", "dog-walk", bench.build_parser().parse_args([]))
    assert row["status"] == "intractable" and row["joint_actions"] == 3**38 and row["action_dims"] == 38
    assert row["output_layer_bytes"] == 4 * 257 * 3**38  # 256 inputs + bias per joint action, float32
    assert "intractable" in row["reason"]


# Uniformly random bang-off-bang play on cartpole-swingup, 10 episodes (env seeds 10000-10009, the
# example's test-env seeds): return 36.7 ± 18.9 (mean ± std), best episode 67.1. Swinging the pole
# up and holding it scores 800+. Measured for this test (seed 0, Table 1 settings, 10k steps = 900
# updates): 107.2 ± 5.0 over the 10 greedy evaluation episodes, in 4 min on a loaded 2-core CPU.
# The threshold sits above every random episode and 27 below the measured return.
RANDOM_CARTPOLE_SWINGUP = 36.7
LEARNING_THRESHOLD = 80.0
LEARNING_BUDGET = 10_000  # env steps, 1000 of them random warm-up


@pytest.mark.slow
def test_qmle_learns_discretised_cartpole_swingup(tmp_path):
    summary = load_example().main([
        "--algo", "qmle", "--task", "cartpole-swingup", "--total-steps", str(LEARNING_BUDGET),
        "--seed", "0", "--no-progress", "--logdir", str(tmp_path / "log"),
    ])
    assert summary["env_steps"] == LEARNING_BUDGET
    assert summary["eval_return_mean"] > LEARNING_THRESHOLD > RANDOM_CARTPOLE_SWINGUP
