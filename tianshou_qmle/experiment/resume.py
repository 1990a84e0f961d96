"""What a run needs besides its weights to continue exactly where it stopped.

A resumable run keeps two files in its folder:

* ``checkpoint.pt`` (:func:`tianshou_qmle.utils.save_checkpoint`): the algorithm's state (networks,
  target networks, optimizers, counters) and a ``run`` entry with the env-step, gradient-step and
  epoch counters, the torch / NumPy / Python random states, the replay buffer sampler's state, each
  environment's record for repeating its current episode (:mod:`tianshou_qmle.env.resumable`), and
  the name of the replay file;
* ``replay-EPOCH.h5``: the replay buffer with every field (arg max priors, priorities), written to
  a temporary file and renamed, *before* the checkpoint that names it. A run killed at any moment
  therefore leaves a checkpoint whose replay file is complete; older replay files and temporaries
  are deleted on the next start.

Resuming is exact (the same weights and evaluations as a run that was never stopped) when every
environment is at the start of an episode at the checkpoint, which holds at the epoch ends of DMC
runs (1000-step episodes, epochs a multiple of 1000 env steps). Otherwise each environment
restarts the episode it was in, and the run continues from there.
"""

from __future__ import annotations

import os
import random
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tianshou.data import ReplayBuffer
from tianshou.env import BaseVectorEnv

from tianshou_qmle.env.resumable import RESUME_REQUEST, RESUME_STATE, capture_rng, restore_rng
from tianshou_qmle.utils import remove_stale_temporaries

REPLAY_PREFIX = "replay-"


def capture_global_rng() -> dict[str, Any]:
    """torch's, NumPy's global and Python's random states, in types ``weights_only`` loads."""
    version, state, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": capture_rng(np.random.mtrand._rand),
        "python": (int(version), [int(x) for x in state], gauss),
    }


def restore_global_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    restore_rng(np.random.mtrand._rand, state["numpy"])
    version, values, gauss = state["python"]
    random.setstate((version, tuple(values), gauss))


def buffer_samplers(buffer: ReplayBuffer) -> list[np.random.RandomState]:
    """The buffer's own sub-buffer and index samplers (the manager's and its children's)."""
    samplers = [buffer._random_state] if isinstance(getattr(buffer, "_random_state", None),
                                                    np.random.RandomState) else []
    for child in getattr(buffer, "buffers", []):
        if isinstance(getattr(child, "_random_state", None), np.random.RandomState):
            samplers.append(child._random_state)
    return samplers


def capture_envs(envs: BaseVectorEnv) -> list[dict[str, Any]] | None:
    """Each env's record for repeating its current episode; None for envs without the wrapper."""
    try:
        return list(envs.get_env_attr(RESUME_STATE))
    except AttributeError:
        return None


def request_env_replay(envs: BaseVectorEnv, records: list[dict[str, Any]] | None) -> None:
    """Make each env's next reset repeat its recorded one."""
    if records is None:
        return
    if len(records) != envs.env_num:
        raise ValueError(f"the checkpoint has {len(records)} environments of this kind, the run has "
                         f"{envs.env_num}; resume with the same --num-train-envs and --num-test-envs")
    for i, record in enumerate(records):
        envs.set_env_attr(RESUME_REQUEST, record, id=i)


def mid_episode(records: list[dict[str, Any]] | None) -> bool:
    return records is not None and any(r["steps_in_episode"] > 0 for r in records)


def write_replay(buffer: ReplayBuffer, folder: Path, *, epoch: int) -> str:
    """Write the buffer atomically as ``replay-EPOCH.h5`` in ``folder``; returns the file name."""
    name = f"{REPLAY_PREFIX}{epoch}.h5"
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        buffer.save_hdf5(tmp)
        os.replace(tmp, folder / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return name


def read_replay(buffer: ReplayBuffer, path: Path) -> ReplayBuffer:
    """The buffer stored at ``path``, checked against the run's own ``buffer`` (type and size)."""
    if not path.is_file():
        raise FileNotFoundError(f"the checkpoint names the replay file {path}, which is missing")
    loaded = type(buffer).load_hdf5(str(path))
    if loaded.maxsize != buffer.maxsize or len(getattr(loaded, "buffers", [])) != len(
        getattr(buffer, "buffers", [])
    ):
        raise ValueError(
            f"the replay file {path} holds a buffer of capacity {loaded.maxsize} over "
            f"{len(getattr(loaded, 'buffers', []))} envs; this run's has {buffer.maxsize} over "
            f"{len(getattr(buffer, 'buffers', []))}. Resume with the same --buffer-size and "
            f"--num-train-envs."
        )
    return loaded


def remove_leftovers(folder: Path, *, keep: str | None = None) -> list[Path]:
    """Delete temporaries of interrupted writes and replay files other than ``keep``."""
    removed = remove_stale_temporaries(folder)
    if folder.is_dir():
        for replay in folder.glob(f"{REPLAY_PREFIX}*.h5"):
            if replay.name != keep:
                replay.unlink(missing_ok=True)
                removed.append(replay)
    return removed


def run_state(
    *, epoch: int, env_step: int, gradient_step: int, trainer_env_step: int, trainer_update_step: int,
    buffer: ReplayBuffer, train_envs: BaseVectorEnv, test_envs: BaseVectorEnv, replay_file: str,
) -> dict[str, Any]:
    """The ``run`` entry of a resumable checkpoint (see the module docstring)."""
    train_records = capture_envs(train_envs)
    if mid_episode(train_records):
        warnings.warn(
            "checkpoint taken in the middle of a training episode: a resume restarts that episode, "
            "so it will not repeat this run exactly (epochs that end between episodes avoid this)",
            stacklevel=2,
        )
    return {
        "epoch": epoch, "env_step": env_step, "gradient_step": gradient_step,
        "trainer_env_step": trainer_env_step, "trainer_update_step": trainer_update_step,
        "rng": capture_global_rng(),
        "buffer_rng": [capture_rng(s) for s in buffer_samplers(buffer)],
        "train_envs": train_records, "test_envs": capture_envs(test_envs),
        "replay_file": replay_file,
    }


def restore_buffer_rng(buffer: ReplayBuffer, states: list[Any]) -> None:
    samplers = buffer_samplers(buffer)
    if len(samplers) != len(states):
        raise ValueError(f"the checkpoint has {len(states)} buffer samplers, this buffer {len(samplers)}")
    for sampler, state in zip(samplers, states, strict=True):
        restore_rng(sampler, state)


__all__ = [
    "capture_envs",
    "capture_global_rng",
    "mid_episode",
    "read_replay",
    "remove_leftovers",
    "request_env_replay",
    "restore_buffer_rng",
    "restore_global_rng",
    "run_state",
    "write_replay",
]
