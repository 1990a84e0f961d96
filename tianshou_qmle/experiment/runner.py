"""The run harness shared by the examples: common flags, warm-up, training, checkpoints, evaluation
and the one-line / JSON summary. Each example builds its own algorithm and buffer and hands them here.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tianshou.algorithm.algorithm_base import OffPolicyAlgorithm
from tianshou.data import Collector, ReplayBuffer
from tianshou.env import BaseVectorEnv
from tianshou.trainer import OffPolicyTrainerParams
from tianshou.utils import TensorboardLogger
from torch.utils.tensorboard import SummaryWriter

from tianshou_qmle.data.buffer import FastNullCheckVectorReplayBuffer
from tianshou_qmle.utils import evaluate, save_checkpoint, seed_everything

SUMMARY_KEYS = (
    "task", "algorithm", "seed", "env_steps", "eval_return_mean", "eval_return_std", "wall_seconds",
    "env_steps_per_second", "gradient_updates_per_second",
)
"""The fields every example's ``--summary-json`` holds (more may follow)."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show defaults and keep the description's line breaks."""


def add_run_arguments(
    parser: argparse.ArgumentParser, *, task: str, total_steps: int, warmup: int = 1000
) -> None:
    """Flags every example shares: task, budget, seed, device, threads, logging and evaluation."""
    run = parser.add_argument_group("run")
    run.add_argument("--task", default=task, help="environment task")
    run.add_argument("--total-steps", type=int, default=total_steps,
                     help="env steps in total, warm-up included (rounded up to whole collect steps)")
    run.add_argument("--warmup", type=int, default=warmup, help="uniformly random steps before learning")
    run.add_argument("--seed", type=int, default=0, help="seeds envs, networks, sampling and exploration")
    run.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    run.add_argument("--threads", type=int, default=1,
                     help="torch intra-op threads (1 is fastest when other work shares the CPU)")
    run.add_argument("--logdir", default="log", help="TensorBoard and checkpoint root")
    run.add_argument("--checkpoint", default=None,
                     help="checkpoint path; None means LOGDIR/TASK/ALGO/seed_SEED/checkpoint.pt")
    run.add_argument("--summary-json", default=None, help="also write the final summary here")
    run.add_argument("--epoch-steps", type=int, default=10_000,
                     help="about this many env steps between evaluations, test logs and checkpoints")
    run.add_argument("--test-episodes", type=int, default=5, help="evaluation episodes after each epoch")
    run.add_argument("--eval-episodes", type=int, default=10, help="greedy evaluation episodes at the end")
    run.add_argument("--num-train-envs", type=int, default=1, help="parallel training envs")
    run.add_argument("--num-test-envs", type=int, default=5, help="parallel evaluation envs")
    run.add_argument("--vector-env", choices=["dummy", "subproc"], default="dummy",
                     help="Tianshou vector env class for both training and test envs")
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
) -> dict[str, Any]:
    """Warm up, train with Tianshou's OffPolicyTrainer, checkpoint, evaluate and summarise.

    ``training_fn(epoch, env_step)`` is Tianshou's hook before every collect step (e.g. a
    curriculum switch).

    Checkpoints (``algorithm.state_dict()``, written atomically) go out after every epoch and at
    the end. The summary is printed as one line, written to ``--summary-json`` if given, and
    returned; it holds :data:`SUMMARY_KEYS`.
    """
    run_dir = Path(args.logdir) / args.task / algo_name / f"seed_{args.seed}"
    checkpoint_path = Path(args.checkpoint) if args.checkpoint else run_dir / "checkpoint.pt"
    train_collector = Collector(algorithm, train_envs, buffer, exploration_noise=True)
    test_collector = Collector(algorithm, test_envs)
    train_collector.reset()
    test_collector.reset()

    writer = SummaryWriter(str(run_dir))
    writer.add_text("args", json.dumps(vars(args), default=str))
    # save_interval=1: Tianshou calls save_checkpoint_fn only when the logger has one
    logger = TensorboardLogger(writer, training_interval=1000, update_interval=100, save_interval=1)

    start = time.perf_counter()
    train_collector.collect(n_step=args.warmup, random=True)
    learn_steps = args.total_steps - args.warmup
    epochs = math.ceil(learn_steps / args.epoch_steps)

    def save_each_epoch(epoch: int, env_step: int, gradient_step: int) -> str:
        return str(save_checkpoint(algorithm, checkpoint_path, epoch=epoch, env_step=env_step,
                                   gradient_step=gradient_step, seed=args.seed))

    trainer = algorithm.create_trainer(
        OffPolicyTrainerParams(
            training_collector=train_collector,
            test_collector=test_collector,
            max_epochs=epochs,
            # equal epochs adding up to the budget (over by < 1 step per epoch, plus collect rounding)
            epoch_num_steps=math.ceil(learn_steps / epochs),
            collection_step_num_env_steps=schedule.env_steps_per_collect,
            update_step_num_gradient_steps_per_sample=schedule.updates_per_env_step,
            batch_size=schedule.batch_size,
            test_step_num_episodes=args.test_episodes,
            logger=logger,
            save_checkpoint_fn=save_each_epoch,
            training_fn=training_fn,
            show_progress=not args.no_progress,
            verbose=not args.no_progress,
        )
    )
    info = trainer.run(reset_collectors=False)
    train_seconds = time.perf_counter() - start
    env_steps = info.train_step  # the collector's count, warm-up included
    save_checkpoint(algorithm, checkpoint_path, env_step=env_steps,
                    gradient_step=info.update_step, seed=args.seed)

    returns = evaluate(algorithm, test_collector, args.eval_episodes)
    wall = time.perf_counter() - start
    learning_seconds = max(info.timing.total_time - info.timing.test_time, 1e-9)
    summary: dict[str, Any] = {
        "task": args.task,
        "algorithm": algo_name,
        "seed": args.seed,
        "env_steps": int(env_steps),
        "eval_return_mean": float(returns.mean()),
        "eval_return_std": float(returns.std()),
        "wall_seconds": round(wall, 2),
        "env_steps_per_second": round((env_steps - args.warmup) / learning_seconds, 2),
        "gradient_updates_per_second": round(info.update_step / learning_seconds, 2),
        "checkpoint": str(checkpoint_path),
        "train_seconds": round(train_seconds, 2),
    }
    print(
        f"[{algo_name}] {args.task} seed={args.seed} steps={env_steps} "
        f"eval_return={summary['eval_return_mean']:.1f}±{summary['eval_return_std']:.1f} "
        f"({args.eval_episodes} episodes) wall={wall:.0f}s "
        f"env_steps/s={summary['env_steps_per_second']} "
        f"updates/s={summary['gradient_updates_per_second']}"
    )
    if args.summary_json:
        Path(args.summary_json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.summary_json).write_text(json.dumps(summary, indent=2))
    writer.close()
    train_envs.close()
    test_envs.close()
    return summary


def train_with_plain_replay(
    *,
    args: argparse.Namespace,
    algo_name: str,
    build_algorithm: Callable[[], OffPolicyAlgorithm],
    train_envs: BaseVectorEnv,
    test_envs: BaseVectorEnv,
) -> dict[str, Any]:
    """Build an algorithm whose flags define ``buffer_size``, ``env_steps_per_collect``,
    ``updates_per_step`` and ``batch_size``, and train it on an O(1)-``hasnull`` uniform buffer.

    A ``ValueError``/``TypeError`` from ``build_algorithm`` (bad flags) closes the envs and exits
    with its message instead of a traceback.
    """
    try:
        algorithm = build_algorithm()
    except (ValueError, TypeError) as err:
        train_envs.close()
        test_envs.close()
        raise SystemExit(str(err)) from err
    buffer = FastNullCheckVectorReplayBuffer(args.buffer_size, args.num_train_envs, random_seed=args.seed)
    return train_and_evaluate(
        args=args, algo_name=algo_name, algorithm=algorithm, buffer=buffer,
        train_envs=train_envs, test_envs=test_envs,
        schedule=Schedule(
            env_steps_per_collect=args.env_steps_per_collect,
            updates_per_env_step=args.updates_per_step,
            batch_size=args.batch_size,
        ),
    )
