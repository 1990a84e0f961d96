"""Run a list of (algorithm, task, seed) runs, each in its own process, skipping finished ones.

Every run is ``python -m benchmarks.harness.worker`` in a fresh process (so its peak RSS is its
own), with ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` set to the run's threads. Runs go one after
another, on ``workers`` local processes at once, or as Ray tasks (``use_ray``: Ray is imported only
then; each Ray task still starts the run in a process of its own and sends its result back to be
written here, so a Ray cluster needs no shared file system).

A run whose result JSON exists is skipped, provided it was made with the same protocol (budget,
warm-up, evaluation, threads, device); a result made with another protocol stops the invocation
rather than mixing protocols in one table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.harness.spec import RunSpec, checkpoint_path, log_path, result_path

ROOT = Path(__file__).resolve().parents[2]

RAY_MISSING = (
    "--ray needs Ray, which is not installed in this Python ({python}). Install it with "
    "`pip install ray`, or run without --ray: --workers N runs N local processes at once."
)


class RayUnavailableError(RuntimeError):
    """``--ray`` was asked for and Ray cannot be imported."""


class ProtocolMismatchError(RuntimeError):
    """A finished run in the output folder was made with another protocol than the one asked for."""


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """What became of one run."""

    spec: RunSpec
    status: str
    """``"done"`` (ran now), ``"skipped"`` (its result existed) or ``"failed"``."""
    seconds: float = 0.0
    message: str = ""


def runs_for(
    *,
    tasks: Iterable[str],
    algorithms: Iterable[str],
    seeds: Iterable[int],
    warmups: dict[str, int],
    budget: int,
    eval_interval: int,
    eval_episodes: int,
    threads: int,
    device: str = "cpu",
) -> list[RunSpec]:
    """Every (algorithm, task, seed), seed by seed, so that early results cover every pair."""
    specs = [
        RunSpec(algorithm=algo, task=task, seed=seed, budget=budget, warmup=warmups[algo],
                eval_interval=eval_interval, eval_episodes=eval_episodes, threads=threads, device=device)
        for seed in seeds for task in tasks for algo in algorithms
    ]
    for spec in specs:
        spec.validate()
    return specs


def load_result(out: Path, spec: RunSpec) -> dict[str, Any] | None:
    """The run's result if it exists and matches ``spec``'s protocol; None if it does not exist.

    :raises ProtocolMismatchError: if it exists with another protocol.
    """
    path = result_path(out, spec)
    if not path.exists():
        return None
    result = json.loads(path.read_text())
    if result.get("protocol") != spec.protocol():
        raise ProtocolMismatchError(
            f"{path} was made with {result.get('protocol')}, not {spec.protocol()}: use another --out, "
            f"or delete it to run again"
        )
    return result


def worker_environment(threads: int) -> dict[str, str]:
    """The run's environment: this one, the repository importable, BLAS pools at ``threads``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(threads)
    return env


def worker_command(
    spec: RunSpec, result_file: Path, *, checkpoint_dir: Path | None = None, resume: bool = False
) -> list[str]:
    command = [sys.executable, "-m", "benchmarks.harness.worker", "--spec", spec.to_json(),
               "--out", str(result_file)]
    if checkpoint_dir is not None:
        command += ["--checkpoint-dir", str(checkpoint_dir), *(["--resume"] if resume else [])]
    return command


def run_process(
    spec: RunSpec, *, result_file: Path, log_file: Path, checkpoint_dir: Path | None = None,
    resume: bool = False,
) -> int:
    """Run ``spec`` in a new process writing ``result_file``; its output goes to ``log_file``
    (appended to when resuming, so the log keeps both parts)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    command = worker_command(spec, result_file, checkpoint_dir=checkpoint_dir, resume=resume)
    with log_file.open("a" if resume else "w") as log:
        proc = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT,
                              env=worker_environment(spec.threads), cwd=ROOT, check=False)
    return proc.returncode


def run_local(spec: RunSpec, *, out: Path, resume: bool = False) -> Outcome:
    started = time.perf_counter()
    code = run_process(spec, result_file=result_path(out, spec), log_file=log_path(out, spec),
                       checkpoint_dir=checkpoint_path(out, spec), resume=resume)
    seconds = time.perf_counter() - started
    if code != 0 or not result_path(out, spec).exists():
        return Outcome(spec=spec, status="failed", seconds=seconds,
                       message=f"exit {code}, see {log_path(out, spec)}")
    return Outcome(spec=spec, status="done", seconds=seconds)


def run_detached(spec_json: str) -> tuple[dict[str, Any] | None, str, int, float]:
    """Run a spec in a new process inside a temporary folder (for Ray tasks, on any node).

    :return: the result (None on failure), the process's output, its exit code and the seconds taken.
    """
    spec = RunSpec.from_json(spec_json)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        result_file, log_file = Path(tmp) / "result.json", Path(tmp) / "run.log"
        code = run_process(spec, result_file=result_file, log_file=log_file)
        result = json.loads(result_file.read_text()) if code == 0 and result_file.exists() else None
        return result, log_file.read_text(), code, time.perf_counter() - started


def import_ray() -> Any:
    """Ray, imported on demand.

    :raises RayUnavailableError: with what to do instead, when Ray is not installed.
    """
    try:
        import ray
    except ImportError as err:
        raise RayUnavailableError(RAY_MISSING.format(python=sys.executable)) from err
    return ray


def run_on_ray(
    specs: list[RunSpec], *, out: Path, address: str | None, num_cpus: int | None,
    report: Callable[[Outcome], None],
) -> list[Outcome]:
    """Each spec as a Ray task of ``spec.threads`` CPUs; results and logs are written under ``out``.

    :param address: the Ray cluster to join; None starts a local Ray with ``num_cpus`` CPUs.
    """
    ray = import_ray()
    if not ray.is_initialized():
        env_vars = {"PYTHONPATH": worker_environment(1)["PYTHONPATH"]}
        ray.init(address=address, num_cpus=None if address else num_cpus,
                 runtime_env={"env_vars": env_vars}, log_to_driver=False)
    pending = {}
    for spec in specs:
        task = ray.remote(num_cpus=spec.threads)(run_detached)
        pending[task.remote(spec.to_json())] = spec
    outcomes = []
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        spec = pending.pop(ready[0])
        result, log_text, code, seconds = ray.get(ready[0])
        log_file = log_path(out, spec)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        log_file.write_text(log_text)
        if result is None:
            outcome = Outcome(spec=spec, status="failed", seconds=seconds,
                              message=f"exit {code}, see {log_file}")
        else:
            from benchmarks.harness.worker import write_json_atomically

            write_json_atomically(result_path(out, spec), result)
            outcome = Outcome(spec=spec, status="done", seconds=seconds)
        report(outcome)
        outcomes.append(outcome)
    return outcomes


def run_all(
    specs: list[RunSpec],
    *,
    out: Path,
    workers: int = 1,
    use_ray: bool = False,
    ray_address: str | None = None,
    report: Callable[[Outcome], None] = lambda outcome: None,
    resume: bool = False,
) -> list[Outcome]:
    """Run every spec whose result is not in ``out`` yet; ``report`` hears of each outcome.

    Local runs checkpoint after every evaluation point under ``OUT/checkpoints``; with ``resume``
    a run that was killed continues from there instead of starting again (Ray runs do not
    checkpoint: their processes live in temporary folders on other nodes).

    ``workers`` caps the runs at once: local processes, or the CPUs of a local Ray (a Ray cluster
    joined through ``ray_address`` schedules by its own CPUs).

    :raises RayUnavailableError: ``use_ray`` without Ray installed (before anything runs).
    :raises ProtocolMismatchError: a result in ``out`` has another protocol (before anything runs).
    """
    if use_ray:
        import_ray()
    if workers < 1:
        raise ValueError(f"workers must be ≥ 1, got {workers}")
    skipped = [Outcome(spec=s, status="skipped") for s in specs if load_result(out, s) is not None]
    for outcome in skipped:
        report(outcome)
    done = {o.spec for o in skipped}
    pending = [s for s in specs if s not in done]
    if use_ray:
        return skipped + run_on_ray(pending, out=out, address=ray_address,
                                    num_cpus=workers * max((s.threads for s in specs), default=1),
                                    report=report)

    def one(spec: RunSpec) -> Outcome:
        outcome = run_local(spec, out=out, resume=resume)
        report(outcome)
        return outcome

    if workers == 1:
        return skipped + [one(s) for s in pending]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return skipped + list(pool.map(one, pending))


__all__ = [
    "Outcome",
    "ProtocolMismatchError",
    "RayUnavailableError",
    "import_ray",
    "load_result",
    "run_all",
    "run_detached",
    "run_local",
    "runs_for",
    "worker_command",
    "worker_environment",
]
