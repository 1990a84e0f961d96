"""One run in its own process: warm-up, training segments through Tianshou's trainer, evaluations.

The run's env-step budget is cut at its evaluation points (every ``eval_interval`` env steps and
at the budget). Up to the warm-up, a segment collects uniformly random actions; after it,
a segment is one epoch of Tianshou's ``OffPolicyTrainer`` (no test collector inside, no logger),
continuing the same collectors, buffer and algorithm. At every evaluation point the policy acts
deterministically for ``eval_episodes`` episodes on the run's test envs, outside the timed
learning time.

Speeds count the learning phase only (after warm-up, without evaluations), as
``tianshou_qmle.experiment.runner`` and ``benchmarks/speed_qmle_vs_td3.py`` do.

    python -m benchmarks.harness.worker --spec '{"algorithm": "td3", ...}' --out results.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tianshou.data import Collector
from tianshou.trainer import OffPolicyTrainerParams

from benchmarks.harness.algorithms import Agent, entry_for
from benchmarks.harness.meta import git_commit, library_versions, machine, now_iso, peak_rss_mib
from benchmarks.harness.spec import RunSpec, eval_points
from benchmarks.harness.tasks import make_task_envs
from tianshou_qmle.utils import evaluate, seed_everything

RESULT_SCHEMA = 1

RESULT_KEYS = (
    "schema", "algorithm", "label", "task", "seed", "protocol", "hyperparameters", "hyperparameter_source",
    "curve", "final_return_mean", "final_return_std", "env_steps", "gradient_updates",
    "env_steps_per_second", "gradient_updates_per_second", "timing", "peak_rss_mib", "versions",
    "machine", "git", "date",
)
"""Every field of a run's JSON file."""

CURVE_KEYS = (
    "env_step", "return_mean", "return_std", "returns", "learning_seconds", "wall_seconds", "cpu_seconds",
)
"""Every field of one evaluation point of a run's curve. The three clocks are cumulative up to the
point: learning time (warm-up and evaluations excluded), wall time since the process started
building the run, and the process's CPU time (user + system), which other processes sharing the
machine do not inflate the way they inflate wall time."""

BUFFER_HEADROOM = 1024
"""Replay capacity beyond the budget (collect steps are at most 10 env steps here)."""


class Clock:
    """Adds up the seconds spent in each phase of a run."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {"setup": 0.0, "warmup": 0.0, "learning": 0.0, "evaluation": 0.0}

    def timed(self, phase: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.seconds[phase] += time.perf_counter() - start


def updates_per_training_step(agent: Agent) -> int:
    """Gradient updates the trainer makes after each collect step (one training env)."""
    schedule = agent.schedule
    return round(schedule.updates_per_env_step * schedule.env_steps_per_collect)


def train_segment(agent: Agent, collector: Collector, *, env_steps: int) -> int:
    """One trainer epoch of at least ``env_steps`` env steps; returns the trainer's training steps."""
    params = OffPolicyTrainerParams(
        training_collector=collector, test_collector=None, max_epochs=1, epoch_num_steps=env_steps,
        collection_step_num_env_steps=agent.schedule.env_steps_per_collect,
        update_step_num_gradient_steps_per_sample=agent.schedule.updates_per_env_step,
        batch_size=agent.schedule.batch_size, show_progress=False, verbose=False,
    )
    info = agent.algorithm.create_trainer(params).run(reset_collectors=False)
    return int(info.update_step)


def curve_point(env_step: int, returns: np.ndarray, *, clock: Clock, started: float) -> dict[str, Any]:
    return {"env_step": int(env_step), "return_mean": float(returns.mean()),
            "return_std": float(returns.std()), "returns": [float(r) for r in returns],
            "learning_seconds": round(clock.seconds["learning"], 2),
            "wall_seconds": round(time.perf_counter() - started, 2),
            "cpu_seconds": round(time.process_time(), 2)}


def run_single(spec: RunSpec) -> dict[str, Any]:
    """Train and evaluate one (algorithm, task, seed) and return its result (see :data:`RESULT_KEYS`)."""
    spec.validate()
    entry = entry_for(spec.algorithm)
    torch.set_num_threads(spec.threads)
    seed_everything(spec.seed)
    started = time.perf_counter()
    env, train_envs, test_envs = make_task_envs(spec.task, seed=spec.seed, num_test_envs=spec.eval_episodes)
    # room for the whole run: the trainer may overshoot a segment by less than one collect step
    agent = entry.build(env=env, seed=spec.seed, device=spec.device,
                        buffer_size=spec.budget + BUFFER_HEADROOM)
    train_collector = Collector(agent.algorithm, train_envs, agent.buffer, exploration_noise=True)
    test_collector = Collector(agent.algorithm, test_envs)
    train_collector.reset()
    clock = Clock()
    clock.seconds["setup"] = time.perf_counter() - started
    curve, training_steps = [], 0
    for target in eval_points(budget=spec.budget, interval=spec.eval_interval):
        if train_collector.collect_step < spec.warmup:
            random_steps = min(spec.warmup, target) - train_collector.collect_step
            clock.timed("warmup", train_collector.collect, n_step=random_steps, random=True)
        if train_collector.collect_step < target:
            remaining = target - train_collector.collect_step
            training_steps += clock.timed("learning", train_segment, agent, train_collector,
                                          env_steps=remaining)
        returns = clock.timed("evaluation", evaluate, agent.algorithm, test_collector, spec.eval_episodes)
        curve.append(curve_point(train_collector.collect_step, returns, clock=clock, started=started))
    train_envs.close()
    test_envs.close()

    learned = train_collector.collect_step - spec.warmup
    updates = training_steps * updates_per_training_step(agent)
    learning_seconds = max(clock.seconds["learning"], 1e-9)
    return {
        "schema": RESULT_SCHEMA,
        "algorithm": spec.algorithm,
        "label": entry.label,
        "task": spec.task,
        "seed": spec.seed,
        "protocol": spec.protocol(),
        "hyperparameters": agent.hyperparameters,
        "hyperparameter_source": entry.source,
        "curve": curve,
        "final_return_mean": curve[-1]["return_mean"],
        "final_return_std": curve[-1]["return_std"],
        "env_steps": int(train_collector.collect_step),
        "gradient_updates": int(updates),
        "env_steps_per_second": round(learned / learning_seconds, 2),
        "gradient_updates_per_second": round(updates / learning_seconds, 2),
        "timing": {**{f"{k}_seconds": round(v, 2) for k, v in clock.seconds.items()},
                   "wall_seconds": round(time.perf_counter() - started, 2),
                   "cpu_seconds": round(time.process_time(), 2)},
        "peak_rss_mib": peak_rss_mib(),
        "versions": library_versions(),
        "machine": machine(torch_threads=torch.get_num_threads()),
        "git": git_commit(),
        "date": now_iso(),
    }


def write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` through a temporary file, so a killed run leaves no partial result."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, default=str)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def summary_line(result: dict[str, Any]) -> str:
    return (f"[{result['algorithm']}] {result['task']} seed={result['seed']} steps={result['env_steps']} "
            f"final_return={result['final_return_mean']:.1f}±{result['final_return_std']:.1f} "
            f"env_steps/s={result['env_steps_per_second']} updates/s={result['gradient_updates_per_second']} "
            f"wall={result['timing']['wall_seconds']:.0f}s peak_rss={result['peak_rss_mib']:.0f}MiB")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", required=True, help="the run, as the JSON of a RunSpec")
    parser.add_argument("--out", required=True, help="where to write the run's result JSON")
    args = parser.parse_args(argv)
    result = run_single(RunSpec.from_json(args.spec))
    write_json_atomically(Path(args.out), result)
    print(summary_line(result), flush=True)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
