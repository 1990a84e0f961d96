"""The ``tianshou-qmle`` command: train, eval, watch (with an MP4), W&B offline, and the wheel in a
fresh virtual environment outside the repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest

from tianshou_qmle.experiment import cli
from tianshou_qmle.experiment.commands import COMMAND_MODULES, load_command

from .conftest import ROOT

TINY_QMLE = ["--total-steps", "1500", "--warmup", "1000", "--epoch-steps", "500", "--m-greedy", "16",
             "--m-target", "8", "--hidden", "16", "--num-test-envs", "1", "--test-episodes", "1",
             "--eval-episodes", "1", "--no-progress", "--buffer-size", "2000"]
TINY_IQ = ["--total-steps", "600", "--warmup", "200", "--epoch-steps", "200", "--hidden-sizes", "32,32",
           "--num-test-envs", "1", "--test-episodes", "1", "--eval-episodes", "1", "--no-progress",
           "--buffer-size", "2000"]


@pytest.mark.parametrize(("algo", "task", "command", "extra"), [
    ("qmle", "walker-walk", "dmc-qmle", []),
    ("qmle", "recsim", "recsim-qmle", []),
    ("dqn", "walker-walk", "dmc-qmle-discrete", ["--algo", "dqn"]),
    ("miq", "Hopper-v5", "mujoco-iq", ["--algo", "miq"]),
    ("sac", "cartpole-swingup", "dmc-iq", ["--algo", "sac"]),
    ("savo", "Hopper", "restricted-savo", ["--algo", "savo"]),
    ("td3", "restricted-InvertedPendulum", "restricted-savo", ["--algo", "td3"]),
    ("savo", "recsim", "recsim-savo", []),
])
def test_algo_and_task_pick_the_command(algo, task, command, extra):
    assert cli.command_for(algo, task) == (command, extra)


def test_impossible_pairs_say_which_tasks_an_algorithm_runs_on():
    with pytest.raises(SystemExit, match="--algo td3 runs on restricted tasks; 'walker-walk' is a dmc task"):
        cli.command_for("td3", "walker-walk")
    with pytest.raises(SystemExit, match="--algo must be one of"):
        cli.command_for("ppo", "walker-walk")


def test_every_command_has_the_protocol_and_a_help_text():
    for name in COMMAND_MODULES:
        module = load_command(name)
        assert name == module.NAME and callable(module.setup) and callable(module.make_env)
        text = module.build_parser().format_help()
        assert "--resume" in text and "--logger" in text


def test_train_eval_and_watch_with_a_video(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    summary = cli.main(["train", "--algo", "qmle", "--task", "cartpole-swingup", *TINY_QMLE,
                        "--preset", "efficient"])
    checkpoint = Path(summary["checkpoint"])
    assert checkpoint.exists() and summary["env_steps"] == 1500
    result = cli.main(["eval", str(checkpoint), "--episodes", "2", "--json", "eval.json"])
    assert result["command"] == "dmc-qmle" and len(result["returns"]) == 2
    assert json.loads(Path("eval.json").read_text()) == result
    # the same weights evaluate the same: a second eval with the same seed agrees
    again = cli.main(["eval", str(checkpoint), "--episodes", "2"])
    assert again["returns"] == result["returns"]
    watched = cli.main(["watch", str(checkpoint), "--video", "cartpole.mp4", "--max-steps", "40"])
    assert watched["frames"] == 41 and watched["lengths"] == [40]
    import imageio.v2 as imageio

    frames = [frame for frame in imageio.get_reader("cartpole.mp4")]  # its len() is inf: no list()
    assert len(frames) == 41 and frames[0].ndim == 3 and frames[0].std() > 5  # a picture, not a blank
    assert np.abs(frames[-1].astype(int) - frames[0].astype(int)).mean() > 0.1  # the cart moved


def test_eval_refuses_a_checkpoint_without_the_command(tmp_path):
    from tests.conftest import make_qmle
    from tianshou_qmle.utils import save_checkpoint

    path = save_checkpoint(make_qmle(), tmp_path / "plain.pt")
    with pytest.raises(SystemExit, match="does not record the command"):
        cli.main(["eval", str(path)])


def test_wandb_logs_offline(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.chdir(tmp_path)
    cli.main(["train", "--algo", "iq", "--task", "Pendulum-v1", *TINY_IQ, "--logger", "wandb"])
    runs = list(Path("log/Pendulum-v1/iq/seed_0/wandb").glob("offline-run-*/*.wandb"))
    assert len(runs) == 1 and runs[0].stat().st_size > 0


def test_training_on_ray_vector_envs(tmp_path, monkeypatch):
    """``--vector-env ray`` trains and evaluates through Tianshou's RayVectorEnv end to end."""
    ray = pytest.importorskip("ray")
    monkeypatch.chdir(tmp_path)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        summary = cli.main(["train", "--algo", "iq", "--task", "Pendulum-v1", *TINY_IQ,
                            "--vector-env", "ray", "--num-train-envs", "2"])
    finally:
        ray.shutdown()
    assert summary["env_steps"] >= 600
    assert Path("log/Pendulum-v1/iq/seed_0/checkpoint.pt").exists()


def test_list_names_commands_and_presets(capsys):
    listed = cli.main(["list"])
    out = capsys.readouterr().out
    assert set(listed["commands"]) == set(COMMAND_MODULES) and "efficient" in out and "paper" in out


def test_the_wheel_installs_and_runs_outside_the_repository(tmp_path):
    """Build the wheel, install it into a fresh venv (the dependencies come from this Python's site
    packages), and train and evaluate from a folder that holds no checkout."""
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(dist), str(ROOT)], check=True)
    (wheel,) = dist.glob("tianshou_qmle-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(wheel)],
                   check=True)
    work = tmp_path / "elsewhere"
    work.mkdir()
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run([str(python), "-c", "import tianshou_qmle; print(tianshou_qmle.__file__)"],
                           cwd=work, env=clean, capture_output=True, text=True, check=True).stdout
    assert str(env_dir) in where and str(ROOT) not in where
    command = env_dir / "bin" / "tianshou-qmle"
    subprocess.run([str(command), "train", "--algo", "iq", "--task", "Pendulum-v1", *TINY_IQ], cwd=work,
                   env=clean, check=True, capture_output=True)
    out = subprocess.run([str(command), "eval", "log/Pendulum-v1/iq/seed_0/checkpoint.pt", "--episodes", "2"],
                         cwd=work, env=clean, check=True, capture_output=True, text=True).stdout
    assert "over 2 greedy episodes" in out


def test_twine_accepts_the_wheel_and_the_sdist(tmp_path):
    pytest.importorskip("twine")
    pytest.importorskip("build")
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True)
    files = sorted(str(p) for p in tmp_path.iterdir())
    assert any(f.endswith(".whl") for f in files) and any(f.endswith(".tar.gz") for f in files)
    result = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *files],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
