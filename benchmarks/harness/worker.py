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
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
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
from tianshou_qmle.experiment import resume
from tianshou_qmle.experiment.runner import GradientCountingTrainer, load_resume_state, restore_collectors
from tianshou_qmle.utils import evaluate, save_checkpoint, seed_everything

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
    "training",
)
"""Every field of one evaluation point of a run's curve. The three clocks are cumulative up to the
point: learning time (warm-up and evaluations excluded), wall time since the process started
building the run, and the process's CPU time (user + system), which other processes sharing the
machine do not inflate the way they inflate wall time. ``training`` holds the means of the
algorithm's training stats over the updates since the previous point (losses, IQ's temperature and
entropy, QMLE's prior-kept share, …), and the training episodes finished meanwhile
(``train_episodes``, ``train_episode_return``, with exploration); empty for a segment without
updates. Runs written before it existed lack the key."""

BUFFER_HEADROOM = 1024
"""Replay capacity beyond the budget (collect steps are at most 10 env steps here)."""


class Clock:
    """Adds up the seconds spent in each phase of a run (and those of earlier processes of a
    resumed run)."""

    def __init__(self, earlier: dict[str, float] | None = None) -> None:
        self.seconds: dict[str, float] = {"setup": 0.0, "warmup": 0.0, "learning": 0.0, "evaluation": 0.0}
        self.earlier = dict(earlier or {"wall": 0.0, "cpu": 0.0})
        """Wall and CPU seconds of the processes before this one."""
        if earlier:
            self.seconds.update({k: v for k, v in earlier.items() if k in self.seconds})
        self.started = time.perf_counter()

    def timed(self, phase: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.seconds[phase] += time.perf_counter() - start

    def wall(self) -> float:
        return self.earlier["wall"] + time.perf_counter() - self.started

    def cpu(self) -> float:
        return self.earlier["cpu"] + time.process_time()

    def state(self) -> dict[str, float]:
        return {**self.seconds, "wall": self.wall(), "cpu": self.cpu()}


def updates_per_training_step(agent: Agent) -> int:
    """Gradient updates the trainer makes after each collect step (one training env)."""
    schedule = agent.schedule
    return round(schedule.updates_per_env_step * schedule.env_steps_per_collect)


def train_segment(agent: Agent, collector: Collector, *, env_steps: int) -> tuple[int, dict[str, float]]:
    """One trainer epoch of at least ``env_steps`` env steps; returns its gradient steps and the
    means of the algorithm's training stats over them."""
    params = OffPolicyTrainerParams(
        training_collector=collector, test_collector=None, max_epochs=1, epoch_num_steps=env_steps,
        collection_step_num_env_steps=agent.schedule.env_steps_per_collect,
        update_step_num_gradient_steps_per_sample=agent.schedule.updates_per_env_step,
        batch_size=agent.schedule.batch_size, show_progress=False, verbose=False,
    )
    trainer = GradientCountingTrainer(algorithm=agent.algorithm, params=params)
    trainer.run(reset_collectors=False)
    return trainer.gradient_steps, trainer.mean_training_stats()


def curve_point(
    env_step: int, returns: np.ndarray, *, clock: Clock, training: dict[str, float] | None = None
) -> dict[str, Any]:
    return {"env_step": int(env_step), "return_mean": float(returns.mean()),
            "return_std": float(returns.std()), "returns": [float(r) for r in returns],
            "learning_seconds": round(clock.seconds["learning"], 2),
            "wall_seconds": round(clock.wall(), 2),
            "cpu_seconds": round(clock.cpu(), 2),
            "training": {k: round(v, 6) for k, v in (training or {}).items()}}


@dataclass(kw_only=True)
class RunProgress:
    """A run's place: env steps, gradient updates, the curve so far and the clock."""

    env_step: int = 0
    updates: int = 0
    curve: list[dict[str, Any]] = field(default_factory=list)


def save_run_checkpoint(
    folder: Path, *, agent: Agent, progress: RunProgress, clock: Clock, spec: RunSpec,
    train_envs: Any, test_envs: Any,
) -> None:
    """The weights, the run state and the harness's own progress after an evaluation point."""
    point = len(progress.curve)
    replay_file = resume.write_replay(agent.buffer, folder, epoch=point)
    run = resume.run_state(
        epoch=point, env_step=progress.env_step, gradient_step=progress.updates, trainer_env_step=0,
        trainer_update_step=0, buffer=agent.buffer, train_envs=train_envs, test_envs=test_envs,
        replay_file=replay_file,
    )
    run["harness"] = {"spec": spec.to_json(), "curve": progress.curve, "clock": clock.state()}
    save_checkpoint(agent.algorithm, folder / "checkpoint.pt", run=run, epoch=point,
                    env_step=progress.env_step, gradient_step=progress.updates)
    resume.remove_leftovers(folder, keep=replay_file)


def resume_run(
    folder: Path, *, agent: Agent, spec: RunSpec, train_collector: Collector, test_collector: Collector,
) -> tuple[RunProgress, Clock, Collector]:
    """Load a run's checkpoint (checked before anything is loaded) and put every generator back."""
    run, buffer = load_resume_state(agent.algorithm, agent.buffer, folder / "checkpoint.pt")
    harness = run.get("harness", {})
    if harness.get("spec") != spec.to_json():
        raise SystemExit(f"the checkpoint in {folder} belongs to another run: {harness.get('spec')}")
    agent.buffer = buffer
    train_collector = Collector(agent.algorithm, train_collector.env, buffer, exploration_noise=True)
    restore_collectors(run, buffer=buffer, train_collector=train_collector, test_collector=test_collector)
    progress = RunProgress(env_step=run["env_step"], updates=run["gradient_step"], curve=harness["curve"])
    return progress, Clock(earlier=harness["clock"]), train_collector


def run_single(
    spec: RunSpec, *, checkpoint_dir: Path | None = None, resume_checkpoint: bool = False
) -> dict[str, Any]:
    """Train and evaluate one (algorithm, task, seed) and return its result (see :data:`RESULT_KEYS`).

    With ``checkpoint_dir``, the run checkpoints after every evaluation point; with
    ``resume_checkpoint`` it continues from the checkpoint there (exactly, on DMC tasks, whose episodes
    end at every evaluation point).
    """
    spec.validate()
    entry = entry_for(spec.algorithm)
    torch.set_num_threads(spec.threads)
    seed_everything(spec.seed)
    clock = Clock()
    env, train_envs, test_envs = make_task_envs(spec.task, seed=spec.seed, num_test_envs=spec.eval_episodes)
    # room for the whole run: the trainer may overshoot a segment by less than one collect step
    agent = entry.build(env=env, seed=spec.seed, device=spec.device,
                        buffer_size=spec.budget + BUFFER_HEADROOM)
    train_collector = Collector(agent.algorithm, train_envs, agent.buffer, exploration_noise=True)
    test_collector = Collector(agent.algorithm, test_envs)
    progress = RunProgress()
    if checkpoint_dir is not None and resume_checkpoint and (checkpoint_dir / "checkpoint.pt").exists():
        progress, clock, train_collector = resume_run(checkpoint_dir, agent=agent, spec=spec,
                                                      train_collector=train_collector,
                                                      test_collector=test_collector)
        print(f"resumed {spec.name} at env step {progress.env_step}", flush=True)
    else:
        if checkpoint_dir is not None:
            resume.remove_leftovers(checkpoint_dir)
        train_collector.reset()
    clock.seconds["setup"] += time.perf_counter() - clock.started
    for target in eval_points(budget=spec.budget, interval=spec.eval_interval):
        if progress.env_step >= target:
            continue
        if progress.env_step < spec.warmup:
            random_steps = min(spec.warmup, target) - progress.env_step
            before = train_collector.collect_step
            clock.timed("warmup", train_collector.collect, n_step=random_steps, random=True)
            progress.env_step += train_collector.collect_step - before
        training: dict[str, float] = {}
        if progress.env_step < target:
            before = train_collector.collect_step
            updates, training = clock.timed("learning", train_segment, agent, train_collector,
                                            env_steps=target - progress.env_step)
            progress.updates += updates
            progress.env_step += train_collector.collect_step - before
        returns = clock.timed("evaluation", evaluate, agent.algorithm, test_collector, spec.eval_episodes)
        progress.curve.append(curve_point(progress.env_step, returns, clock=clock, training=training))
        if checkpoint_dir is not None:
            save_run_checkpoint(checkpoint_dir, agent=agent, progress=progress, clock=clock, spec=spec,
                                train_envs=train_envs, test_envs=test_envs)
    train_envs.close()
    test_envs.close()
    return result_of(spec, entry=entry, agent=agent, progress=progress, clock=clock)


def result_of(
    spec: RunSpec, *, entry: Any, agent: Agent, progress: RunProgress, clock: Clock
) -> dict[str, Any]:
    learned = progress.env_step - spec.warmup
    learning_seconds = max(clock.seconds["learning"], 1e-9)
    curve = progress.curve
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
        "env_steps": int(progress.env_step),
        "gradient_updates": int(progress.updates),
        "env_steps_per_second": round(learned / learning_seconds, 2),
        "gradient_updates_per_second": round(progress.updates / learning_seconds, 2),
        "timing": {**{f"{k}_seconds": round(v, 2) for k, v in clock.seconds.items()},
                   "wall_seconds": round(clock.wall(), 2), "cpu_seconds": round(clock.cpu(), 2)},
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
    parser.add_argument("--checkpoint-dir", default=None,
                        help="checkpoint the run here after every evaluation point")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the checkpoint in --checkpoint-dir, if there is one")
    args = parser.parse_args(argv)
    result = run_single(RunSpec.from_json(args.spec),
                        checkpoint_dir=Path(args.checkpoint_dir) if args.checkpoint_dir else None,
                        resume_checkpoint=args.resume)
    if args.checkpoint_dir:  # the result is what matters now; the run's checkpoint can go
        shutil.rmtree(args.checkpoint_dir, ignore_errors=True)
    write_json_atomically(Path(args.out), result)
    print(summary_line(result), flush=True)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
