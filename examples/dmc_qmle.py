#!/usr/bin/env python
"""Train QMLE on a DeepMind Control task with Tianshou's own Collector, trainer and logger.

Defaults follow Table 1 of Tavakoli et al. (arXiv 2410.06317): m_target 100, m_greedy 1000,
ratios 0.9/0.01/0.09 (uniform/delta/factored categorical), Adam 5e-4, one update per 10 env
steps, batch 256, 1000 random warm-up steps, prioritized replay (α 0.6, β 0.2), ε 0.1, γ 0.99,
hard target copies every 2000 env steps, partial-episode bootstrapping on DMC's 1000-step limit.

    python examples/dmc_qmle.py                       # cartpole-swingup, 50k env steps
    python examples/dmc_qmle.py --task walker-walk --total-steps 200000
    tensorboard --logdir log
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from tianshou.algorithm.optim import AdamOptimizerFactory
from tianshou.data import Collector
from tianshou.trainer import OffPolicyTrainerParams
from tianshou.utils import TensorboardLogger
from torch.utils.tensorboard import SummaryWriter

from tianshou_qmle import QMLE, QMLEPolicy, build_qmle_network, make_replay_buffer
from tianshou_qmle.env import make_dmc_vector_envs
from tianshou_qmle.utils import evaluate, save_checkpoint, seed_everything


def parse_ratios(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--ratios expects comma-separated floats, got {text!r}") from err


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show defaults and keep the description's line breaks."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    run = p.add_argument_group("run")
    run.add_argument("--task", default="cartpole-swingup", help="DMC task as domain-task")
    run.add_argument("--total-steps", type=int, default=50_000,
                     help="environment steps in total, warm-up included")
    run.add_argument("--seed", type=int, default=0, help="seeds envs, networks, sampling, ε")
    run.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    run.add_argument("--threads", type=int, default=1,
                     help="torch intra-op threads (1 is fastest when other work shares the CPU)")
    run.add_argument("--logdir", default="log", help="TensorBoard and checkpoint root")
    run.add_argument("--checkpoint", default=None,
                     help="checkpoint path; None means LOGDIR/TASK/qmle/seed_SEED/checkpoint.pt")
    run.add_argument("--summary-json", default=None, help="also write the final summary here")
    run.add_argument("--epoch-steps", type=int, default=10_000,
                     help="about this many env steps between evaluations, test logs and checkpoints")
    run.add_argument("--test-episodes", type=int, default=5,
                     help="evaluation episodes at the end of each epoch")
    run.add_argument("--eval-episodes", type=int, default=10,
                     help="deterministic (ε = 0) evaluation episodes at the end")
    run.add_argument("--num-train-envs", type=int, default=1, help="parallel training envs")
    run.add_argument("--num-test-envs", type=int, default=5, help="parallel evaluation envs")
    run.add_argument("--vector-env", choices=["dummy", "subproc"], default="dummy",
                     help="Tianshou vector env class for both training and test envs")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    alg = p.add_argument_group("QMLE (Table 1 defaults)")
    alg.add_argument("--m-target", type=int, default=100, help="candidates per TD target")
    alg.add_argument("--m-greedy", type=int, default=1000, help="candidates per action")
    alg.add_argument("--ratios", type=parse_ratios, default=(0.9, 0.01, 0.09),
                     help="ρ0 uniform, ρ1 delta, ρ2 factored categorical; sum to 1")
    alg.add_argument("--delta-std", type=float, default=0.05,
                     help="σ of the delta predictor's perturbation samples")
    alg.add_argument("--num-bins", type=int, default=3,
                     help="bins per dimension of the categorical predictor (3 = bang-off-bang)")
    alg.add_argument("--hidden", type=int, default=128, help="stream width (joint block is 2×)")
    alg.add_argument("--lr", type=float, default=5e-4, help="Adam step size for Q and predictors")
    alg.add_argument("--gamma", type=float, default=0.99, help="discount factor")
    alg.add_argument("--n-step", type=int, default=1, help="n-step return horizon (1 = paper)")
    alg.add_argument("--batch-size", type=int, default=256, help="replay batch size")
    alg.add_argument("--update-every", type=int, default=10,
                     help="env steps per gradient update (the replay period K)")
    alg.add_argument("--target-update-env-steps", type=int, default=2000,
                     help="N⁻: env steps between hard target copies")
    alg.add_argument("--warmup", type=int, default=1000, help="random steps before learning")
    alg.add_argument("--buffer-size", type=int, default=1_000_000, help="replay capacity")
    alg.add_argument("--uniform-replay", action="store_true",
                     help="uniform replay (Algorithm 1) instead of prioritized (App. B)")
    alg.add_argument("--alpha", type=float, default=0.6, help="priority exponent")
    alg.add_argument("--beta", type=float, default=0.2, help="importance-sampling exponent")
    alg.add_argument("--eps", type=float, default=0.1, help="ε of ε-greedy exploration")
    alg.add_argument("--scoring-dtype", choices=["float32", "bfloat16"], default="float32",
                     help="candidate scoring precision; bfloat16 re-scores winners in float32")
    return p


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    if args.total_steps <= args.warmup:
        raise SystemExit(f"--total-steps ({args.total_steps}) must exceed --warmup ({args.warmup})")
    if args.target_update_env_steps % args.update_every:
        raise SystemExit("--target-update-env-steps must be a multiple of --update-every")
    torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    run_dir = Path(args.logdir) / args.task / "qmle" / f"seed_{args.seed}"
    checkpoint_path = Path(args.checkpoint) if args.checkpoint else run_dir / "checkpoint.pt"

    env, train_envs, test_envs = make_dmc_vector_envs(
        args.task, seed=args.seed, num_train_envs=args.num_train_envs,
        num_test_envs=args.num_test_envs, kind=args.vector_env,
    )
    obs_dim = int(np.prod(env.observation_space.shape))
    act_dim = int(np.prod(env.action_space.shape))
    model = build_qmle_network(
        obs_dim=obs_dim, act_dim=act_dim, hidden_width=args.hidden, delta_std=args.delta_std,
        num_bins=args.num_bins, device=args.device,
    )
    policy = QMLEPolicy(
        model=model, action_space=env.action_space, observation_space=env.observation_space,
        m_greedy=args.m_greedy, proposal_ratios=args.ratios, eps_training=args.eps,
        scoring_dtype=getattr(torch, args.scoring_dtype),
    )
    algorithm = QMLE(
        policy=policy, optim=AdamOptimizerFactory(lr=args.lr), gamma=args.gamma,
        n_step_return_horizon=args.n_step, m_target=args.m_target,
        target_update_freq=args.target_update_env_steps // args.update_every,
    )
    buffer = make_replay_buffer(
        size=args.buffer_size, num_envs=args.num_train_envs, prioritized=not args.uniform_replay,
        alpha=args.alpha, beta=args.beta, seed=args.seed,
    )
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
    # equal epochs that add up to the requested budget (up to a whole collection step)
    epoch_num_steps = math.ceil(learn_steps / epochs)

    def save_each_epoch(epoch: int, env_step: int, gradient_step: int) -> str:
        return str(save_checkpoint(algorithm, checkpoint_path, epoch=epoch, env_step=env_step,
                                   gradient_step=gradient_step, seed=args.seed))

    trainer = algorithm.create_trainer(
        OffPolicyTrainerParams(
            training_collector=train_collector,
            test_collector=test_collector,
            max_epochs=epochs,
            epoch_num_steps=epoch_num_steps,
            collection_step_num_env_steps=args.update_every,
            update_step_num_gradient_steps_per_sample=1.0 / args.update_every,
            batch_size=args.batch_size,
            test_step_num_episodes=args.test_episodes,
            logger=logger,
            save_checkpoint_fn=save_each_epoch,
            show_progress=not args.no_progress,
            verbose=not args.no_progress,
        )
    )
    info = trainer.run(reset_collectors=False)
    train_seconds = time.perf_counter() - start
    env_steps = info.train_step  # the collector's count, warm-up included
    learned_steps = env_steps - args.warmup
    save_checkpoint(algorithm, checkpoint_path, env_step=env_steps,
                    gradient_step=info.update_step, seed=args.seed)

    returns = evaluate(algorithm, test_collector, args.eval_episodes)
    wall = time.perf_counter() - start
    learning_seconds = max(info.timing.total_time - info.timing.test_time, 1e-9)
    summary = {
        "task": args.task,
        "algorithm": "qmle",
        "seed": args.seed,
        "env_steps": int(env_steps),
        "eval_return_mean": float(returns.mean()),
        "eval_return_std": float(returns.std()),
        "wall_seconds": round(wall, 2),
        "env_steps_per_second": round(learned_steps / learning_seconds, 2),
        "gradient_updates_per_second": round(info.update_step / learning_seconds, 2),
        "checkpoint": str(checkpoint_path),
        "train_seconds": round(train_seconds, 2),
    }
    print(
        f"[qmle] {args.task} seed={args.seed} steps={env_steps} "
        f"eval_return={summary['eval_return_mean']:.1f}±{summary['eval_return_std']:.1f} "
        f"({args.eval_episodes} episodes) wall={wall:.0f}s "
        f"env_steps/s={summary['env_steps_per_second']} updates/s={summary['gradient_updates_per_second']}"
    )
    if args.summary_json:
        Path(args.summary_json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.summary_json).write_text(json.dumps(summary, indent=2))
    writer.close()
    train_envs.close()
    test_envs.close()
    return summary


if __name__ == "__main__":
    main()
