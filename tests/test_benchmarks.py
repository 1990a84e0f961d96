"""The speed benchmark at a smoke budget: both agents run, the report has its ratios and files."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def test_speed_benchmark_smoke(tmp_path):
    spec = importlib.util.spec_from_file_location("speed", ROOT / "benchmarks" / "speed_qmle_vs_td3.py")
    speed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(speed)
    report = speed.main([
        "--steps", "40", "--warmup", "300", "--m-greedy", "16", "--m-target", "8", "--repeats", "2",
        "--out", str(tmp_path),
    ])
    by_algo = {r["algorithm"]: r for r in report["results"]}
    assert set(by_algo) == {"qmle", "td3"}
    assert by_algo["qmle"]["learning_env_steps"] == 40 and by_algo["td3"]["learning_env_steps"] == 40
    assert by_algo["qmle"]["gradient_updates"] == 4 and by_algo["td3"]["gradient_updates"] == 40
    for r in report["results"]:
        assert r["env_steps_per_second"] > 0 and r["update_ms"] > 0 and r["act_ms"] > 0
    expected = by_algo["qmle"]["env_steps_per_second"] / by_algo["td3"]["env_steps_per_second"]
    assert abs(report["ratios"]["env_steps_per_second_qmle_over_td3"] - expected) < 1e-2
    on_disk = json.loads((tmp_path / "speed_cartpole-swingup.json").read_text())
    assert on_disk["ratios"] == report["ratios"]
    assert (tmp_path / "speed_cartpole-swingup.png").stat().st_size > 1000


def test_run_matrix_runs_variants_and_tabulates(tmp_path):
    spec = importlib.util.spec_from_file_location("run_matrix", ROOT / "benchmarks" / "run_matrix.py")
    matrix = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = matrix  # dataclasses look their module up there
    spec.loader.exec_module(matrix)
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
