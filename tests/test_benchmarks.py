"""The speed benchmark at a smoke budget: both agents run, the report has its ratios and files."""

import importlib.util
import json
from pathlib import Path

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
