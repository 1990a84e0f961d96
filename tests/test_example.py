"""The flagship example end to end at a tiny budget: flags, summary JSON, checkpoint, TensorBoard."""

import json
import subprocess
import sys

import numpy as np
import torch

from .conftest import ROOT, load_script


def load_example():
    return load_script("examples/dmc_qmle.py")


def test_help_lists_every_flag():
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "dmc_qmle.py"), "--help"],
        capture_output=True, text=True, check=True,
    ).stdout
    for flag in ("--task", "--total-steps", "--seed", "--device", "--logdir", "--summary-json",
                 "--m-target", "--m-greedy", "--ratios", "--threads", "--uniform-replay"):
        assert flag in out


def test_tiny_run_writes_summary_checkpoint_and_logs(tmp_path):
    example = load_example()
    summary_path = tmp_path / "summary.json"
    summary = example.main([
        "--total-steps", "1400", "--warmup", "1000", "--epoch-steps", "200", "--m-greedy", "16",
        "--m-target", "8", "--batch-size", "32", "--update-every", "10", "--eval-episodes", "1",
        "--num-test-envs", "1", "--test-episodes", "1", "--logdir", str(tmp_path / "log"),
        "--summary-json", str(summary_path), "--no-progress", "--seed", "3",
    ])
    on_disk = json.loads(summary_path.read_text())
    assert on_disk == summary
    for key in ("task", "algorithm", "seed", "env_steps", "eval_return_mean", "eval_return_std",
                "wall_seconds", "env_steps_per_second", "gradient_updates_per_second"):
        assert key in on_disk
    assert on_disk["task"] == "cartpole-swingup" and on_disk["algorithm"] == "qmle"
    assert on_disk["env_steps"] == 1400 and on_disk["seed"] == 3
    assert 0.0 <= on_disk["eval_return_mean"] <= 1000.0
    assert on_disk["gradient_updates_per_second"] > 0

    run_dir = tmp_path / "log" / "cartpole-swingup" / "qmle" / "seed_3"
    assert list(run_dir.glob("events.out.tfevents.*"))
    payload = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert payload["env_step"] == 1400 and payload["gradient_step"] == 40
    assert "policy.model.critic.head.weight" in payload["algorithm"]
    assert np.isfinite(payload["algorithm"]["policy.model.critic.head.weight"].numpy()).all()


def test_curriculum_flags_switch_from_grid_to_continuous_mid_run(tmp_path, capsys):
    example = load_example()
    summary = example.main([
        "--total-steps", "1400", "--warmup", "1000", "--epoch-steps", "400", "--m-greedy", "16",
        "--m-target", "8", "--batch-size", "32", "--eval-episodes", "1", "--num-test-envs", "1",
        "--test-episodes", "1", "--logdir", str(tmp_path / "log"), "--no-progress",
        "--grid-bins", "3", "--continuous-from", "1200",
    ])
    out = capsys.readouterr().out
    assert out.count("curriculum: continuous actions from env step") == 1
    switch_step = int(out.split("curriculum: continuous actions from env step ")[1].split()[0])
    assert 1200 <= switch_step < 1210  # the first collect step (10 env steps) at or after 1200
    assert summary["env_steps"] == 1400


def test_continuous_from_without_a_grid_is_refused(tmp_path):
    example = load_example()
    try:
        example.main(["--continuous-from", "100", "--logdir", str(tmp_path)])
    except SystemExit as err:
        assert "--continuous-from needs --grid-bins" in str(err)
    else:
        raise AssertionError("expected SystemExit")
