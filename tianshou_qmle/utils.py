"""Run-level helpers shared by examples and benchmarks: seeding, checkpoints, evaluation."""

from __future__ import annotations

import os
import random
import tempfile
import zipfile
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tianshou.algorithm import Algorithm
from tianshou.data import Collector

CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
"""x86 CPU flags of native bf16 arithmetic (AVX-512 BF16 dot products, AMX tiles)."""


@cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (Linux); empty where it cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def has_native_bf16(device: str | torch.device = "cpu") -> bool:
    """Whether ``device`` multiplies bf16 matrices in hardware rather than emulating them.

    CUDA devices report it (``torch.cuda.is_bf16_supported``); CPUs do when they have one of
    :data:`CPU_BF16_FLAGS`. Emulated bf16 is slower than float32, so where this is False, float32
    is the faster scoring precision.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        return not cpu_flags().isdisjoint(CPU_BF16_FLAGS)
    return False


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy's global generator (ε-greedy, prioritized sampling) and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


OPTIMIZERS_KEY = "_optimizers"
"""Where Tianshou's ``Algorithm.state_dict()`` keeps its optimizers' states."""

PLAIN_COUNTERS = ("_cnt", "_last")
"""Plain attributes some Tianshou algorithms count with outside their ``state_dict`` (TD3's
delayed actor updates); checkpoints carry them so that a resumed run keeps their phase."""


class CheckpointMismatchError(ValueError):
    """A checkpoint was written by another algorithm, action space or network than the one given."""


def algorithm_signature(algorithm: Algorithm) -> dict[str, str]:
    """What a checkpoint must have been written by: the algorithm and policy classes and spaces."""
    policy = algorithm.policy
    return {
        "algorithm": type(algorithm).__name__,
        "policy": type(policy).__name__,
        "action_space": repr(getattr(policy, "action_space", None)),
        "observation_space": repr(getattr(policy, "observation_space", None)),
    }


def save_checkpoint(algorithm: Algorithm, path: str | os.PathLike[str], **extra: Any) -> Path:
    """Write ``algorithm.state_dict()`` (plus ``extra`` entries) atomically.

    The state goes to a temporary file in the same directory, is flushed to disk, and then
    replaces ``path`` with ``os.replace``, so a crash mid-write leaves the previous checkpoint
    intact (and at most a ``.NAME.*.tmp`` file, which :func:`remove_stale_temporaries` deletes).
    The file loads with ``torch.load(path, weights_only=True)``; it also records
    :func:`algorithm_signature`, so that :func:`load_checkpoint` can refuse another algorithm's.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    counters = {k: getattr(algorithm, k) for k in PLAIN_COUNTERS
                if isinstance(getattr(algorithm, k, None), int | float)}
    payload = {"algorithm": algorithm.state_dict(), "signature": algorithm_signature(algorithm),
               "plain_counters": counters, **extra}
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def remove_stale_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the ``.*.tmp`` files an atomic write killed mid-way left in ``folder``; returns them."""
    folder = Path(folder)
    stale = sorted(folder.glob(".*.tmp")) if folder.is_dir() else []
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


def read_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The contents of a checkpoint as ``{"algorithm": state_dict, ...}``, without loading it.

    Accepts files of :func:`save_checkpoint` and plain ``torch.save(algorithm.state_dict())``
    files (returned as ``{"algorithm": that_state_dict}``).

    :raises FileNotFoundError: when ``path`` does not exist.
    :raises ValueError: when the file is not a readable checkpoint (truncated, random bytes, or
        pickled objects other than tensors and plain containers).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path} is not a checkpoint: it is not a torch.save archive (it may be truncated, or "
            f"another kind of file). Checkpoints come from tianshou_qmle.utils.save_checkpoint or "
            f"torch.save(algorithm.state_dict())."
        )
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises RuntimeError, UnpicklingError, EOFError, zip errors …
        raise ValueError(
            f"{path} is a torch.save archive but not a readable checkpoint ({type(err).__name__}): it "
            f"is corrupt, or it pickles objects other than tensors and plain containers, which are "
            f"not loaded for safety. Save algorithm.state_dict(), not the algorithm object."
        ) from None
    if not isinstance(payload, dict):
        raise ValueError(f"{path} holds a {type(payload).__name__}, not a checkpoint dictionary")
    if "algorithm" in payload and isinstance(payload["algorithm"], dict):
        return payload
    if payload and all(isinstance(k, str) for k in payload) and (
        OPTIMIZERS_KEY in payload or any(isinstance(v, torch.Tensor) for v in payload.values())
    ):
        return {"algorithm": payload}
    raise ValueError(
        f"{path} is a dictionary with keys {sorted(map(str, payload))[:6]} but neither a checkpoint "
        f"of save_checkpoint (key 'algorithm') nor an algorithm's state_dict"
    )


def _describe(signature: dict[str, str] | None) -> str:
    if not signature:
        return "(not recorded)"
    return (f"{signature.get('algorithm')} with {signature.get('policy')}, actions "
            f"{signature.get('action_space')}, observations {signature.get('observation_space')}")


def state_mismatches(current: dict[str, Any], saved: dict[str, Any]) -> list[str]:
    """Every way ``saved`` (a state dict) cannot be loaded into a module whose state is ``current``."""
    problems: list[str] = []
    current_keys = {k for k in current if k != OPTIMIZERS_KEY}
    saved_keys = {k for k in saved if k != OPTIMIZERS_KEY}
    if missing := sorted(current_keys - saved_keys):
        problems.append(f"{len(missing)} tensors missing from the checkpoint, e.g. {missing[:3]}")
    if unexpected := sorted(saved_keys - current_keys):
        problems.append(f"{len(unexpected)} tensors the algorithm does not have, e.g. {unexpected[:3]}")
    for key in sorted(current_keys & saved_keys):
        a, b = current[key], saved[key]
        if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape != b.shape:
            problems.append(f"{key}: {tuple(b.shape)} in the checkpoint, {tuple(a.shape)} here")
    problems += optimizer_mismatches(current.get(OPTIMIZERS_KEY, []), saved.get(OPTIMIZERS_KEY, []))
    return problems


def optimizer_mismatches(current: list[dict], saved: list[dict]) -> list[str]:
    """Differences in number of optimizers, of parameters per optimizer, and in moment shapes."""
    if len(current) != len(saved):
        return [f"{len(saved)} optimizers in the checkpoint, {len(current)} here"]
    problems = []
    for i, (mine, theirs) in enumerate(zip(current, saved, strict=True)):
        mine_params = [p for g in mine.get("param_groups", []) for p in g["params"]]
        their_params = [p for g in theirs.get("param_groups", []) for p in g["params"]]
        if len(mine_params) != len(their_params):
            problems.append(f"optimizer {i}: {len(their_params)} parameters in the checkpoint, "
                            f"{len(mine_params)} here")
    return problems


def optimizer_moment_mismatches(algorithm: Algorithm, saved: dict[str, Any]) -> list[str]:
    """Moments (e.g. Adam's) in ``saved`` whose shapes differ from the parameters they belong to."""
    problems = []
    optimizers = getattr(algorithm, "_optimizers", [])
    for i, (optim, state) in enumerate(zip(optimizers, saved.get(OPTIMIZERS_KEY, []), strict=False)):
        params = [p for g in optim._optim.param_groups for p in g["params"]]
        for index, moments in state.get("state", {}).items():
            if not 0 <= int(index) < len(params):
                continue
            shape = params[int(index)].shape
            for name, value in moments.items():
                if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != shape:
                    problems.append(f"optimizer {i}, parameter {index}, {name}: {tuple(value.shape)} in "
                                    f"the checkpoint, {tuple(shape)} here")
    return problems


def check_checkpoint_fits(algorithm: Algorithm, payload: dict[str, Any], *, path: Any = "") -> None:
    """Raise :class:`CheckpointMismatchError` naming both configurations unless ``payload`` loads into
    ``algorithm`` completely; changes nothing."""
    saved_signature = payload.get("signature")
    current_signature = algorithm_signature(algorithm)
    problems = []
    if saved_signature and saved_signature != current_signature:
        problems.append("it was written by another configuration")
    problems += state_mismatches(algorithm.state_dict(), payload["algorithm"])
    problems += optimizer_moment_mismatches(algorithm, payload["algorithm"])
    if problems:
        raise CheckpointMismatchError(
            f"the checkpoint {path} does not fit this algorithm, and nothing was loaded.\n"
            f"  checkpoint: {_describe(saved_signature)}\n"
            f"  this run:   {_describe(current_signature)}\n"
            f"  differences: " + "; ".join(problems[:8])
        )


def load_checkpoint(
    algorithm: Algorithm, path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Restore an algorithm from :func:`save_checkpoint`'s file (or a plain ``state_dict`` file);
    returns the ``extra`` entries.

    Everything is checked before anything is loaded: a checkpoint of another algorithm, action
    space or network size raises :class:`CheckpointMismatchError` (a ``ValueError``) with both
    configurations and leaves ``algorithm`` untouched.
    """
    payload = read_checkpoint(path, map_location=map_location)
    check_checkpoint_fits(algorithm, payload, path=path)
    algorithm.load_state_dict(payload.pop("algorithm"))
    for name, value in payload.pop("plain_counters", {}).items():
        setattr(algorithm, name, value)
    payload.pop("signature", None)
    return payload


def evaluate(algorithm: Algorithm, collector: Collector, num_episodes: int) -> np.ndarray:
    """Returns of ``num_episodes`` evaluation episodes.

    Actions come from ``collector`` as configured: a collector built without
    ``exploration_noise=True`` acts greedily (ε = 0). QMLE's greedy action is itself an arg max
    over sampled candidates, so seed torch for bit-identical evaluations.

    :return: the episode returns, one per episode.
    """
    if num_episodes < 1:
        raise ValueError(f"num_episodes must be ≥ 1, got {num_episodes}")
    algorithm.policy.is_within_training_step = False
    collector.reset()
    stats = collector.collect(n_episode=num_episodes)
    return np.asarray(stats.returns, dtype=np.float64)
