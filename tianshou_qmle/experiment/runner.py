"""The run harness shared by the examples: common flags, warm-up, training, checkpoints, evaluation,
resuming, and the one-line / JSON summary. Each example builds its own algorithm and buffer and hands
them here.

Training runs in epochs that end at multiples of ``--epoch-steps`` env steps (warm-up included) and
at ``--total-steps``. Each epoch is one epoch of Tianshou's ``OffPolicyTrainer`` over the same
collectors, buffer and logger, followed by a greedy evaluation (``--test-episodes``) and a
resumable checkpoint (:mod:`tianshou_qmle.experiment.resume`). ``--resume`` continues a killed run
from its last checkpoint without a second warm-up.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tianshou.algorithm.algorithm_base import OffPolicyAlgorithm
from tianshou.data import Collector, CollectStats, ReplayBuffer
from tianshou.env import BaseVectorEnv
from tianshou.trainer import OffPolicyTrainer, OffPolicyTrainerParams
from tianshou.utils import TensorboardLogger
from torch.utils.tensorboard import SummaryWriter

from tianshou_qmle.data.buffer import FastNullCheckVectorReplayBuffer
from tianshou_qmle.experiment import resume
from tianshou_qmle.utils import (
    check_checkpoint_fits,
    evaluate,
    read_checkpoint,
    save_checkpoint,
    seed_everything,
)

SUMMARY_KEYS = (
    "task", "algorithm", "seed", "env_steps", "eval_return_mean", "eval_return_std", "wall_seconds",
    "env_steps_per_second", "gradient_updates_per_second", "gradient_steps",
)
"""The fields every example's ``--summary-json`` holds (more may follow)."""

RESUME_LATEST = "latest"
"""``--resume`` without a path: the run's own checkpoint."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show defaults and keep the description's line breaks."""


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type`` accepting integers ≥ ``minimum`` (argparse names the flag in errors)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer ≥ {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer ≥ {minimum}, got {value}")
        return value

    parse.__name__ = f"integer ≥ {minimum}"
    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def float_in(low: float, high: float, *, low_open: bool = False) -> Callable[[str], float]:
    """An argparse ``type`` accepting finite floats in [low, high] (or (low, high])."""
    bounds = f"{'(' if low_open else '['}{low:g}, {high:g}]"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number in {bounds}, got {text!r}") from None
        if not (math.isfinite(value) and (value > low if low_open else value >= low) and value <= high):
            raise argparse.ArgumentTypeError(f"must be a number in {bounds}, got {value:g}")
        return value

    parse.__name__ = f"number in {bounds}"
    return parse


positive_float = float_in(0.0, math.inf, low_open=True)
non_negative_float = float_in(0.0, math.inf)
unit_interval = float_in(0.0, 1.0)


def add_run_arguments(
    parser: argparse.ArgumentParser, *, task: str, total_steps: int, warmup: int = 1000
) -> None:
    """Flags every example shares: task, budget, seed, device, threads, logging, evaluation, resume."""
    run = parser.add_argument_group("run")
    run.add_argument("--task", default=task, help="environment task")
    run.add_argument("--total-steps", type=positive_int, default=total_steps,
                     help="env steps in total, warm-up included (rounded up to whole collect steps)")
    run.add_argument("--warmup", type=non_negative_int, default=warmup,
                     help="uniformly random steps before learning")
    run.add_argument("--seed", type=int, default=0, help="seeds envs, networks, sampling and exploration")
    run.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    run.add_argument("--threads", type=positive_int, default=1,
                     help="torch intra-op threads (1 is fastest when other work shares the CPU)")
    run.add_argument("--logdir", default="log", help="TensorBoard and checkpoint root")
    run.add_argument("--logger", choices=["tensorboard", "wandb"], default="tensorboard",
                     help="tensorboard; or wandb: the same TensorBoard logs, synced to Weights & Biases "
                          "(WANDB_MODE=offline logs without a network; pip install wandb)")
    run.add_argument("--wandb-project", default="tianshou-qmle", help="W&B project (with --logger wandb)")
    run.add_argument("--checkpoint", default=None,
                     help="checkpoint path; None means LOGDIR/TASK/ALGO/seed_SEED/checkpoint.pt")
    run.add_argument("--resume", nargs="?", const=RESUME_LATEST, default=None, metavar="CHECKPOINT",
                     help="continue a killed run from its last checkpoint (the --checkpoint path), or "
                          "from CHECKPOINT; no second warm-up, TensorBoard curves continue")
    run.add_argument("--summary-json", default=None, help="also write the final summary here")
    run.add_argument("--epoch-steps", type=positive_int, default=10_000,
                     help="epochs end at multiples of this many env steps (warm-up included): an "
                          "evaluation, test logs and a checkpoint each")
    run.add_argument("--test-episodes", type=positive_int, default=5,
                     help="evaluation episodes after each epoch")
    run.add_argument("--eval-episodes", type=positive_int, default=10,
                     help="greedy evaluation episodes at the end")
    run.add_argument("--num-train-envs", type=positive_int, default=1, help="parallel training envs")
    run.add_argument("--num-test-envs", type=positive_int, default=5, help="parallel evaluation envs")
    run.add_argument("--vector-env", choices=["dummy", "subproc", "ray"], default="dummy",
                     help="Tianshou vector env class for both training and test envs (ray: one Ray actor "
                          "per env, joining a running cluster or starting a local one; pip install ray)")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def prepare_run(args: argparse.Namespace) -> None:
    """Validate the shared flags, pin torch threads and seed every generator."""
    if args.total_steps <= args.warmup:
        raise SystemExit(f"--total-steps ({args.total_steps}) must exceed --warmup ({args.warmup})")
    if args.threads < 1:
        raise SystemExit(f"--threads must be ≥ 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    seed_everything(args.seed)


@dataclass(kw_only=True)
class Schedule:
    """How often the trainer collects and updates."""

    env_steps_per_collect: int
    """Env steps per collect step (10 for QMLE's replay period K, 1 for TD3/SAC)."""
    updates_per_env_step: float
    """Gradient updates per env step (0.1 for QMLE, 1 for TD3/SAC)."""
    batch_size: int


class GradientCountingTrainer(OffPolicyTrainer):
    """Tianshou's ``OffPolicyTrainer`` that counts its gradient steps.

    Tianshou's ``update_step`` counts training steps (a collect and its updates), so a run with 2
    env steps per collect and 1 update per env step makes twice as many gradient steps as it
    reports; ``gradient_steps`` counts each ``algorithm.update`` call.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gradient_steps = 0
        self._stat_sums: dict[str, float] = {}
        self._stat_counts: dict[str, int] = {}
        self._episode_return_sum = 0.0
        self._episodes = 0

    def _collect_training_data(self) -> Any:
        stats = super()._collect_training_data()
        returns = np.asarray(stats.returns, dtype=float).reshape(-1)
        self._episode_return_sum += float(returns.sum())
        self._episodes += returns.size
        return stats

    def _sample_and_update(self, buffer: ReplayBuffer) -> Any:
        self.gradient_steps += 1
        stats = super()._sample_and_update(buffer)
        self._accumulate(stats)
        return stats

    def _accumulate(self, stats: Any) -> None:
        if not hasattr(stats, "get_loss_stats_dict"):
            return
        for name, value in stats.get_loss_stats_dict().items():
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                self._stat_sums[name] = self._stat_sums.get(name, 0.0) + float(value)
                self._stat_counts[name] = self._stat_counts.get(name, 0) + 1

    def mean_training_stats(self) -> dict[str, float]:
        """The mean of each numeric field of the algorithm's training stats over this trainer's
        updates (``QMLETrainingStats``, ``IQTrainingStats``' ``temperature`` and ``entropy``, …);
        non-finite values are left out of the means. With the episodes that the training collector
        finished meanwhile (with exploration), also ``train_episodes`` and their mean
        ``train_episode_return``: they tell a policy that learns nothing from one that only fails
        under greedy evaluation."""
        means = {name: self._stat_sums[name] / self._stat_counts[name] for name in sorted(self._stat_sums)}
        if self._episodes:
            means["train_episodes"] = float(self._episodes)
            means["train_episode_return"] = self._episode_return_sum / self._episodes
        return means


class ResumableLogger(TensorboardLogger):
    """A ``TensorboardLogger`` whose ``restore_data`` returns the run's own counters, so that each
    epoch's trainer (and a resumed run's) continues the epoch, env-step and update-step counts and
    the TensorBoard curves instead of starting at 0."""

    def __init__(self, writer: SummaryWriter) -> None:
        # save_interval=1: Tianshou calls save_checkpoint_fn only when the logger has one
        super().__init__(writer, training_interval=1000, update_interval=100, save_interval=1)
        self.counters = (0, 0, 0)

    def restore_data(self) -> tuple[int, int, int]:
        epoch, env_step, update_step = self.counters
        self.last_save_step = self.last_log_test_step = epoch
        self.last_log_update_step = update_step
        self.last_log_train_step = env_step
        return epoch, env_step, update_step


def epoch_ends(start: int, total: int, epoch_steps: int) -> list[int]:
    """Env steps at which epochs end after ``start``: multiples of ``epoch_steps``, then ``total``.

    >>> epoch_ends(1000, 25_000, 10_000)
    [10000, 20000, 25000]
    """
    ends = list(range((start // epoch_steps + 1) * epoch_steps, total, epoch_steps))
    return [*ends, total] if start < total else []


def resume_path(args: argparse.Namespace, checkpoint_path: Path) -> Path | None:
    """The checkpoint ``--resume`` points at (None without ``--resume``)."""
    if args.resume is None:
        return None
    path = checkpoint_path if args.resume == RESUME_LATEST else Path(args.resume)
    if not path.is_file():
        raise SystemExit(f"--resume: no checkpoint at {path} (is --logdir, --task, --seed or "
                         f"--checkpoint the same as for the run to resume?)")
    return path


def load_resume_state(
    algorithm: OffPolicyAlgorithm, buffer: ReplayBuffer, path: Path
) -> tuple[dict[str, Any], ReplayBuffer]:
    """Read and check everything of a checkpoint before loading any of it; then load it.

    :return: the checkpoint's ``run`` entry and the replay buffer read from its file.
    :raises SystemExit: with the reason, when the checkpoint cannot be resumed into this run.
    """
    try:
        payload = read_checkpoint(path)
        check_checkpoint_fits(algorithm, payload, path=path)
        run = payload.get("run")
        if run is None:
            raise ValueError(f"{path} holds weights but no run state (it was not written by a run of "
                             f"this version); load it with tianshou_qmle.utils.load_checkpoint instead")
        replay = resume.read_replay(buffer, path.parent / run["replay_file"])
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"--resume: {err}") from err
    algorithm.load_state_dict(payload["algorithm"])
    for name, value in payload.get("plain_counters", {}).items():
        setattr(algorithm, name, value)
    return run, replay


def end_interrupted_episodes(buffer: ReplayBuffer, records: list[dict[str, Any]] | None) -> None:
    """Mark the last stored transition of each env that was mid-episode at the checkpoint as
    truncated, so that n-step returns never bridge the interrupted episode and the restarted one."""
    if not resume.mid_episode(records) or len(buffer) == 0:
        return
    last = np.atleast_1d(buffer.last_index)
    for i, record in enumerate(records or []):
        if record["steps_in_episode"] > 0 and i < len(last):
            buffer.truncated[last[i]] = True
            buffer.done[last[i]] = True


def write_test_data(logger: TensorboardLogger, returns: np.ndarray, env_step: int) -> None:
    logger.write("test/env_step", env_step, {
        "test/returns_stat/mean": float(returns.mean()), "test/returns_stat/std": float(returns.std()),
        "test/n_collected_episodes": len(returns),
    })


@dataclass(kw_only=True)
class Progress:
    """Where a run is: the counters a checkpoint keeps, and what this process has done."""

    env_step: int
    """Env steps so far, warm-up included."""
    gradient_steps: int = 0
    epoch: int = 0
    trainer_env_step: int = 0
    """Env steps since the warm-up (Tianshou's trainer and logger count these)."""
    trainer_update_step: int = 0
    """Tianshou's update steps (training steps: one collect and its updates)."""
    learning_seconds: float = 0.0
    learned_here: int = 0
    updates_here: int = 0

    @classmethod
    def from_run_state(cls, run: dict[str, Any]) -> Progress:
        return cls(env_step=run["env_step"], gradient_steps=run["gradient_step"], epoch=run["epoch"],
                   trainer_env_step=run["trainer_env_step"], trainer_update_step=run["trainer_update_step"])


def restore_collectors(
    run: dict[str, Any], *, buffer: ReplayBuffer, train_collector: Collector, test_collector: Collector
) -> None:
    """Put environments, buffer sampler and random generators back as the checkpoint left them."""
    end_interrupted_episodes(buffer, run["train_envs"])
    resume.request_env_replay(train_collector.env, run["train_envs"])
    resume.request_env_replay(test_collector.env, run["test_envs"])
    train_collector.reset(reset_buffer=False)
    test_collector.reset()
    resume.restore_global_rng(run["rng"])
    resume.restore_buffer_rng(buffer, run["buffer_rng"])


def train_epoch(
    progress: Progress, *, epoch_end: int, algorithm: OffPolicyAlgorithm, collector: Collector,
    schedule: Schedule, logger: ResumableLogger, training_fn: Callable[[int, int], None] | None,
    show_progress: bool,
) -> None:
    """One epoch of Tianshou's trainer up to env step ``epoch_end``; advances ``progress``."""
    logger.counters = (progress.epoch, progress.trainer_env_step, progress.trainer_update_step)
    trainer = GradientCountingTrainer(algorithm=algorithm, params=OffPolicyTrainerParams(
        training_collector=collector, test_collector=None, max_epochs=progress.epoch + 1,
        epoch_num_steps=epoch_end - progress.env_step,
        collection_step_num_env_steps=schedule.env_steps_per_collect,
        update_step_num_gradient_steps_per_sample=schedule.updates_per_env_step,
        batch_size=schedule.batch_size, logger=logger, resume_from_log=True,
        training_fn=training_fn, show_progress=show_progress, verbose=False,
    ))
    before, tic = collector.collect_step, time.perf_counter()
    info = trainer.run(reset_collectors=False)
    progress.learning_seconds += time.perf_counter() - tic
    steps = collector.collect_step - before
    progress.env_step += steps
    progress.learned_here += steps
    progress.trainer_env_step += steps
    progress.gradient_steps += trainer.gradient_steps
    progress.updates_here += trainer.gradient_steps
    progress.trainer_update_step = info.update_step
    progress.epoch += 1


def checkpoint_epoch(
    progress: Progress, *, path: Path, seed: int, algorithm: OffPolicyAlgorithm, buffer: ReplayBuffer,
    train_envs: BaseVectorEnv, test_envs: BaseVectorEnv, config: dict[str, Any] | None = None,
) -> None:
    """The replay file first, then the checkpoint naming it, then the older replay files go."""
    replay_file = resume.write_replay(buffer, path.parent, epoch=progress.epoch)
    run = resume.run_state(
        epoch=progress.epoch, env_step=progress.env_step, gradient_step=progress.gradient_steps,
        trainer_env_step=progress.trainer_env_step, trainer_update_step=progress.trainer_update_step,
        buffer=buffer, train_envs=train_envs, test_envs=test_envs, replay_file=replay_file,
    )
    save_checkpoint(algorithm, path, epoch=progress.epoch, env_step=progress.env_step,
                    gradient_step=progress.gradient_steps, seed=seed, run=run,
                    **({"config": config} if config else {}))
    resume.remove_leftovers(path.parent, keep=replay_file)


def run_config(command: str, args: argparse.Namespace) -> dict[str, Any]:
    """What a checkpoint records of the run that wrote it: the command (see
    :mod:`tianshou_qmle.experiment.commands`) and its parsed flags, in plain types, so that
    ``tianshou-qmle eval`` and ``watch`` can rebuild the same algorithm."""
    return {"command": command, "args": {k: plain_value(v) for k, v in vars(args).items()}}


def plain_value(value: Any) -> Any:
    """``value`` as types ``torch.load(weights_only=True)`` reads back (str for anything else)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return type(value)(plain_value(v) for v in value)
    return str(value)


def train_and_evaluate(
    *,
    args: argparse.Namespace,
    algo_name: str,
    algorithm: OffPolicyAlgorithm,
    buffer: ReplayBuffer,
    train_envs: BaseVectorEnv,
    test_envs: BaseVectorEnv,
    schedule: Schedule,
    training_fn: Callable[[int, int], None] | None = None,
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Warm up (or resume), train epoch by epoch with Tianshou's OffPolicyTrainer, evaluate,
    checkpoint, and summarise.

    ``config`` (see :func:`run_config`) is stored in every checkpoint.

    ``training_fn(epoch, env_step)`` is Tianshou's hook before every collect step (e.g. a
    curriculum switch); ``env_step`` counts from the end of the warm-up.

    After every epoch: a greedy evaluation over ``--test-episodes`` (logged as ``test/...``) and a
    resumable checkpoint (the weights in ``checkpoint.pt``, the buffer in ``replay-EPOCH.h5``). The
    summary is printed as one line, written to ``--summary-json`` if given, and returned; it holds
    :data:`SUMMARY_KEYS`.
    """
    run_dir = Path(args.logdir) / args.task / algo_name / f"seed_{args.seed}"
    checkpoint_path = Path(args.checkpoint) if args.checkpoint else run_dir / "checkpoint.pt"
    from_checkpoint = resume_path(args, checkpoint_path)
    run = None
    if from_checkpoint is not None:
        run, buffer = load_resume_state(algorithm, buffer, from_checkpoint)
    resume.remove_leftovers(checkpoint_path.parent, keep=run["replay_file"] if run else None)

    train_collector: Collector[CollectStats] = Collector(
        algorithm, train_envs, buffer, exploration_noise=True
    )
    test_collector: Collector[CollectStats] = Collector(algorithm, test_envs)
    wandb_run = start_wandb(args, run_dir=run_dir, algo_name=algo_name) if args.logger == "wandb" else None
    writer = SummaryWriter(str(run_dir))
    writer.add_text("args", json.dumps(vars(args), default=str))
    logger = ResumableLogger(writer)

    start = time.perf_counter()
    if run is None:
        train_collector.reset()
        test_collector.reset()
        train_collector.collect(n_step=args.warmup, random=True)
        progress = Progress(env_step=args.warmup)
    else:
        restore_collectors(run, buffer=buffer, train_collector=train_collector, test_collector=test_collector)
        progress = Progress.from_run_state(run)
        print(f"[{algo_name}] resuming {from_checkpoint} at env step {progress.env_step} "
              f"(epoch {progress.epoch})")

    for epoch_end in epoch_ends(progress.env_step, args.total_steps, args.epoch_steps):
        train_epoch(progress, epoch_end=epoch_end, algorithm=algorithm, collector=train_collector,
                    schedule=schedule, logger=logger, training_fn=training_fn,
                    show_progress=not args.no_progress)
        returns = evaluate(algorithm, test_collector, args.test_episodes)
        write_test_data(logger, returns, progress.trainer_env_step)
        writer.flush()
        if not args.no_progress:
            print(f"Epoch #{progress.epoch}: env step {progress.env_step}, "
                  f"test return {returns.mean():.1f} ± {returns.std():.1f}")
        checkpoint_epoch(progress, path=checkpoint_path, seed=args.seed, algorithm=algorithm,
                         buffer=buffer, train_envs=train_envs, test_envs=test_envs, config=config)

    returns = evaluate(algorithm, test_collector, args.eval_episodes)
    summary = summarise(args, algo_name=algo_name, progress=progress, returns=returns,
                        wall=time.perf_counter() - start, checkpoint_path=checkpoint_path,
                        resumed_from=from_checkpoint)
    writer.close()
    if wandb_run is not None:
        wandb_run.summary.update({k: v for k, v in summary.items() if isinstance(v, int | float)})
        wandb_run.finish()
    train_envs.close()
    test_envs.close()
    return summary


def start_wandb(args: argparse.Namespace, *, run_dir: Path, algo_name: str) -> Any:
    """A W&B run that mirrors the run's TensorBoard logs (Tianshou's ``WandbLogger`` does the same
    through ``sync_tensorboard``); one id per run directory, so a resumed run continues it."""
    try:
        import wandb
    except ImportError as err:
        raise SystemExit("--logger wandb needs wandb: pip install wandb") from err
    run_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:8]
    run_id = f"{args.task}-{algo_name}-seed{args.seed}-{digest}"
    return wandb.init(project=args.wandb_project, name=f"{args.task}/{algo_name}/seed_{args.seed}",
                      id=run_id, resume="allow", dir=str(run_dir), sync_tensorboard=True,
                      config={k: plain_value(v) for k, v in vars(args).items()})


def summarise(
    args: argparse.Namespace, *, algo_name: str, progress: Progress, returns: np.ndarray, wall: float,
    checkpoint_path: Path, resumed_from: Path | None,
) -> dict[str, Any]:
    """The run's summary (:data:`SUMMARY_KEYS` and more): printed, written to ``--summary-json``."""
    learning_seconds = max(progress.learning_seconds, 1e-9)
    summary: dict[str, Any] = {
        "task": args.task,
        "algorithm": algo_name,
        "seed": args.seed,
        "env_steps": int(progress.env_step),
        "eval_return_mean": float(returns.mean()),
        "eval_return_std": float(returns.std()),
        "wall_seconds": round(wall, 2),
        "env_steps_per_second": round(progress.learned_here / learning_seconds, 2),
        "gradient_updates_per_second": round(progress.updates_here / learning_seconds, 2),
        "gradient_steps": int(progress.gradient_steps),
        "checkpoint": str(checkpoint_path),
        "resumed_from": str(resumed_from) if resumed_from else None,
    }
    print(
        f"[{algo_name}] {args.task} seed={args.seed} steps={progress.env_step} "
        f"eval_return={summary['eval_return_mean']:.1f}±{summary['eval_return_std']:.1f} "
        f"({args.eval_episodes} episodes) wall={wall:.0f}s "
        f"env_steps/s={summary['env_steps_per_second']} "
        f"updates/s={summary['gradient_updates_per_second']}"
    )
    if args.summary_json:
        Path(args.summary_json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.summary_json).write_text(json.dumps(summary, indent=2))
    return summary


@dataclass(kw_only=True)
class RunSetup:
    """Everything one run trains, built from its flags by a command's ``setup``."""

    algo_name: str
    """The run's name in the log directory and the summary (``qmle``, ``miq``, ``savo-L5``, …)."""
    algorithm: OffPolicyAlgorithm
    buffer: ReplayBuffer
    schedule: Schedule
    train_envs: BaseVectorEnv
    test_envs: BaseVectorEnv
    training_fn: Callable[[int, int], None] | None = None
    summary_extra: dict[str, Any] = field(default_factory=dict)
    """Fields the command adds to the summary (e.g. the discretisation of a task)."""

    def close(self) -> None:
        self.train_envs.close()
        self.test_envs.close()


def run_setup(args: argparse.Namespace, setup: RunSetup, *, command: str) -> dict[str, Any]:
    """Train and evaluate ``setup`` (see :func:`train_and_evaluate`), recording ``command`` and
    the flags in its checkpoints; returns the summary with the command's extra fields."""
    summary = train_and_evaluate(
        args=args, algo_name=setup.algo_name, algorithm=setup.algorithm, buffer=setup.buffer,
        train_envs=setup.train_envs, test_envs=setup.test_envs, schedule=setup.schedule,
        training_fn=setup.training_fn, config=run_config(command, args),
    )
    if setup.summary_extra:
        summary.update(setup.summary_extra)
        if args.summary_json:
            Path(args.summary_json).write_text(json.dumps(summary, indent=2))
    return summary


def plain_replay_setup(
    *,
    args: argparse.Namespace,
    algo_name: str,
    build_algorithm: Callable[[], OffPolicyAlgorithm],
    train_envs: BaseVectorEnv,
    test_envs: BaseVectorEnv,
) -> RunSetup:
    """An algorithm whose flags define ``buffer_size``, ``env_steps_per_collect``,
    ``updates_per_step`` and ``batch_size``, with an O(1)-``hasnull`` uniform buffer.

    A ``ValueError``/``TypeError`` from ``build_algorithm`` (bad flags) closes the envs and exits
    with its message instead of a traceback.
    """
    try:
        algorithm = build_algorithm()
    except (ValueError, TypeError) as err:
        train_envs.close()
        test_envs.close()
        raise SystemExit(str(err)) from err
    return RunSetup(
        algo_name=algo_name, algorithm=algorithm,
        buffer=FastNullCheckVectorReplayBuffer(args.buffer_size, args.num_train_envs, random_seed=args.seed),
        schedule=Schedule(
            env_steps_per_collect=args.env_steps_per_collect,
            updates_per_env_step=args.updates_per_step,
            batch_size=args.batch_size,
        ),
        train_envs=train_envs, test_envs=test_envs,
    )
