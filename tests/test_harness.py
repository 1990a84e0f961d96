"""The learning-curve harness (benchmarks/learning.py, benchmarks/harness/).

The smoke tier runs end to end once (two subprocess runs, about a minute on a free core); the
statistics, the aggregate table, the tiers and the builders are checked on hand-built numbers.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.harness import stats, tiers  # noqa: E402
from benchmarks.harness.algorithms import build_qmle, entry_for, qmle_defaults, registry  # noqa: E402
from benchmarks.harness.executor import ProtocolMismatchError, load_result, run_all  # noqa: E402
from benchmarks.harness.report import ROW_KEYS, iqm_section, markdown, table_rows  # noqa: E402
from benchmarks.harness.spec import RunSpec, eval_points, result_path  # noqa: E402
from benchmarks.harness.tasks import make_task_envs, score_range, task_kind  # noqa: E402
from benchmarks.harness.worker import CURVE_KEYS, RESULT_KEYS  # noqa: E402

from .conftest import load_script  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def load_learning():
    return load_script("benchmarks/learning.py", name="learning_cli")


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    assert len(data) > 5000, f"{path} is suspiciously small ({len(data)} bytes)"


# ---------------------------------------------------------------------------------------------
# the smoke tier, end to end


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke")
    learning = load_learning()
    started = time.perf_counter()
    summary = learning.main(["--tier", "smoke", "--out", str(out)])
    return learning, out, summary, time.perf_counter() - started


def test_smoke_runs_write_complete_results(smoke):
    _, out, summary, _ = smoke
    assert summary["failed"] == [] and summary["missing"] == []
    assert summary["outcomes"] == {"qmle__cartpole-swingup__seed0": "done",
                                   "td3__cartpole-swingup__seed0": "done"}
    updates = {"qmle": 100, "td3": 1000}  # 1000 learning steps: one update per 10 steps vs per step
    for algo in ("qmle", "td3"):
        result = json.loads((out / "runs" / "cartpole-swingup" / f"{algo}__seed0.json").read_text())
        assert set(RESULT_KEYS) <= set(result), set(RESULT_KEYS) - set(result)
        assert (result["algorithm"], result["task"], result["seed"]) == (algo, "cartpole-swingup", 0)
        assert result["protocol"] == {
            "algorithm": algo, "task": "cartpole-swingup", "seed": 0, "budget": 2000, "warmup": 1000,
            "eval_interval": 1000, "eval_episodes": 1, "threads": 1, "device": "cpu",
        }
        # two evaluation points (1000 and 2000 env steps), one deterministic episode each
        assert [p["env_step"] for p in result["curve"]] == [1000, 2000]
        for point in result["curve"]:
            assert set(CURVE_KEYS) <= set(point)
            assert len(point["returns"]) == 1 and point["return_mean"] == point["returns"][0]
            assert 0.0 <= point["return_mean"] <= 1000.0  # a DMC return
        warmup_point, learning_point = result["curve"]
        assert warmup_point["training"] == {}  # the first 1000 steps are the random warm-up
        stats = learning_point["training"]
        loss_key = "critic_loss" if algo == "qmle" else "critic1_loss"
        assert stats[loss_key] > 0 and all(math.isfinite(v) for v in stats.values())
        if algo == "qmle":
            assert 0.0 <= stats["prior_kept_fraction"] <= 1.0
        # the training collector finished the run's second 1000-step episode in that segment
        assert stats["train_episodes"] == 1 and 0.0 <= stats["train_episode_return"] <= 1000.0
        assert result["final_return_mean"] == result["curve"][-1]["return_mean"]
        assert result["env_steps"] == 2000 and result["gradient_updates"] == updates[algo]
        learning_seconds = result["timing"]["learning_seconds"]
        assert result["env_steps_per_second"] == pytest.approx(1000 / learning_seconds, rel=0.02)
        assert result["gradient_updates_per_second"] == pytest.approx(updates[algo] / learning_seconds,
                                                                      rel=0.02)
        assert result["timing"]["wall_seconds"] >= learning_seconds + result["timing"]["evaluation_seconds"]
        assert result["peak_rss_mib"] > 100  # torch alone is larger than that
        for lib in ("torch", "tianshou", "gymnasium", "dm_control", "numpy", "python"):
            assert re.match(r"\d+\.\d+", result["versions"][lib]), (lib, result["versions"][lib])
        assert result["machine"]["torch_threads"] == 1 and result["machine"]["logical_cpus"] >= 1
        assert result["machine"]["cpu_model"] and result["machine"]["memory_gib"] > 0
        assert re.fullmatch(r"[0-9a-f]{40}", result["git"]["commit"])
        assert time.strptime(result["date"], "%Y-%m-%dT%H:%M:%S%z")
    qmle = json.loads((out / "runs" / "cartpole-swingup" / "qmle__seed0.json").read_text())
    assert qmle["hyperparameters"]["m_greedy"] == 1000 and qmle["hyperparameters"]["update_every"] == 10


def test_smoke_aggregate_lists_every_task_and_algorithm(smoke):
    _, out, summary, _ = smoke
    assert [(r["task"], r["algorithm"]) for r in summary["rows"]] == [
        ("cartpole-swingup", "qmle"), ("cartpole-swingup", "td3")]
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["rows"] == summary["rows"]
    table = (out / "table.md").read_text()
    for row in summary["rows"]:
        assert set(ROW_KEYS) <= set(row)
        run = json.loads((out / row_path(row)).read_text())
        assert row["seeds"] == [0] and row["final_return_sem"] is None
        assert row["final_return_mean"] == round(run["final_return_mean"], 2)
        assert row["env_steps_per_second"] == round(run["env_steps_per_second"], 2)
        assert f"| cartpole-swingup | {row['label']} | {row['final_return_mean']:.1f} ± n/a | 1 |" in table
    assert summary["iqm"] is None and "at least two tasks" in table  # one task: no IQM


def row_path(row: dict) -> str:
    return f"runs/{row['task']}/{row['algorithm']}__seed0.json"


def test_smoke_plots_are_pngs(smoke):
    _, out, summary, _ = smoke
    assert sorted(summary["plots"]) == ["plots/curves_cartpole-swingup.png", "plots/speed.png"]
    for name in summary["plots"]:
        assert_png(out / name)


def test_second_invocation_skips_finished_runs(smoke):
    learning, out, _, first_seconds = smoke
    runs = sorted((out / "runs").rglob("*.json"))
    stamps = [p.stat().st_mtime_ns for p in runs]
    started = time.perf_counter()
    again = learning.main(["--tier", "smoke", "--out", str(out)])
    assert set(again["outcomes"].values()) == {"skipped"}
    assert [p.stat().st_mtime_ns for p in runs] == stamps
    assert again["rows"] == json.loads((out / "summary.json").read_text())["rows"]
    assert time.perf_counter() - started < first_seconds / 2


# ---------------------------------------------------------------------------------------------
# execution: Ray, protocol clashes


@pytest.mark.skipif(importlib.util.find_spec("ray") is not None, reason="ray is installed")
def test_ray_flag_without_ray_fails_clearly(tmp_path):
    with pytest.raises(SystemExit) as err:
        load_learning().main(["--tier", "smoke", "--ray", "--out", str(tmp_path)])
    message = str(err.value)
    assert "--ray needs Ray" in message and "pip install ray" in message and "--workers" in message
    assert not (tmp_path / "runs").exists()  # nothing ran


def test_ray_runs_write_results(tmp_path):
    """Two short runs on a real local Ray cluster of 2 CPUs come back with their JSON and logs."""
    ray = pytest.importorskip("ray")
    specs = [small_spec(task="Pendulum-v1", budget=400, warmup=200, eval_interval=200, seed=seed)
             for seed in (0, 1)]
    try:
        outcomes = run_all(specs, out=tmp_path, workers=2, use_ray=True)
        assert [o.status for o in outcomes] == ["done", "done"]
        for spec in specs:
            result = load_result(tmp_path, spec)
            assert [p["env_step"] for p in result["curve"]] == [200, 400]
            assert result["gradient_updates"] == 200
            log = (tmp_path / "logs" / "Pendulum-v1" / f"td3__seed{spec.seed}.log").read_text()
            assert f"[td3] Pendulum-v1 seed={spec.seed}" in log
        assert ray.cluster_resources().get("CPU") == 2
        assert [o.status for o in run_all(specs, out=tmp_path, use_ray=True)] == ["skipped", "skipped"]
    finally:
        ray.shutdown()


def small_spec(**changes) -> RunSpec:
    fields = {"algorithm": "td3", "task": "cartpole-swingup", "seed": 0, "budget": 2000, "warmup": 1000,
              "eval_interval": 1000, "eval_episodes": 1, "threads": 1}
    return RunSpec(**{**fields, **changes})


def test_result_with_another_protocol_stops_before_running(tmp_path):
    spec = small_spec()
    path = result_path(tmp_path, spec)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"protocol": small_spec(budget=5000).protocol()}))
    with pytest.raises(ProtocolMismatchError, match="another --out"):
        load_result(tmp_path, spec)
    with pytest.raises(ProtocolMismatchError):
        run_all([small_spec(seed=1), spec], out=tmp_path)
    assert not result_path(tmp_path, small_spec(seed=1)).exists()
    path.write_text(json.dumps({"protocol": spec.protocol(), "final_return_mean": 1.0}))
    assert load_result(tmp_path, spec)["final_return_mean"] == 1.0
    assert load_result(tmp_path, small_spec(seed=2)) is None


def test_run_spec_round_trips_and_validates():
    spec = small_spec(algorithm="qmle", seed=3)
    assert RunSpec.from_json(spec.to_json()) == spec
    assert spec.name == "qmle__cartpole-swingup__seed3"
    with pytest.raises(ValueError, match="warm-up"):
        small_spec(warmup=2000).validate()
    with pytest.raises(ValueError, match="episodes"):
        small_spec(eval_episodes=0).validate()


def test_eval_points():
    assert eval_points(budget=2000, interval=1000) == [1000, 2000]
    assert eval_points(budget=2500, interval=1000) == [1000, 2000, 2500]
    assert eval_points(budget=500, interval=1000) == [500]


# ---------------------------------------------------------------------------------------------
# statistics on hand-built numbers


def test_mean_sem():
    mean, sem = stats.mean_sem([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5
    assert sem == pytest.approx(math.sqrt(5 / 3) / 2)  # sample std √(5/3), n = 4
    assert stats.mean_sem([7.0]) == (7.0, None)


def test_iqm_of_known_arrays():
    assert stats.iqm(np.arange(1, 9)) == 4.5  # cuts 1, 2 and 7, 8
    assert stats.iqm([0, 0, 1, 2, 3, 4, 100, 100]) == 2.5  # outliers dropped
    assert stats.iqm([[1, 2, 3], [4, 5, 6]]) == stats.iqm([1, 2, 3, 4, 5, 6]) == 3.5
    assert stats.iqm([3.0]) == 3.0
    scipy_stats = pytest.importorskip("scipy.stats")
    values = np.random.default_rng(0).normal(size=(5, 7))
    assert stats.iqm(values) == pytest.approx(scipy_stats.trim_mean(values, 0.25, axis=None))


def test_stratified_bootstrap_contains_iqm_and_resamples_within_tasks():
    scores = np.random.default_rng(1).uniform(size=(5, 4))
    low, high = stats.stratified_bootstrap_ci(scores, reps=2000, seed=0)
    assert low <= stats.iqm(scores) <= high and low < high
    assert stats.stratified_bootstrap_ci(scores, reps=2000, seed=0) == (low, high)  # seeded
    # runs identical within each task: every stratified resample is the data itself
    same_runs = np.tile([0.1, 0.5, 0.9, 0.3], (4, 1))
    low, high = stats.stratified_bootstrap_ci(same_runs, reps=500)
    assert low == pytest.approx(stats.iqm(same_runs)) and high == pytest.approx(stats.iqm(same_runs))


def test_iqm_with_ci_own_and_rliable_agree():
    score_dict = {"a": np.array([[0.1, 0.4], [0.2, 0.5], [0.3, 0.6]]), "b": np.full((3, 2), 0.7)}
    own, method = stats.iqm_with_ci(score_dict, reps=2000, use_rliable=False)
    assert method.startswith("own:")
    assert own["a"].value == pytest.approx(0.35) and own["b"].value == pytest.approx(0.7)
    assert own["a"].low <= 0.35 <= own["a"].high
    assert own["b"].low == pytest.approx(0.7) and own["b"].high == pytest.approx(0.7)
    if not stats.rliable_available():
        pytest.skip("rliable not installed")
    theirs, method = stats.iqm_with_ci(score_dict, reps=2000, use_rliable=True)
    assert method.startswith("rliable")
    for name in score_dict:
        assert theirs[name].value == pytest.approx(own[name].value)
        assert theirs[name].low == pytest.approx(own[name].low, abs=0.03)
        assert theirs[name].high == pytest.approx(own[name].high, abs=0.03)


def test_normalise_scores_known_and_min_max_ranges():
    finals = {("walker-walk", "a"): [250.0, 500.0], ("Pendulum-v1", "a"): [-1000.0, -200.0],
              ("Pendulum-v1", "b"): [-600.0]}
    normalised, used = stats.normalise_scores(finals, ranges=score_range)
    assert normalised[("walker-walk", "a")] == [0.25, 0.5]
    assert normalised[("Pendulum-v1", "a")] == [0.0, 1.0] and normalised[("Pendulum-v1", "b")] == [0.5]
    assert used["walker-walk"]["how"] == "known score range"
    assert used["Pendulum-v1"] == {"low": -1000.0, "high": -200.0, "how": "min-max over the runs shown"}


def test_summarise_curves():
    curves = [[{"env_step": 1000, "return_mean": 10.0}, {"env_step": 2000, "return_mean": 30.0}],
              [{"env_step": 1000, "return_mean": 20.0}, {"env_step": 2010, "return_mean": 50.0}]]
    s = stats.summarise_curves(curves)
    assert s.seeds == 2
    np.testing.assert_allclose(s.env_steps, [1000, 2005])
    np.testing.assert_allclose(s.mean, [15.0, 40.0])
    np.testing.assert_allclose(s.sem, [5.0, 10.0])  # std(ddof=1) / √2 of (10, 20) and (30, 50)


def fake_result(*, task: str, algorithm: str, seed: int, final: float, speed: float = 50.0) -> dict:
    return {"task": task, "algorithm": algorithm, "label": algorithm.upper(), "seed": seed,
            "final_return_mean": final, "env_steps_per_second": speed,
            "gradient_updates_per_second": speed / 10, "peak_rss_mib": 400.0 + seed,
            "timing": {"wall_seconds": 60.0},
            "curve": [{"env_step": 1000, "return_mean": final / 2}, {"env_step": 2000, "return_mean": final}]}


@pytest.fixture
def two_task_results():
    results = []
    for seed, (cart, walk) in enumerate([(100, 400), (200, 500), (300, 600)]):
        results.append(fake_result(task="cartpole-swingup", algorithm="a", seed=seed, final=cart,
                                   speed=40 + seed))
        results.append(fake_result(task="walker-walk", algorithm="a", seed=seed, final=walk))
        results.append(fake_result(task="cartpole-swingup", algorithm="b", seed=seed, final=700))
    results.append(fake_result(task="walker-walk", algorithm="b", seed=1, final=800))  # only seed 1
    return results


def test_table_rows_mean_sem_and_missing(two_task_results):
    rows = table_rows(two_task_results, tasks=["cartpole-swingup", "walker-walk"], algorithms=["a", "b", "c"])
    assert [(r["task"], r["algorithm"]) for r in rows] == [
        (t, a) for t in ("cartpole-swingup", "walker-walk") for a in ("a", "b", "c")]
    cart_a = rows[0]
    assert cart_a["seeds"] == [0, 1, 2] and cart_a["final_return_mean"] == 200.0
    assert cart_a["final_return_sem"] == pytest.approx(round(100 / math.sqrt(3), 2))
    assert cart_a["env_steps_per_second"] == 41.0 and cart_a["peak_rss_mib"] == 402.0
    assert rows[4]["seeds"] == [1] and rows[4]["final_return_sem"] is None  # walker-walk, b
    assert rows[2]["seeds"] == [] and rows[2]["final_return_mean"] is None  # c never ran


def test_iqm_section_uses_common_seeds_and_normalises(two_task_results, tmp_path):
    section = iqm_section(two_task_results, tasks=["cartpole-swingup", "walker-walk"], algorithms=["a", "b"],
                          reps=1000, use_rliable=False)
    a, b = section["algorithms"]["a"], section["algorithms"]["b"]
    assert a["seeds"] == [0, 1, 2] and a["iqm"] == pytest.approx(0.35)  # IQM of 0.1 … 0.6
    assert a["ci_low"] <= a["iqm"] <= a["ci_high"]
    assert b["seeds"] == [1] and b["iqm"] == pytest.approx(0.75)  # (0.7 + 0.8) / 2
    assert section["normalisation"]["walker-walk"]["high"] == 1000.0
    assert iqm_section(two_task_results, tasks=["walker-walk"], algorithms=["a"], reps=10) is None
    from benchmarks.harness import plots

    assert_png(plots.plot_iqm(section, path=tmp_path / "iqm.png"))
    assert_png(plots.plot_curve_grid(two_task_results, tasks=["cartpole-swingup", "walker-walk"],
                                     algorithms=["a", "b"], path=tmp_path / "curves.png"))


def test_markdown_shows_every_row_and_the_iqm(two_task_results):
    tasks, algorithms = ["cartpole-swingup", "walker-walk"], ["a", "b", "c"]
    summary = {
        "tier": "quick", "rows": table_rows(two_task_results, tasks=tasks, algorithms=algorithms),
        "iqm": iqm_section(two_task_results, tasks=tasks, algorithms=algorithms, reps=500, use_rliable=False),
        "protocol": {"budget": 2000, "warmups": {"a": 1000}, "eval_episodes": 5, "eval_interval": 1000,
                     "threads": 1, "device": "cpu", "seeds": [0, 1, 2]},
        "missing": ["c__cartpole-swingup__seed0"],
    }
    text = markdown(summary)
    assert "| cartpole-swingup | A | 200.0 ± 57.7 | 3 | 41.0 |" in text
    assert "| walker-walk | c | not run | 0 |" in text
    assert "| a | 0.350 |" in text and "own: IQM" in text
    assert "Missing runs: c__cartpole-swingup__seed0" in text


# ---------------------------------------------------------------------------------------------
# tiers and the time model


def documented_warmups() -> dict[str, int]:
    return {name: e.warmup for name, e in registry().items()}


def test_scaled_warmup():
    assert tiers.scaled_warmup(25_000, budget=1_000_000) == 25_000
    assert tiers.scaled_warmup(25_000, budget=200_000) == 5000
    assert tiers.scaled_warmup(25_000, budget=10_000) == 1000  # floor
    assert tiers.scaled_warmup(1000, budget=5000) == 1000
    assert tiers.scaled_warmup(25_000, budget=1200) == 600  # half of the budget is left to learning


def test_quick_tier_is_the_largest_budget_that_fits_an_hour():
    warmups = documented_warmups()
    quick = tiers.tiers(warmups, cpus=2)["quick"]
    assert set(quick.tasks) >= {"cartpole-swingup", "walker-walk", "cheetah-run", "finger-spin",
                                "reacher-easy", "ball_in_cup-catch"}
    assert set(quick.algorithms) >= {"qmle", "ddpg", "td3", "sac"} and len(quick.seeds) >= 3
    assert quick.budget >= 2000 and quick.budget % 1000 == 0

    def wall(budget: int) -> float:
        specs = tiers.specs_for_budget(
            budget, tasks=quick.tasks, algorithms=quick.algorithms, seeds=quick.seeds,
            documented_warmups=warmups, num_eval_points=tiers.QUICK_EVAL_POINTS,
            eval_episodes=quick.eval_episodes,
        )
        return tiers.estimate_seconds(specs) / quick.workers

    assert wall(quick.budget) <= 3600 < wall(quick.budget + 1000)


def test_estimate_run_seconds_adds_the_phases():
    speed = tiers.Speed(learning=50.0, acting=500.0, startup=10.0)
    spec = small_spec(budget=3000, warmup=1000, eval_interval=1000, eval_episodes=2)
    # startup + warm-up at 1000/s + 2000 learning steps + 3 evaluations × 2 episodes × 1000 steps
    assert tiers.estimate_run_seconds(spec, speed) == pytest.approx(10 + 1 + 40 + 12)


def test_dry_run_lists_runs_without_running(tmp_path, capsys):
    plan = load_learning().main(["--tier", "quick", "--dry-run", "--out", str(tmp_path)])
    assert len(plan["runs"]) == 6 * 4 * 3 and plan["estimate_seconds"] / 2 <= 3600
    assert "72 runs" in capsys.readouterr().out
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------
# tasks and builders


def test_task_kinds():
    assert task_kind("ball_in_cup-catch") == "dmc" and task_kind("Hopper-v5") == "gym"
    assert task_kind("restricted-Hopper") == "restricted"
    assert score_range("walker-walk") == (0.0, 1000.0) and score_range("Hopper-v5") is None
    assert score_range("restricted-Hopper") is None
    with pytest.raises(ValueError, match="neither"):
        task_kind("cartpole")
    with pytest.raises(ValueError, match="unknown restricted task 'restricted-Hoppr'; supported: Hopper"):
        task_kind("restricted-Hoppr")


def test_restricted_tasks_get_the_papers_layout_in_every_env():
    from tianshou_qmle.env.restricted import RestrictedActionWrapper

    env, train_envs, test_envs = make_task_envs("restricted-InvertedPendulum", seed=0, num_test_envs=2)
    assert isinstance(env, RestrictedActionWrapper) and env.layout == "paper"
    assert env.centres.shape == (33, 1)  # 33·n spheres, n = 1 (§11.3.1)
    assert (train_envs.env_num, test_envs.env_num) == (1, 2)
    centres = [w.env.get_wrapper_attr("centres") for w in (*train_envs.workers, *test_envs.workers)]
    assert all(np.array_equal(env.centres, c) for c in centres)
    train_envs.close()
    test_envs.close()


def test_savo_entries_differ_only_in_the_list_length_and_variants_pass_flags():
    env, train_envs, test_envs = make_task_envs("restricted-InvertedPendulum", seed=0, num_test_envs=1)
    build = {name: e.build for name, e in registry().items()}
    savo = build["savo"](env=env, seed=0, device="cpu", buffer_size=3000)
    control = build["savo-l1"](env=env, seed=0, device="cpu", buffer_size=3000)
    assert savo.algorithm.policy.actor.num_successive == 2  # list length 3: μ, ν₁, ν₂
    assert control.algorithm.policy.actor.num_successive == 0
    changed = {k for k, v in control.hyperparameters.items() if savo.hyperparameters[k] != v}
    assert changed == {"list_length"}
    online = entry_for("savo+surrogate-critics=online").build(env=env, seed=0, device="cpu", buffer_size=3000)
    assert savo.algorithm.surrogate_critics == "target" and online.algorithm.surrogate_critics == "online"
    with pytest.raises(ValueError, match="savo_factory has no flag --list-lenght"):
        entry_for("savo+list-lenght=2")
    train_envs.close()
    test_envs.close()


def test_the_iq_and_savo_tiers_hold_the_issues_grids(tmp_path):
    learning = load_learning()
    iq = learning.main(["--tier", "iq100k", "--dry-run", "--out", str(tmp_path / "iq")])["runs"]
    assert len(iq) == 3 * 4 * 3 and "miq-paper__InvertedDoublePendulum-v5__seed2" in iq
    savo = learning.main(["--tier", "savo100k", "--dry-run", "--out", str(tmp_path / "savo")])["runs"]
    assert len(savo) == 3 * 3 * 3 and "savo-l1__restricted-Hopper__seed0" in savo


def test_savo_and_td3_run_on_a_restricted_task_through_the_harness(tmp_path):
    load_learning().main([
        "--tasks", "restricted-InvertedPendulum", "--algorithms", "savo", "td3", "--seeds", "0",
        "--steps", "600", "--eval-interval", "300", "--eval-episodes", "1", "--warmup", "300",
        "--out", str(tmp_path),
    ])
    for name in ("savo", "td3"):
        path = tmp_path / "runs" / "restricted-InvertedPendulum" / f"{name}__seed0.json"
        result = json.loads(path.read_text())
        assert [point["env_step"] for point in result["curve"]] == [300, 600]
        assert result["gradient_updates"] == 300 and math.isfinite(result["final_return_mean"])


def optimiser_lr(optim) -> float:
    return optim.state_dict()["param_groups"][0]["lr"]


def test_baselines_follow_tianshou_mujoco_settings():
    from tianshou.algorithm import DDPG, SAC, TD3

    env, train_envs, test_envs = make_task_envs("cartpole-swingup", seed=0, num_test_envs=1)
    build = {name: e.build for name, e in registry().items()}
    td3 = build["td3"](env=env, seed=0, device="cpu", buffer_size=5000)
    assert type(td3.algorithm) is TD3 and optimiser_lr(td3.algorithm.policy_optim) == 3e-4
    assert (td3.algorithm.tau, td3.algorithm.policy_noise, td3.algorithm.noise_clip,
            td3.algorithm.update_actor_freq) == (0.005, 0.2, 0.5, 2)
    ddpg = build["ddpg"](env=env, seed=0, device="cpu", buffer_size=5000)
    assert type(ddpg.algorithm) is DDPG and optimiser_lr(ddpg.algorithm.critic_optim) == 1e-3
    sac = build["sac"](env=env, seed=0, device="cpu", buffer_size=5000)
    assert type(sac.algorithm) is SAC and optimiser_lr(sac.algorithm.policy_optim) == 1e-3
    assert sac.algorithm.alpha.value == pytest.approx(0.2)
    auto = build["sac-auto"](env=env, seed=0, device="cpu", buffer_size=5000)
    assert auto.hyperparameters["target_entropy"] == -1.0  # -dim(A): cartpole pushes the cart only
    for agent in (td3, ddpg, sac):
        assert (agent.schedule.env_steps_per_collect, agent.schedule.updates_per_env_step,
                agent.schedule.batch_size) == (1, 1.0, 256)
        assert agent.buffer.maxsize == 5000  # capped at the budget
    entries = registry()
    assert (entries["td3"].warmup, entries["ddpg"].warmup, entries["sac"].warmup) == (25_000, 25_000, 10_000)
    train_envs.close()
    test_envs.close()


def test_qmle_is_built_from_the_example_defaults():
    from tianshou_qmle import QMLE

    defaults = qmle_defaults()
    env, train_envs, test_envs = make_task_envs("cartpole-swingup", seed=0, num_test_envs=1)
    agent = registry()["qmle"].build(env=env, seed=0, device="cpu", buffer_size=3000)
    assert type(agent.algorithm) is QMLE
    assert agent.algorithm.policy.m_greedy == defaults.m_greedy == 1000
    assert optimiser_lr(agent.algorithm.optim) == defaults.lr
    assert (agent.schedule.env_steps_per_collect, agent.schedule.updates_per_env_step) == (10, 0.1)
    assert agent.hyperparameters["m_target"] == defaults.m_target and "seed" not in agent.hyperparameters
    train_envs.close()
    test_envs.close()


def test_app_d_ablation_entries_change_only_budgets_ratios_and_prior():
    env, train_envs, test_envs = make_task_envs("cartpole-swingup", seed=0, num_test_envs=1)
    entries = registry()
    full = entries["qmle"].build(env=env, seed=0, device="cpu", buffer_size=3000)
    m2 = entries["qmle-m2"].build(env=env, seed=0, device="cpu", buffer_size=3000)
    uniform = entries["qmle-m2-uniform"].build(env=env, seed=0, device="cpu", buffer_size=3000)
    for agent in (m2, uniform):
        assert agent.algorithm.m_target == agent.algorithm.policy.m_greedy == 2
        changed = {k for k, v in agent.hyperparameters.items() if full.hyperparameters[k] != v}
        assert changed <= {"m_target", "m_greedy", "ratios", "no_prior"}
    assert m2.algorithm.policy.proposal_ratios == (0.5, 0.5, 0.0) and m2.algorithm.use_stored_prior
    assert uniform.algorithm.policy.proposal_ratios == (1.0, 0.0, 0.0)
    assert not uniform.algorithm.use_stored_prior
    bf16 = entries["qmle-bf16"].build(env=env, seed=0, device="cpu", buffer_size=3000)
    assert str(bf16.algorithm.policy.scoring_dtype) == "torch.bfloat16" and bf16.algorithm.m_target == 100
    with pytest.raises(ValueError, match="no flag 'm_targt'"):
        build_qmle(env=env, seed=0, device="cpu", buffer_size=3000, m_targt=2)
    train_envs.close()
    test_envs.close()


# ---------------------------------------------------------------------------------------------
# checkpoints and --resume of the harness


@pytest.mark.slow
def test_a_killed_harness_run_resumes_from_its_checkpoint_to_the_same_result(tmp_path):
    """QMLE's efficient preset on cartpole-swingup, evaluated every 1000 env steps (DMC episodes
    end there): SIGKILL after the first checkpoint, resume, and compare with an uninterrupted run."""
    import signal
    import subprocess

    import torch

    from benchmarks.harness.executor import worker_command, worker_environment

    spec = RunSpec(algorithm="qmle-efficient+m-greedy=16+m-target=8+hidden=16+update-every=4",
                   task="cartpole-swingup", seed=0, budget=3000, warmup=1000, eval_interval=1000,
                   eval_episodes=1, threads=1)

    def run(folder, *, kill_at_point=None, resume=False):
        command = worker_command(spec, folder / "result.json", checkpoint_dir=folder / "ck", resume=resume)
        proc = subprocess.Popen(command, env=worker_environment(1), cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while kill_at_point is not None and proc.poll() is None:
            try:
                checkpoint = torch.load(folder / "ck" / "checkpoint.pt", weights_only=True)
                if checkpoint["epoch"] >= kill_at_point:
                    proc.send_signal(signal.SIGKILL)
            except Exception:  # not written yet, or being replaced
                pass
            time.sleep(0.02)
        return proc.wait(timeout=600)

    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert run(whole) == 0
    assert run(killed, kill_at_point=2) == -signal.SIGKILL
    assert not (killed / "result.json").exists() and (killed / "ck" / "checkpoint.pt").exists()
    assert run(killed, resume=True) == 0
    a, b = (json.loads((f / "result.json").read_text()) for f in (whole, killed))
    assert [p["returns"] for p in a["curve"]] == [p["returns"] for p in b["curve"]]
    assert a["gradient_updates"] == b["gradient_updates"] == (3000 - 1000) // 4
    assert b["timing"]["learning_seconds"] > 0
    assert b["curve"][-1]["cpu_seconds"] > b["curve"][0]["cpu_seconds"]
    assert not (killed / "ck").exists()  # removed once the result is written


def test_time_to_a_return_is_the_first_evaluation_at_or_above_it():
    from benchmarks.harness.report import threshold_times, time_to_return

    curve = [{"env_step": 10_000, "return_mean": 300.0, "cpu_seconds": 100.0, "wall_seconds": 120.0},
             {"env_step": 20_000, "return_mean": 520.0, "cpu_seconds": 210.0, "wall_seconds": 260.0},
             {"env_step": 30_000, "return_mean": 480.0, "cpu_seconds": 330.0, "wall_seconds": 400.0},
             {"env_step": 40_000, "return_mean": 710.0, "cpu_seconds": 450.0, "wall_seconds": 540.0}]
    run = {"curve": curve}
    assert time_to_return(run, 500.0) == 210.0 and time_to_return(run, 700.0, "wall_seconds") == 540.0
    assert time_to_return(run, 900.0) is None
    times = threshold_times([run, {"curve": curve[:2]}])
    assert times["500"] == {"reached": 2, "cpu_seconds": 210.0, "wall_seconds": 260.0}
    assert times["700"]["reached"] == 1 and times["700"]["cpu_seconds"] == 450.0


def goal_rows(finals: dict[tuple[str, str], list[float]], cpu: dict[str, float] | None = None) -> list[dict]:
    results = [fake_result(task=t, algorithm=a, seed=s, final=f)
               for (t, a), values in finals.items() for s, f in enumerate(values)]
    for r in results:
        r["timing"]["cpu_seconds"] = (cpu or {}).get(r["algorithm"], 100.0)
    tasks = list(dict.fromkeys(t for t, _ in finals))
    algorithms = list(dict.fromkeys(a for _, a in finals))
    return table_rows(results, tasks=tasks, algorithms=algorithms)


def test_goal_section_counts_tasks_ratios_and_cpu():
    from benchmarks.harness.report import goal_section
    from benchmarks.harness.tiers import Goal

    goal = Goal(issue=16, ours="q", against=("t", "s"), tasks_needed=2, cpu_against="t")
    finals = {("a", "q"): [800, 820, 840], ("a", "t"): [700] * 3, ("a", "s"): [820] * 3,   # 820 ≥ both
              ("b", "q"): [500] * 3, ("b", "t"): [600] * 3, ("b", "s"): [400] * 3,         # below t
              ("c", "q"): [900] * 3, ("c", "t"): [100] * 3, ("c", "s"): [100] * 3}
    [section] = goal_section([goal], goal_rows(finals), tasks=["a", "b", "c"], seeds=3)
    assert [section["tasks"][t]["holds"] for t in "abc"] == ["yes", "no", "yes"]
    assert section["tasks"]["a"]["ratios"] == {"t": pytest.approx(820 / 700, abs=1e-3), "s": 1.0}
    assert section["status"] == "met" and section["holding"] == 2 and not section["provisional"]
    # the CPU clause: q slower than t fails every task
    [slow] = goal_section([goal], goal_rows(finals, cpu={"q": 150.0}), tasks=["a", "b", "c"], seeds=3)
    assert slow["status"] == "not met" and slow["tasks"]["a"]["cpu_ratio"] == 1.5
    # a time-only goal ignores the returns
    timing = Goal(issue=16, ours="q", against=(), tasks_needed=3, cpu_against="t")
    [fast] = goal_section([timing], goal_rows(finals, cpu={"q": 90.0}), tasks=["a", "b", "c"], seeds=3)
    assert fast["status"] == "met" and fast["tasks"]["b"]["cpu_ratio"] == 0.9
    # a run without CPU time cannot pass the time clause
    no_cpu = goal_rows(finals)
    for row in no_cpu:
        if row["algorithm"] == "q":
            row["cpu_seconds"] = row["cpu_seconds_by_machine"] = None
    [unknown] = goal_section([timing], no_cpu, tasks=["a", "b", "c"], seeds=3)
    assert unknown["status"] == "open" and unknown["tasks"]["a"]["holds"] == "pending"


def test_goal_cpu_clause_compares_runs_on_the_same_cpu_model_only():
    from benchmarks.harness.report import goal_section, markdown, table_rows
    from benchmarks.harness.tiers import Goal

    def run(algorithm: str, seed: int, cpu_model: str, cpu: float) -> dict:
        r = fake_result(task="a", algorithm=algorithm, seed=seed, final=500.0)
        r["timing"]["cpu_seconds"] = cpu
        r["machine"] = {"cpu_model": cpu_model}
        return r

    goal = Goal(issue=16, ours="q", against=(), tasks_needed=1, cpu_against="t")
    # q is faster than t on each machine, but ran mostly on the slow one: a plain mean says 1.33
    results = [run("q", 0, "fast", 90.0), run("q", 1, "slow", 190.0), run("q", 2, "slow", 190.0),
               run("t", 0, "fast", 100.0), run("t", 1, "fast", 100.0), run("t", 2, "slow", 200.0)]
    rows = table_rows(results, tasks=["a"], algorithms=["q", "t"])
    assert rows[0]["cpu_seconds"] == pytest.approx(156.67) and rows[1]["cpu_seconds"] == pytest.approx(133.33)
    assert rows[0]["cpu_seconds_by_machine"] == {"fast": {"runs": 1, "cpu_seconds": 90.0},
                                                  "slow": {"runs": 2, "cpu_seconds": 190.0}}
    [section] = goal_section([goal], rows, tasks=["a"], seeds=3)
    verdict = section["tasks"]["a"]
    assert verdict["cpu_ratio_by_machine"] == {"fast": 0.9, "slow": 0.95}
    assert verdict["cpu_ratio"] == pytest.approx((0.9 + 2 * 0.95) / 3, abs=1e-3)
    assert verdict["holds"] == "yes" and section["status"] == "met"
    text = markdown({"protocol": {"budget": 1, "warmups": 0, "eval_episodes": 1, "eval_interval": 1,
                                  "threads": 1, "device": "cpu", "seeds": [0, 1, 2]},
                     "rows": rows, "goals": [section], "tier": "t"})
    assert "fast: 0.900; slow: 0.950" in text and "same CPU only (model and vector ISA" in text
    # with no CPU model in common nothing is comparable: pending, not a verdict
    apart = [run("q", 0, "fast", 90.0), run("t", 0, "slow", 200.0)]
    [section] = goal_section([goal], table_rows(apart, tasks=["a"], algorithms=["q", "t"]),
                             tasks=["a"], seeds=1)
    assert section["tasks"]["a"]["holds"] == "pending" and section["tasks"]["a"]["cpu_ratio"] is None


def test_machine_key_tells_apart_one_model_name_with_different_vector_isas():
    from benchmarks.harness.meta import CPU_ISA_LEVELS, cpu_isa
    from benchmarks.harness.report import cpu_seconds_by_machine, machine_of

    def run(seed: int, isa: str | None, cpu: float) -> dict:
        r = fake_result(task="a", algorithm="q", seed=seed, final=1.0)
        r["timing"]["cpu_seconds"] = cpu
        r["machine"] = {"cpu_model": "AMD EPYC", **({"cpu_isa": isa} if isa else {})}
        return r

    assert machine_of(run(0, "avx2", 1.0)) == "AMD EPYC [avx2]"
    assert machine_of(run(0, None, 1.0)) == "AMD EPYC"
    grouped = cpu_seconds_by_machine([run(0, "avx2", 200.0), run(1, "avx512_bf16", 100.0),
                                      run(2, "avx512_bf16", 120.0)])
    assert grouped == {"AMD EPYC [avx2]": {"runs": 1, "cpu_seconds": 200.0},
                       "AMD EPYC [avx512_bf16]": {"runs": 2, "cpu_seconds": 110.0}}
    assert cpu_isa() in (*CPU_ISA_LEVELS, "other", "unknown")


def test_goal_section_pending_strict_and_provisional():
    from benchmarks.harness.report import goal_section, markdown
    from benchmarks.harness.tiers import Goal

    goal = Goal(issue=14, ours="v", against=("t",), tasks_needed=2, strict=True)
    finals = {("a", "v"): [300, 300], ("a", "t"): [300] * 3,  # a tie is not above
              ("b", "v"): [400] * 3, ("b", "t"): [100] * 3}
    rows = goal_rows(finals)
    [section] = goal_section([goal], rows, tasks=["a", "b", "c"], seeds=3)
    assert [section["tasks"][t]["holds"] for t in "abc"] == ["no", "yes", "pending"]
    assert section["status"] == "open" and section["provisional"]
    text = markdown({"tier": "savo100k", "rows": rows, "iqm": None, "goals": [section],
                     "protocol": {"budget": 2000, "warmups": {}, "eval_episodes": 1, "eval_interval": 1000,
                                  "threads": 1, "device": "cpu", "seeds": [0, 1, 2]}})
    assert "Goal of issue 14: V above T on 2 of 3 tasks. **open (provisional" in text
    assert "| b | yes | 4.000 |" in text and "| c | pending | — |" in text


def test_the_100k_tiers_carry_their_issues_goals():
    from benchmarks.harness.tiers import tiers as all_tiers

    got = all_tiers(documented_warmups(), cpus=2)
    assert [(g.issue, g.ours, g.against, g.ratio) for g in got["iq100k"].goals] == [
        (13, "miq", ("sac-auto",), 0.9)]
    returns, timing = got["100k"].goals
    assert returns.against == ("td3", "sac-auto") and returns.tasks_needed == 2
    assert returns.cpu_against is None
    assert timing.against == () and timing.cpu_against == "td3" and timing.tasks_needed == 3
    assert {g.against for g in got["savo100k"].goals} == {("td3",), ("savo-l1",)}
    for tier in got.values():
        for g in tier.goals:
            assert {g.ours, *g.against} <= set(tier.algorithms)
