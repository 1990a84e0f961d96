#!/usr/bin/env python
"""Training throughput of QMLE against Tianshou's TD3, in one process, on the same DMC task.

Both agents get the same environment wrappers (tianshou_qmle.env.make_dmc_vector_envs), seed,
torch threads, warm-up and a replay buffer with the same O(1) ``hasnull`` fix, and are timed over
the same number of learning env steps through Tianshou's OffPolicyTrainer (no evaluation inside
the timed region).

* QMLE: Table 1 settings (m_target 100, m_greedy 1000, batch 256, one update per 10 env steps,
  prioritized replay).
* TD3: Tianshou's examples/mujoco/mujoco_td3.py settings ([256, 256] MLPs, lr 3e-4, batch 256,
  τ 0.005, exploration 0.1, policy noise 0.2, clip 0.5, actor every 2 updates, one update per env
  step), with its warm-up shortened to ours.

It also times single operations: one QMLE update, one QMLE greedy action (1 state × m_greedy),
one TD3 update. Writes a JSON file and a bar chart; prints the ratios.

    python benchmarks/speed_qmle_vs_td3.py --task walker-walk --steps 3000
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import resource
import subprocess
import time
from pathlib import Path

import numpy as np
import tianshou
import torch
from tianshou.algorithm import TD3
from tianshou.algorithm.algorithm_base import Algorithm
from tianshou.algorithm.modelfree.ddpg import ContinuousDeterministicPolicy
from tianshou.algorithm.optim import AdamOptimizerFactory
from tianshou.data import Batch, Collector, ReplayBuffer
from tianshou.exploration import GaussianNoise
from tianshou.trainer import OffPolicyTrainerParams
from tianshou.utils.net.common import Net
from tianshou.utils.net.continuous import ContinuousActorDeterministic, ContinuousCritic
from tianshou.utils.torch_utils import policy_within_training_step

import tianshou_qmle
from tianshou_qmle import (
    QMLE,
    FastNullCheckVectorReplayBuffer,
    QMLEPolicy,
    build_qmle_network,
    make_replay_buffer,
)
from tianshou_qmle.env import make_dmc_vector_envs
from tianshou_qmle.utils import seed_everything


def build_qmle(
    env, seed: int, args, scoring_dtype: torch.dtype | None = None
) -> tuple[Algorithm, ReplayBuffer, int, float]:
    model = build_qmle_network(
        obs_dim=env.observation_space.shape[0], act_dim=env.action_space.shape[0]
    )
    policy = QMLEPolicy(
        model=model, action_space=env.action_space, observation_space=env.observation_space,
        m_greedy=args.m_greedy, scoring_dtype=scoring_dtype,
    )
    algo = QMLE(policy=policy, optim=AdamOptimizerFactory(lr=5e-4), m_target=args.m_target,
                target_update_freq=200)
    buffer = make_replay_buffer(size=1_000_000, num_envs=1, prioritized=True, seed=seed)
    return algo, buffer, 10, 0.1


def build_td3(env, seed: int, args) -> tuple[Algorithm, ReplayBuffer, int, float]:
    obs_shape, act_shape = env.observation_space.shape, env.action_space.shape
    max_action = float(env.action_space.high[0])
    actor = ContinuousActorDeterministic(
        preprocess_net=Net(state_shape=obs_shape, hidden_sizes=[256, 256]),
        action_shape=act_shape, max_action=max_action,
    )
    critics = [
        ContinuousCritic(preprocess_net=Net(state_shape=obs_shape, action_shape=act_shape,
                                            hidden_sizes=[256, 256], concat=True))
        for _ in range(2)
    ]
    policy = ContinuousDeterministicPolicy(
        actor=actor, exploration_noise=GaussianNoise(sigma=0.1 * max_action),
        action_space=env.action_space,
    )
    algo = TD3(
        policy=policy, policy_optim=AdamOptimizerFactory(lr=3e-4),
        critic=critics[0], critic_optim=AdamOptimizerFactory(lr=3e-4),
        critic2=critics[1], critic2_optim=AdamOptimizerFactory(lr=3e-4),
        tau=0.005, gamma=0.99, policy_noise=0.2 * max_action, noise_clip=0.5 * max_action,
        update_actor_freq=2,
    )
    buffer = FastNullCheckVectorReplayBuffer(1_000_000, 1, random_seed=seed)
    return algo, buffer, 1, 1.0


BUILDERS = {
    "qmle": build_qmle,
    # the opt-in lever: candidates scored under bf16 autocast, winners re-scored in float32
    "qmle_bf16": functools.partial(build_qmle, scoring_dtype=torch.bfloat16),
    "td3": build_td3,
}


def time_call(fn, repeats: int) -> float:
    """Median milliseconds of ``fn()`` over ``repeats`` calls after two warm-up calls."""
    fn()
    fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(samples))


def run_one(name: str, args, seed: int) -> dict:
    seed_everything(seed)
    env, train_envs, _ = make_dmc_vector_envs(args.task, seed=seed, num_train_envs=1, num_test_envs=1)
    algo, buffer, steps_per_collect, updates_per_step = BUILDERS[name](env, seed, args)
    collector = Collector(algo, train_envs, buffer, exploration_noise=True)
    collector.reset()
    collector.collect(n_step=args.warmup, random=True)
    trainer = algo.create_trainer(
        OffPolicyTrainerParams(
            training_collector=collector, test_collector=None, max_epochs=1,
            epoch_num_steps=args.steps, collection_step_num_env_steps=steps_per_collect,
            update_step_num_gradient_steps_per_sample=updates_per_step, batch_size=256,
            show_progress=False, verbose=False,
        )
    )
    t0 = time.perf_counter()
    info = trainer.run(reset_collectors=False)
    seconds = time.perf_counter() - t0
    learned = info.train_step - args.warmup
    with policy_within_training_step(algo.policy):
        update_ms = time_call(lambda: algo.update(buffer, 256), args.repeats)
    obs = Batch(obs=train_envs.reset()[0], info={})
    with torch.inference_mode():
        act_ms = time_call(lambda: algo.policy(obs), args.repeats)
    train_envs.close()
    return {
        "algorithm": name,
        "task": args.task,
        "seed": seed,
        "learning_env_steps": int(learned),
        "gradient_updates": int(info.update_step),
        "seconds": round(seconds, 3),
        "env_steps_per_second": round(learned / seconds, 2),
        "gradient_updates_per_second": round(info.update_step / seconds, 2),
        "update_ms": round(update_ms, 3),
        "act_ms": round(act_ms, 3),
        "peak_rss_mb_so_far": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> dict:
    return {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "commit": git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "tianshou": tianshou.__version__,
        "tianshou_qmle": tianshou_qmle.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({r["algorithm"] for r in results})
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, key, label in ((axes[0], "env_steps_per_second", "env steps / s"),
                           (axes[1], "gradient_updates_per_second", "gradient updates / s")):
        means = [np.mean([r[key] for r in results if r["algorithm"] == n]) for n in names]
        ax.bar(names, means, color=["tab:blue", "tab:cyan", "tab:orange"][: len(names)])
        ax.set_ylabel(label)
        for i, v in enumerate(means):
            ax.text(i, v, f"{v:.1f}", ha="center", va="bottom")
    fig.suptitle(f"{results[0]['task']}, 1 torch thread, CPU")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="cartpole-swingup", help="DMC task (domain-task)")
    p.add_argument("--steps", type=int, default=3000, help="timed learning env steps per agent")
    p.add_argument("--warmup", type=int, default=1000, help="random steps before timing")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds, each runs both agents")
    p.add_argument("--algorithms", nargs="+", default=["qmle", "td3"], choices=sorted(BUILDERS))
    p.add_argument("--m-target", type=int, default=100, help="QMLE target candidates (Table 1)")
    p.add_argument("--m-greedy", type=int, default=1000, help="QMLE greedy candidates (Table 1)")
    p.add_argument("--repeats", type=int, default=20, help="repeats of the single-call timings")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--out", default="benchmarks/results/speed", help="output directory")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    results = [run_one(name, args, seed) for seed in args.seeds for name in args.algorithms]
    ratios = {}
    if "td3" in args.algorithms:
        def mean(name, key):
            return float(np.mean([r[key] for r in results if r["algorithm"] == name]))

        for name in [a for a in args.algorithms if a.startswith("qmle")]:
            ratios[f"env_steps_per_second_{name}_over_td3"] = round(
                mean(name, "env_steps_per_second") / mean("td3", "env_steps_per_second"), 3)
            ratios[f"update_ms_{name}_over_td3"] = round(
                mean(name, "update_ms") / mean("td3", "update_ms"), 3)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"args": vars(args), "machine": machine(), "results": results, "ratios": ratios,
              "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    json_path = out / f"speed_{args.task}.json"
    json_path.write_text(json.dumps(report, indent=2))
    plot(results, out / f"speed_{args.task}.png")
    for r in results:
        print(f"{r['algorithm']:>5} seed={r['seed']} env_steps/s={r['env_steps_per_second']:7.2f} "
              f"updates/s={r['gradient_updates_per_second']:7.2f} update={r['update_ms']:.2f}ms "
              f"act={r['act_ms']:.2f}ms")
    for k, v in ratios.items():
        print(f"{k} = {v}")
    print(f"wrote {json_path}")
    return report


if __name__ == "__main__":
    main()
