"""Resuming killed runs: exactness after SIGKILL, refusals before anything is loaded, leftovers,
corrupt and plain checkpoint files, and gradient steps counted as gradient steps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tianshou_qmle.utils import (
    CheckpointMismatchError,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)

from .conftest import ROOT, make_qmle

# Pendulum's episodes all last 200 steps, so epochs of 200 env steps end between episodes
IQ_RUN = [
    "--task", "Pendulum-v1", "--algo", "miq", "--hidden-sizes", "32,32", "--batch-size", "32",
    "--total-steps", "1000", "--warmup", "200", "--epoch-steps", "200", "--test-episodes", "1",
    "--eval-episodes", "2", "--num-test-envs", "1", "--buffer-size", "2000", "--no-progress",
]
QMLE_RUN = [
    "--total-steps", "3000", "--warmup", "1000", "--epoch-steps", "1000", "--m-greedy", "16",
    "--m-target", "8", "--hidden", "16", "--update-every", "4", "--target-update-env-steps", "200",
    "--test-episodes", "1", "--eval-episodes", "1", "--num-test-envs", "1", "--buffer-size", "4000",
    "--no-progress",
]


def run_example(script: str, argv: list[str], *, cwd: Path, kill_after_epoch: int | None = None) -> int:
    """Run an example in a subprocess; with ``kill_after_epoch``, SIGKILL it as soon as the
    checkpoint of that epoch is on disk."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "examples" / script), *argv], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if kill_after_epoch is not None:
        checkpoints = list(cwd.glob("log/**/checkpoint.pt"))
        while proc.poll() is None:
            checkpoints = checkpoints or list(cwd.glob("log/**/checkpoint.pt"))
            if checkpoints and checkpoint_epoch(checkpoints[0]) >= kill_after_epoch:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
    out, _ = proc.communicate(timeout=600)
    if kill_after_epoch is None:
        assert proc.returncode == 0, out[-3000:]
    return proc.returncode


def checkpoint_epoch(path: Path) -> int:
    try:
        return int(torch.load(path, weights_only=True)["epoch"])
    except Exception:  # being replaced right now
        return -1


def final_state(cwd: Path) -> tuple[dict, dict]:
    (checkpoint,) = cwd.glob("log/**/checkpoint.pt")
    return torch.load(checkpoint, weights_only=True), json.loads((cwd / "summary.json").read_text())


def assert_same_run(a: Path, b: Path) -> None:
    (state_a, summary_a), (state_b, summary_b) = final_state(a), final_state(b)
    weights_a, weights_b = state_a["algorithm"], state_b["algorithm"]
    tensors = [k for k, v in weights_a.items() if isinstance(v, torch.Tensor)]
    assert tensors and all(torch.equal(weights_a[k], weights_b[k]) for k in tensors)
    assert weights_a["_optimizers"][0]["state"].keys() == weights_b["_optimizers"][0]["state"].keys()
    assert summary_a["eval_return_mean"] == summary_b["eval_return_mean"]
    assert summary_a["gradient_steps"] == summary_b["gradient_steps"] == state_b["gradient_step"]
    assert summary_b["env_steps"] == summary_a["env_steps"]


@pytest.mark.parametrize("vector_env", ["dummy", "subproc"])
def test_iq_killed_at_an_epoch_boundary_resumes_to_the_same_weights_and_evaluation(tmp_path, vector_env):
    argv = [*IQ_RUN, "--vector-env", vector_env, "--summary-json", "summary.json"]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    whole.mkdir(), killed.mkdir()
    run_example("mujoco_iq.py", argv, cwd=whole)
    assert run_example("mujoco_iq.py", argv, cwd=killed, kill_after_epoch=2) == -signal.SIGKILL
    assert not (killed / "summary.json").exists()
    run_example("mujoco_iq.py", [*argv, "--resume"], cwd=killed)
    assert_same_run(whole, killed)
    _, summary = final_state(killed)
    assert summary["resumed_from"].endswith("checkpoint.pt")


@pytest.mark.slow
def test_qmle_on_dmc_killed_at_an_epoch_boundary_resumes_exactly(tmp_path):
    argv = [*QMLE_RUN, "--summary-json", "summary.json"]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    whole.mkdir(), killed.mkdir()
    run_example("dmc_qmle.py", argv, cwd=whole)
    assert run_example("dmc_qmle.py", argv, cwd=killed, kill_after_epoch=1) == -signal.SIGKILL
    run_example("dmc_qmle.py", [*argv, "--resume"], cwd=killed)
    assert_same_run(whole, killed)
    # the resumed run did not warm up again: its replay buffer holds each env step once
    state, _ = final_state(killed)
    assert state["env_step"] == 3000 and state["run"]["env_step"] == 3000


def test_resume_skips_the_warmup_and_continues_the_counters(tmp_path):
    from tests.conftest import load_script

    example = load_script("examples/mujoco_iq.py")
    argv = [*IQ_RUN, "--logdir", str(tmp_path / "log"), "--total-steps", "400"]
    example.main(argv)
    summary = example.main([*argv, "--total-steps", "600", "--resume"])
    assert summary["env_steps"] == 600
    # 400 learning steps at one update per env step: warm-up steps are not trained on again
    assert summary["gradient_steps"] == 600 - 200


def test_gradient_steps_are_counted_with_several_env_steps_per_collect(tmp_path):
    from tests.conftest import load_script

    example = load_script("examples/mujoco_iq.py")
    summary = example.main([*IQ_RUN, "--logdir", str(tmp_path / "log"), "--total-steps", "600",
                            "--env-steps-per-collect", "2", "--updates-per-step", "1"])
    # 400 env steps after the warm-up, two per collect, one update per env step: 400 updates
    # (Tianshou's update_step would say 200)
    assert summary["gradient_steps"] == 400
    state = torch.load(Path(summary["checkpoint"]), weights_only=True)
    assert state["gradient_step"] == 400 and state["run"]["trainer_update_step"] == 200


def test_leftover_temporaries_and_stale_replays_are_removed_on_start(tmp_path):
    from tests.conftest import load_script

    example = load_script("examples/mujoco_iq.py")
    argv = [*IQ_RUN, "--logdir", str(tmp_path / "log"), "--total-steps", "400"]
    summary = example.main(argv)
    folder = Path(summary["checkpoint"]).parent
    (folder / ".checkpoint.pt.abc123.tmp").write_bytes(b"half a checkpoint")
    (folder / ".replay-9.h5.xyz.tmp").write_bytes(b"half a buffer")
    (folder / "replay-0.h5").write_bytes(b"an older epoch")
    example.main([*argv, "--total-steps", "600", "--resume"])
    names = sorted(p.name for p in folder.iterdir() if not p.name.startswith("events"))
    assert names == ["checkpoint.pt", "replay-2.h5"]  # epochs end at 400 and 600


# ---------------------------------------------------------------------------------------------
# refusals and unreadable files


def tensors_of(algorithm) -> dict[str, torch.Tensor]:
    state = algorithm.state_dict()
    moments = [t for o in state["_optimizers"] for s in o["state"].values() for t in s.values()
               if isinstance(t, torch.Tensor)]
    return {**{k: v.clone() for k, v in state.items() if isinstance(v, torch.Tensor)},
            **{f"moment{i}": m.clone() for i, m in enumerate(moments)}}


@pytest.mark.parametrize("other", [
    {"obs_dim": 4},                # another observation width: other network shapes
    {"act_dim": 2},                # another action space
    {"families": ("delta",), "ratios": (0.9, 0.1)},  # another predictor ensemble
])
def test_a_checkpoint_of_another_configuration_is_refused_before_anything_changes(tmp_path, other):
    saved = make_qmle()
    path = save_checkpoint(saved, tmp_path / "checkpoint.pt")
    target = make_qmle(**other)
    before = tensors_of(target)
    with pytest.raises(CheckpointMismatchError, match="nothing was loaded") as err:
        load_checkpoint(target, path)
    message = str(err.value)
    assert "checkpoint:" in message and "this run:" in message and "QMLE" in message
    after = tensors_of(target)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_a_checkpoint_of_another_algorithm_names_both():
    from tests.test_iq import make_iq

    iq, qmle = make_iq(), make_qmle()
    path = save_checkpoint(iq, Path(os.environ.get("TMPDIR", "/tmp")) / f"iq-{os.getpid()}.pt")
    try:
        pattern = r"checkpoint: IQ with IQPolicy(.|\n)*this run: +QMLE"
        with pytest.raises(CheckpointMismatchError, match=pattern):
            load_checkpoint(qmle, path)
    finally:
        path.unlink()


def test_random_bytes_give_a_clear_message_without_torch_advice(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ValueError, match=r"is not a checkpoint: it is not a torch\.save archive") as err:
        load_checkpoint(make_qmle(), path)
    assert "weights_only" not in str(err.value)


def test_a_truncated_checkpoint_is_refused_clearly(tmp_path):
    path = save_checkpoint(make_qmle(), tmp_path / "checkpoint.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"not a checkpoint|not a readable checkpoint"):
        read_checkpoint(path)


def test_a_plain_state_dict_file_loads(tmp_path):
    saved, restored = make_qmle(), make_qmle()
    torch.save(saved.state_dict(), tmp_path / "plain.pt")
    assert load_checkpoint(restored, tmp_path / "plain.pt") == {}
    for key, value in saved.state_dict().items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, restored.state_dict()[key])


def test_resume_without_a_checkpoint_says_where_it_looked(tmp_path, capsys):
    from tests.conftest import load_script

    example = load_script("examples/mujoco_iq.py")
    with pytest.raises(SystemExit, match="--resume: no checkpoint at"):
        example.main([*IQ_RUN, "--logdir", str(tmp_path / "log"), "--resume"])


def test_resume_into_another_network_stops_before_loading(tmp_path):
    from tests.conftest import load_script

    example = load_script("examples/mujoco_iq.py")
    argv = [*IQ_RUN, "--logdir", str(tmp_path / "log"), "--total-steps", "400"]
    example.main(argv)
    with pytest.raises(SystemExit, match=r"--resume: the checkpoint .* does not fit this algorithm"):
        example.main([*argv, "--hidden-sizes", "16,16", "--total-steps", "600", "--resume"])
