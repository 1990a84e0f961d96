"""The benchmarks at smoke budgets, and the scoring levers the speed benchmark measures.

The speed benchmark runs a tiny configuration of every section (training throughput, single
calls, candidate evaluation against the GEMM peak, memory) and its report must be consistent with
itself: GFLOP/s = FLOPs / time, % of peak = GFLOP/s / peak, FLOPs from the layer shapes, ratios
from the per-agent numbers. The scoring tests check that each lever keeps the critic's values.
"""

import copy
import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from tianshou_qmle.net.critic import ActionInCritic
from tianshou_qmle.net.qmle_net import build_qmle_network

from .conftest import ROOT, load_script


def load_speed_module():
    return load_script("benchmarks/speed_qmle_vs_td3.py")


def close(a, b, rel=0.02, abs_=1e-3):
    return abs(a - b) <= max(abs_, rel * max(abs(a), abs(b)))


def test_speed_benchmark_smoke(tmp_path):
    speed = load_speed_module()
    report = speed.main([
        "--steps", "40", "--warmup", "100", "--batch-size", "32", "--m-greedy", "16", "--m-target", "8",
        "--repeats", "2", "--kernel-repeats", "2", "--peak-repeats", "2", "--buffer-size", "2000",
        "--algorithms", "qmle", "td3", "--memory-updates", "12", "--memory-every", "4",
        "--out", str(tmp_path),
    ])
    # end to end: both agents, CPU and wall rates from the same counts
    by_algo = {r["algorithm"]: r for r in report["results"]}
    assert set(by_algo) == {"qmle", "td3"}
    assert by_algo["qmle"]["learning_env_steps"] == 40 and by_algo["td3"]["learning_env_steps"] == 40
    assert by_algo["qmle"]["gradient_updates"] == 4 and by_algo["td3"]["gradient_updates"] == 40
    for r in report["results"]:
        assert r["env_steps_per_second"] > 0 and r["update_ms"] > 0 and r["act_ms"] > 0
        assert r["update_ms_cpu"] > 0 and r["act_ms_cpu"] > 0 and r["cpu_seconds"] > 0
        assert close(r["env_steps_per_cpu_second"], r["learning_env_steps"] / r["cpu_seconds"])
        assert close(r["env_steps_per_second"], r["learning_env_steps"] / r["seconds"])
    ratios = report["ratios"]
    for clock in ("second", "cpu_second"):
        expected = by_algo["qmle"][f"env_steps_per_{clock}"] / by_algo["td3"][f"env_steps_per_{clock}"]
        assert close(ratios[f"env_steps_per_{clock}_qmle_over_td3"], expected)
    assert close(ratios["env_steps_per_cpu_second_qmle_over_authors"],
                 by_algo["qmle"]["env_steps_per_cpu_second"] / 46.0)

    # the GEMM peak is the best of the measured shapes, per dtype
    assert set(report["peak"]) == {"fp32", "bf16"}
    for peak in report["peak"].values():
        assert peak["gflops_cpu"] == max(s["gflops_cpu"] for s in peak["shapes"]) > 0
        for s in peak["shapes"]:
            assert close(s["gflops_cpu"], 2 * s["m"] * s["k"] * s["n"] / s["cpu_ms"] / 1e6)

    # candidate evaluation: FLOPs from the layer shapes (walker: obs 24, act 6; widths 128/256)
    per_candidate = 2 * (6 * 128 + 128 * 256 + 256 * 256 + 256)
    per_state = 2 * 128 * 256
    kernels = report["kernels"]
    assert {r["shape"] for r in kernels} == {"target", "greedy"}
    variants = {r["variant"] for r in kernels}
    assert {"fp32_layers", "fp32_fused", "bf16_fused", "fp32_fused_compiled"} <= variants
    for r in kernels:
        assert r["flops"] == r["batch"] * r["m"] * per_candidate + r["batch"] * per_state
        assert close(r["gflops_cpu"], r["flops"] / r["cpu_ms"] / 1e6)
        assert close(r["gflops_wall"], r["flops"] / r["wall_ms"] / 1e6)
        assert r["peak_gflops_cpu"] == report["peak"][r["dtype"]]["gflops_cpu"]
        assert close(r["percent_of_peak"], 100 * r["gflops_cpu"] / r["peak_gflops_cpu"])
        assert 0 < r["percent_of_peak"] <= 100
        if r["dtype"] == "fp32":  # the float32 levers do not change the values
            assert r["max_abs_diff_vs_fp32_layers"] < 1e-4 and r["same_winner_fraction"] == 1.0
    target = [r for r in kernels if r["shape"] == "target"]
    assert {(r["batch"], r["m"]) for r in target} == {(32, 9)}  # m_target fresh candidates + the prior

    # memory: samples every 4 updates, slope refitted from the samples
    mem = report["memory"]
    assert mem["samples_update"] == [0, 4, 8, 12] and len(mem["samples_rss_mb"]) == 4
    start = next(i for i, u in enumerate(mem["samples_update"]) if u >= 0.1 * mem["updates"])
    slope = np.polyfit(mem["samples_update"][start:], mem["samples_rss_mb"][start:], 1)[0]
    assert abs(mem["growth_mb_per_update"] - slope) < 1e-3
    assert mem["update_ms_cpu_mean"] > 0

    goals = report["goals"]
    assert goals["qmle_over_td3_env_steps"]["value"] == ratios["env_steps_per_cpu_second_qmle_over_td3"]
    assert {"percent_of_peak_fp32", "percent_of_peak_bf16", "flat_memory", "over_authors"} <= set(goals)

    on_disk = json.loads((tmp_path / "speed_walker-walk.json").read_text())
    assert on_disk["ratios"] == report["ratios"] and on_disk["kernels"] == kernels
    assert (tmp_path / "speed_walker-walk.png").stat().st_size > 1000


# --- the scoring levers keep the values ---------------------------------------------------------


def random_inputs(critic, batch, m, seed=0):
    gen = torch.Generator().manual_seed(seed)
    obs = torch.randn(batch, critic.obs_dim, generator=gen)
    actions = torch.rand(batch, m, critic.act_dim, generator=gen) * 2 - 1
    return obs, actions


@pytest.mark.parametrize(("batch", "m", "block"), [(7, 11, 2048), (5, 30, 64), (1, 300, 128), (3, 1, 2)])
def test_fused_scoring_matches_the_layers(batch, m, block):
    """Blocks of whole states, part of one state's candidates, and partial last blocks."""
    torch.manual_seed(1)
    critic = ActionInCritic(obs_dim=5, act_dim=3, score_block=block)
    obs, actions = random_inputs(critic, batch, m)
    with torch.no_grad():
        features = critic.features(obs)
        layers = critic.q_layers(features, actions)
        fused = critic.score_candidates(features, actions)
    with torch.inference_mode():
        via_q = critic.q_from_features(critic.features(obs), actions)
    assert fused.shape == layers.shape == (batch, m)
    assert torch.allclose(fused, layers, atol=1e-5) and torch.allclose(via_q, layers, atol=1e-5)


def test_q_from_features_keeps_autograd_and_the_single_action_form():
    torch.manual_seed(2)
    critic = ActionInCritic(obs_dim=4, act_dim=2)
    obs, actions = random_inputs(critic, 6, 1)
    q = critic(obs, actions[:, 0])  # grad enabled: the layers
    assert q.shape == (6,) and q.requires_grad
    q.sum().backward()
    assert critic.joint.fc2.weight.grad is not None
    with torch.no_grad():
        assert torch.allclose(critic(obs, actions[:, 0]), q.detach(), atol=1e-5)
    # score_candidates never records a graph, even with grad enabled
    assert not critic.score_candidates(critic.features(obs), actions).requires_grad


def test_scoring_follows_optimizer_steps_and_target_copies():
    torch.manual_seed(3)
    critic = ActionInCritic(obs_dim=4, act_dim=2)
    target = copy.deepcopy(critic)
    obs, actions = random_inputs(critic, 4, 9)
    with torch.no_grad():
        before = critic.score_candidates(critic.features(obs), actions)
        target.score_candidates(target.features(obs), actions)
    optim = torch.optim.Adam(critic.parameters(), lr=0.1)
    critic(obs, actions[:, 0]).pow(2).mean().backward()
    optim.step()
    with torch.no_grad():
        features = critic.features(obs)
        after = critic.score_candidates(features, actions)
        assert not torch.allclose(after, before)
        assert torch.allclose(after, critic.q_layers(features, actions), atol=1e-5)
        # Tianshou's hard target copy writes through .data, which bumps no parameter version
        for tgt, src in zip(target.parameters(), critic.parameters(), strict=True):
            tgt.data.copy_(src.data)
        assert torch.allclose(target.score_candidates(target.features(obs), actions), after, atol=1e-6)
        assert torch.allclose(target.score_candidates(target.features(obs), actions, dtype=torch.bfloat16),
                              after, atol=0.05)


def test_bfloat16_scoring_returns_float32_close_to_the_layers():
    torch.manual_seed(4)
    critic = ActionInCritic(obs_dim=6, act_dim=4)
    obs, actions = random_inputs(critic, 32, 64)
    with torch.no_grad():
        features = critic.features(obs)
        exact = critic.q_layers(features, actions)
        low = critic.score_candidates(features, actions, dtype=torch.bfloat16)
    assert low.dtype == torch.float32
    spread = exact.std(dim=1, keepdim=True)
    assert torch.all((low - exact).abs() <= 0.1 * spread)
    assert (low.argmax(1) == exact.argmax(1)).float().mean() >= 0.9


def test_bilinear_head_starts_as_the_papers_critic_and_adds_a_state_weighted_dot_product():
    torch.manual_seed(7)
    plain = ActionInCritic(obs_dim=5, act_dim=3)
    torch.manual_seed(7)
    critic = ActionInCritic(obs_dim=5, act_dim=3, bilinear_head=True, score_block=16)
    obs, actions = random_inputs(critic, 4, 10)
    with torch.no_grad():
        features = critic.features(obs)
        assert torch.equal(features, plain.features(obs))
        assert torch.allclose(critic.q_layers(features, actions), plain.q_layers(features, actions))
        critic.bilinear.weight.normal_()
        critic.bilinear.bias.normal_()
        weights = features @ critic.bilinear.weight.T + critic.bilinear.bias  # [B, d]
        expected = plain.q_layers(features, actions) + (actions * weights.unsqueeze(1)).sum(-1)
        layers = critic.q_layers(features, actions)
        scored = critic.score_candidates(features, actions)
        low = critic.score_candidates(features, actions, dtype=torch.bfloat16)
    assert torch.allclose(layers, expected, atol=1e-5) and torch.allclose(scored, expected, atol=1e-5)
    assert low.dtype == torch.float32 and torch.allclose(low, expected, atol=0.1 * expected.std().item())
    critic(obs, actions[:, 0]).sum().backward()
    assert critic.bilinear.weight.grad is not None and critic.bilinear.weight.grad.abs().sum() > 0


def test_bilinear_head_reaches_the_network_builder_and_its_checkpoint():
    space = gym.spaces.Discrete(50)
    embeddings = torch.randn(50, 6)
    built = {
        on: build_qmle_network(obs_dim=4, action_space=space, action_embeddings=embeddings, bilinear_head=on)
        for on in (False, True)
    }
    model = built[True]
    assert model.critic.bilinear.weight.shape == (6, model.critic.obs_width)
    assert built[False].critic.bilinear is None
    assert {"critic.bilinear.weight", "critic.bilinear.bias"} <= set(model.state_dict())


def test_reference_scoring_of_the_benchmark_is_the_layers():
    speed = load_speed_module()
    torch.manual_seed(5)
    critic = ActionInCritic(obs_dim=3, act_dim=2)
    obs, actions = random_inputs(critic, 3, 5)
    with torch.no_grad():
        features = critic.features(obs)
        reference = speed.reference_scoring(critic, features, actions)
        assert torch.equal(reference, critic.q_layers(features, actions))
        assert speed.reference_scoring(critic, features, actions, dtype=torch.bfloat16).dtype == torch.float32


@pytest.mark.slow
def test_compiled_scoring_matches_eager():
    """torch.compile of the scoring kernel (opt-in): compiles for a few seconds to a minute."""
    torch.manual_seed(6)
    critic = ActionInCritic(obs_dim=5, act_dim=3, compile_scoring=True)
    obs, actions = random_inputs(critic, 8, 100)  # 800 candidates: compiled blocks
    with torch.inference_mode():
        features = critic.features(obs)
        compiled = critic.score_candidates(features, actions)
        low = critic.score_candidates(features, actions, dtype=torch.bfloat16)
        critic.compile_scoring = False
        eager = critic.score_candidates(features, actions)
    assert torch.allclose(compiled, eager, atol=1e-5)
    assert (low.argmax(1) == eager.argmax(1)).float().mean() >= 0.75


def test_run_matrix_runs_variants_and_tabulates(tmp_path):
    matrix = load_script("benchmarks/run_matrix.py")
    report = matrix.main([
        "--script", str(ROOT / "examples" / "mujoco_iq.py"), "--tasks", "Pendulum-v1", "--seeds", "0", "1",
        "--total-steps", "1100", "--variant", "iq=--algo iq --hidden-sizes 32,32", "--workers", "2",
        "--out", str(tmp_path), "--", "--warmup", "1000", "--epoch-steps", "100", "--eval-episodes", "1",
        "--num-test-envs", "1", "--test-episodes", "1",
    ])
    assert report["failed"] == []
    assert sorted(report["results"]) == ["iq__Pendulum-v1__seed0", "iq__Pendulum-v1__seed1"]
    for summary in report["results"].values():
        assert summary["env_steps"] == 1100 and summary["algorithm"] == "iq"
    returns = [s["eval_return_mean"] for s in report["results"].values()]
    table = (tmp_path / "table.md").read_text()
    assert f"{np.mean(returns):.1f} ±" in table and "(n=2," in table


def load_bandit_module():
    return load_script("benchmarks/bandit_fig2.py")


def test_bandit_fig2_smoke_starts_every_method_from_the_same_delta(tmp_path):
    bandit = load_bandit_module()
    report = bandit.main([
        "--seeds", "3", "--updates", "40", "--record-every", "20", "--warmup", "64", "--critic-warmup", "5",
        "--batch-size", "32", "--m-target", "8", "--grid", "5", "--explorations", "epsilon",
        "--methods", "dpg", "qmle-local", "qmle-global-prior", "--out", str(tmp_path),
    ])
    runs = report["runs"]
    assert [r["method"] for r in runs] == ["dpg", "qmle-local", "qmle-global-prior"]
    starts = np.array([r["trajectory"][0] for r in runs])
    np.testing.assert_allclose(starts, starts[[0, 0, 0]], atol=1e-6)  # one network, one seed
    for r in runs:
        assert len(r["trajectory"]) == 3 and len(r["q_grid"]) == 25  # start, update 20, end
        assert np.all(np.abs(r["trajectory"]) <= 1.0)
        assert r["final_reward"] == pytest.approx(float(bandit.bimodal_reward(np.array(r["final_delta"]))))
    assert [row["seeds"] for row in report["summary"]] == [1, 1, 1]
    assert (tmp_path / "fig2.png").stat().st_size > 0
    assert "| epsilon | dpg | " in (tmp_path / "table.md").read_text()


def load_critic_fit_module():
    return load_script("benchmarks/recsim_critic_fit.py")


CRITIC_FIT_SMOKE = ["--transitions", "300", "--steps", "3", "6", "--variants", "w32+bilinear", "w32",
                    "--seeds", "0", "--eval-episodes", "2", "--candidates", "16"]


def test_recsim_critic_fit_smoke_is_repeatable_and_keeps_its_report(tmp_path):
    fit = load_critic_fit_module()
    first = fit.main([*CRITIC_FIT_SMOKE, "--out", str(tmp_path / "a")])
    again = fit.main([*CRITIC_FIT_SMOKE, "--out", str(tmp_path / "b")])
    assert first["runs"] == again["runs"]  # one seed, one run
    assert json.loads((tmp_path / "a" / "fit.json").read_text()) == first
    assert (tmp_path / "a" / "fit.png").stat().st_size > 1000
    (run,) = first["runs"]
    assert 0 < run["p_variance"] < 0.25  # a probability's variance
    assert 0 <= run["random_clicks"] <= run["oracle_clicks"] <= 20
    for variant in ("w32+bilinear", "w32"):
        points = run["variants"][variant]
        assert [p["steps"] for p in points] == [3, 6]
        assert all(p["heldout_mse"] >= 0 and 0 <= p["clicks"] <= 20 for p in points)


@pytest.mark.parametrize(("flags", "match"), [
    (["--steps", "6", "3"], "increasing"),
    (["--steps", "0"], "--steps"),
    (["--transitions", "0"], "--transitions"),
    (["--candidates", "0"], "--candidates"),
])
def test_recsim_critic_fit_rejects_bad_budgets(flags, match):
    with pytest.raises(ValueError, match=match):
        load_critic_fit_module().main(flags)


def test_step_cost_splits_acting_and_updates_and_divides_by_the_baseline(tmp_path):
    bench = load_script("benchmarks/step_cost.py")
    report = bench.main([
        "--algorithms", "qmle-efficient+no-compile-scoring", "td3", "--updates", "3", "--collect-steps", "10",
        "--rounds", "2", "--warmup-updates", "2", "--fill-steps", "300", "--out", str(tmp_path),
    ])
    qmle, td3 = report["results"]["qmle-efficient+no-compile-scoring"], report["results"]["td3"]
    assert qmle["updates_per_env_step"] == 0.5 and td3["updates_per_env_step"] == 1.0
    for row in (qmle, td3):
        assert len(row["per_round"]["update_cpu_ms"]) == len(row["per_round"]["collect_cpu_ms"]) == 2
        assert row["update_cpu_ms"] > 0 and row["collect_cpu_ms"] > 0
    assert td3["step_ratio_to_baseline"] == 1.0
    assert td3["step_cpu_ms"] == pytest.approx(td3["collect_cpu_ms"] + td3["update_cpu_ms"], rel=0.2)
    assert json.loads((tmp_path / "step_cost_cartpole-swingup.json").read_text())["results"].keys() == {
        "qmle-efficient+no-compile-scoring", "td3"}
    assert (tmp_path / "step_cost_cartpole-swingup.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("flags, match", [
    (["--baseline", "sac"], "--baseline 'sac' must be one of --algorithms"),
    (["--rounds", "0"], "--rounds must be ≥ 1, got 0"),
    (["--algorithms", "td4"], "--algorithms: unknown algorithm 'td4'"),
])
def test_step_cost_rejects_bad_flags(flags, match):
    with pytest.raises(SystemExit, match=match):
        load_script("benchmarks/step_cost.py").main(flags)


def test_iq_bandit_entropy_compares_the_fit_with_the_softmax(tmp_path):
    bench = load_script("benchmarks/iq_bandit_entropy.py")
    result = bench.main(["--taus", "0.1", "10", "--updates", "300", "--transitions", "500",
                         "--out", str(tmp_path)])
    low, high = result["results"]
    for row in (low, high):
        assert 0.0 <= row["learned_entropy"] <= np.log(11) + 1e-6
        assert 0.0 < row["mean_prob_of_replayed_action"] < 1.0
    assert low["softmax_entropy"] < 1.0 < 2.3 < high["softmax_entropy"]  # the exact solution spreads with τ
    assert high["learned_entropy"] > low["learned_entropy"]
    assert json.loads((tmp_path / "iq_bandit_entropy.json").read_text())["results"] == result["results"]


@pytest.mark.parametrize("flags, match", [
    (["--taus", "0"], "--taus must be finite and > 0"),
    (["--bins", "1"], "--bins must be ≥ 2, got 1"),
])
def test_iq_bandit_entropy_rejects_bad_flags(flags, match, capsys):
    with pytest.raises(SystemExit):
        load_script("benchmarks/iq_bandit_entropy.py").main(flags)
    assert match in capsys.readouterr().err
