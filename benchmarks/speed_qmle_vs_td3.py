#!/usr/bin/env python
"""QMLE at the speed of the hardware: training throughput against Tianshou's TD3, the cost of
QMLE's update and greedy action, candidate-evaluation throughput against a matrix-multiply peak
measured on the spot, and memory over a long run, all in one process on the same DMC task.

Both agents get the same environment wrappers (tianshou_qmle.env.make_dmc_vector_envs), seed,
torch threads, warm-up and a replay buffer with the same O(1) ``hasnull`` fix, and are timed over
the same number of learning env steps through Tianshou's OffPolicyTrainer (no evaluation inside
the timed region). Every timing is taken as CPU time of this process (``time.process_time``; the
environments run in-process) and as wall time; ratios use CPU time, which a busy machine distorts
far less than wall time.

* QMLE: Table 1 settings (m_target 100, m_greedy 1000, batch 256, one update per 10 env steps,
  prioritized replay). Variants: ``qmle`` (float32), ``qmle_bf16`` (candidates scored in bf16,
  winners re-scored in float32), ``*_compiled`` (``torch.compile``-d scoring), ``*_reference``
  (the layer-by-layer scoring of before the speed work, bf16 under autocast, for before/after).
* TD3: Tianshou's examples/mujoco/mujoco_td3.py settings ([256, 256] MLPs, lr 3e-4, batch 256,
  τ 0.005, exploration 0.1, policy noise 0.2, clip 0.5, actor every 2 updates, one update per env
  step), with its warm-up shortened to ours.

Sections (JSON keys): ``results`` (per agent: env steps/s, updates/s, one update, one action),
``peak`` (GEMM GFLOP/s per dtype), ``kernels`` (scoring batch × m_target and 1 × m_greedy
candidates per scoring variant: GFLOP/s from the layer shapes, % of peak, agreement with float32),
``memory`` (``--memory-updates``: RSS every ``--memory-every`` updates, MB growth per update),
``ratios`` and ``goals``. Writes ``speed_<task>.json`` and ``speed_<task>.png``; prints the ratios.

    python benchmarks/speed_qmle_vs_td3.py --task walker-walk --steps 3000 --memory-updates 2000 \\
        --algorithms qmle qmle_bf16 qmle_compiled qmle_bf16_compiled qmle_reference td3
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
    ActionInCritic,
    FastNullCheckVectorReplayBuffer,
    QMLEPolicy,
    build_qmle_network,
    make_replay_buffer,
)
from tianshou_qmle.env import make_dmc_env, make_dmc_vector_envs
from tianshou_qmle.search.proposals import draw_candidates, search_counts
from tianshou_qmle.utils import seed_everything

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: make `benchmarks` importable
from benchmarks.harness.meta import cpu_model

AUTHORS_WALKER_WALK = {"env_steps_per_second": 46.0, "gradient_updates_per_second": 4.6,
                       "memory_growth_mb_per_update": 1.4}
"""The authors' CleanRL-based QMLE on walker-walk, as quoted in the speed issue (issue 3)."""

GOALS = {"qmle_over_td3_env_steps": 1.0, "over_authors": 2.0, "percent_of_peak": 60.0,
         "flat_memory_mb_per_update": 0.01}
"""Issue 3's targets; memory counts as flat below 1% of the authors' 1.4 MB/update."""


# --- agents ------------------------------------------------------------------------------------


def reference_scoring(
    critic: ActionInCritic, features: torch.Tensor, actions: torch.Tensor, *, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """The scoring of before the speed work: whole-tensor layers, bf16 under autocast."""
    if dtype is None or dtype == features.dtype:
        return critic.q_layers(features, actions)
    with torch.autocast(device_type=features.device.type, dtype=dtype):
        return critic.q_layers(features, actions).float()


def build_qmle(
    env, seed: int, args, *, scoring_dtype: torch.dtype | None = None, compiled: bool = False,
    reference: bool = False,
) -> tuple[Algorithm, ReplayBuffer, int, float]:
    model = build_qmle_network(
        obs_dim=env.observation_space.shape[0], act_dim=env.action_space.shape[0]
    )
    model.critic.compile_scoring = compiled  # before QMLE(), so that the target copy inherits it
    policy = QMLEPolicy(
        model=model, action_space=env.action_space, observation_space=env.observation_space,
        m_greedy=args.m_greedy, scoring_dtype=scoring_dtype,
    )
    algo = QMLE(policy=policy, optim=AdamOptimizerFactory(lr=5e-4), m_target=args.m_target,
                target_update_freq=200)
    if reference:
        for critic in (algo.policy.model.critic, algo.target_model.critic):
            critic.score_candidates = functools.partial(reference_scoring, critic)  # type: ignore[method-assign]
    buffer = make_replay_buffer(size=args.buffer_size, num_envs=1, prioritized=True, seed=seed)
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
    buffer = FastNullCheckVectorReplayBuffer(args.buffer_size, 1, random_seed=seed)
    return algo, buffer, 1, 1.0


BUILDERS: dict[str, Callable[..., tuple[Algorithm, ReplayBuffer, int, float]]] = {
    "qmle": build_qmle,
    # candidates scored in bf16 (weights and activations), winners re-scored in float32
    "qmle_bf16": functools.partial(build_qmle, scoring_dtype=torch.bfloat16),
    # the opt-in lever: torch.compile of the scoring kernel
    "qmle_compiled": functools.partial(build_qmle, compiled=True),
    "qmle_bf16_compiled": functools.partial(build_qmle, scoring_dtype=torch.bfloat16, compiled=True),
    # before/after: the layer-by-layer scoring (bf16 under autocast) of before the speed work
    "qmle_reference": functools.partial(build_qmle, reference=True),
    "qmle_bf16_reference": functools.partial(build_qmle, scoring_dtype=torch.bfloat16, reference=True),
    "td3": build_td3,
}


# --- timing helpers ----------------------------------------------------------------------------


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_call(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Median (CPU ms, wall ms) of ``fn()`` over ``repeats`` calls after two warm-up calls."""
    fn()
    fn()
    cpu, wall = [], []
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpu.append((time.process_time() - c0) * 1e3)
        wall.append((time.perf_counter() - w0) * 1e3)
    return float(np.median(cpu)), float(np.median(wall))


def time_interleaved(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, tuple[float, float]]:
    """Median (CPU ms, wall ms) per function, calling them round-robin so that a change in the
    machine's load hits all of them alike. Every function must have been called once before."""
    for fn in fns.values():
        fn()
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            c0, w0 = time.process_time(), time.perf_counter()
            fn()
            samples[name].append(((time.process_time() - c0) * 1e3, (time.perf_counter() - w0) * 1e3))
    return {name: (statistics.median(s[0] for s in v), statistics.median(s[1] for s in v))
            for name, v in samples.items()}


def rss_mb() -> float:
    """Current resident set size of this process in MB (not the peak)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):  # no /proc: fall back to the peak
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- end to end --------------------------------------------------------------------------------


def make_agent(name: str, args, seed: int):
    seed_everything(seed)
    env, train_envs, _ = make_dmc_vector_envs(args.task, seed=seed, num_train_envs=1, num_test_envs=1)
    algo, buffer, steps_per_collect, updates_per_step = BUILDERS[name](env, seed, args)
    collector = Collector(algo, train_envs, buffer, exploration_noise=True)
    collector.reset()
    collector.collect(n_step=args.warmup, random=True)
    return algo, buffer, collector, train_envs, steps_per_collect, updates_per_step


def run_one(name: str, args, seed: int) -> dict:
    algo, buffer, collector, train_envs, steps_per_collect, updates_per_step = make_agent(name, args, seed)
    trainer = algo.create_trainer(
        OffPolicyTrainerParams(
            training_collector=collector, test_collector=None, max_epochs=1,
            epoch_num_steps=args.steps, collection_step_num_env_steps=steps_per_collect,
            update_step_num_gradient_steps_per_sample=updates_per_step, batch_size=args.batch_size,
            show_progress=False, verbose=False,
        )
    )
    c0, w0, k0 = time.process_time(), time.perf_counter(), children_cpu_seconds()
    info = trainer.run(reset_collectors=False)
    cpu, seconds = time.process_time() - c0, time.perf_counter() - w0
    child_cpu = children_cpu_seconds() - k0  # compile workers, if any
    learned = info.train_step - args.warmup
    with policy_within_training_step(algo.policy):
        update_cpu, update_wall = time_call(lambda: algo.update(buffer, args.batch_size), args.repeats)
    obs = Batch(obs=train_envs.reset()[0], info={})
    with torch.inference_mode():
        act_cpu, act_wall = time_call(lambda: algo.policy(obs), args.repeats * 5)
    train_envs.close()
    return {
        "algorithm": name,
        "task": args.task,
        "seed": seed,
        "learning_env_steps": int(learned),
        "gradient_updates": int(info.update_step),
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu, 3),
        "children_cpu_seconds": round(child_cpu, 3),
        "env_steps_per_second": round(learned / seconds, 2),
        "gradient_updates_per_second": round(info.update_step / seconds, 2),
        "env_steps_per_cpu_second": round(learned / cpu, 2),
        "gradient_updates_per_cpu_second": round(info.update_step / cpu, 2),
        "update_ms": round(update_wall, 3),
        "update_ms_cpu": round(update_cpu, 3),
        "act_ms": round(act_wall, 3),
        "act_ms_cpu": round(act_cpu, 3),
        "peak_rss_mb_so_far": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


# --- candidate evaluation against the matmul peak ----------------------------------------------


def scoring_flops(critic: ActionInCritic, batch: int, m: int) -> int:
    """Floating-point operations (2 per multiply-add) of the linear layers when scoring ``m``
    candidates for each of ``batch`` states: per candidate the action embedding, the action half
    of the joint block's first layer, its second layer and the head; per state the observation
    half of the first layer. Element-wise work (LayerNorm, ELU, residuals) is not counted."""
    w1 = critic.joint.fc1.weight
    per_candidate = (critic.act_embed.weight.numel() + w1[:, critic.obs_width:].numel()
                     + critic.joint.fc2.weight.numel() + critic.head.weight.numel())
    per_state = w1[:, : critic.obs_width].numel()
    return 2 * (batch * m * per_candidate + batch * per_state)


def gemm_peak(dtype: torch.dtype, shapes: list[tuple[int, int, int]], repeats: int) -> dict:
    """GFLOP/s of ``[M, K] @ [K, N]`` products in ``dtype`` (CPU time); the peak is the best shape.

    Each shape is timed with the right-hand matrix stored both ways, ``[K, N]`` and the transpose of
    a contiguous ``[N, K]`` (how ``nn.Linear`` keeps its weight), and the faster counts: without
    native bf16 (AVX2 only), ``[K, N]`` bf16 products take a slow path, 1.3 GFLOP/s against 6 for
    the other layout on a 2-core EPYC, and a peak taken from it alone was below what the scoring
    kernels reached."""
    per_shape = []
    for m, k, n in shapes:
        a = torch.randn(m, k).to(dtype)
        layouts = (torch.randn(k, n).to(dtype), torch.randn(n, k).to(dtype).t())
        cpu, wall = min((time_call(lambda a=a, b=b: torch.mm(a, b), repeats) for b in layouts),
                        key=lambda t: t[0])
        per_shape.append({"m": m, "k": k, "n": n, "cpu_ms": round(cpu, 4), "wall_ms": round(wall, 4),
                          "gflops_cpu": round(2 * m * k * n / cpu / 1e6, 2),
                          "gflops_wall": round(2 * m * k * n / wall / 1e6, 2)})
    best = max(per_shape, key=lambda r: r["gflops_cpu"])
    return {"dtype": str(dtype).removeprefix("torch."), "gflops_cpu": best["gflops_cpu"],
            "gflops_wall": max(r["gflops_wall"] for r in per_shape), "shapes": per_shape}


def env_observations(task: str, n: int, seed: int) -> tuple[np.ndarray, int]:
    """``n`` observations of ``task`` under a uniformly random policy, and its action dimension."""
    env = make_dmc_env(task, seed=seed)
    obs, _ = env.reset(seed=seed)
    rows = []
    for _ in range(n):
        rows.append(np.asarray(obs, dtype=np.float32).reshape(-1))
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()
    act_dim = int(env.action_space.shape[0])
    env.close()
    return np.stack(rows), act_dim


def kernel_benchmark(args, seed: int, peaks: dict[str, dict]) -> list[dict]:
    """Time scoring of ``batch × (m_target + 1)`` (the TD target search: fresh candidates and the
    prior) and ``1 × m_greedy`` (one greedy action) candidates per scoring variant, interleaved;
    first calls of compiled variants are timed separately as their compile time."""
    seed_everything(seed)
    obs_np, act_dim = env_observations(args.task, args.batch_size, seed)
    model = build_qmle_network(obs_dim=obs_np.shape[1], act_dim=act_dim)
    critic, predictors = model.critic, model.predictor_list()
    obs = torch.as_tensor(obs_np)
    ratios = (0.9, 0.01, 0.09)
    rows = []
    for shape, batch, m, with_prior in (("target", args.batch_size, args.m_target, True),
                                         ("greedy", 1, args.m_greedy, False)):
        with torch.no_grad():  # plain tensors, usable by the autograd variant too
            features = critic.features(obs[:batch])
            prior = torch.rand(batch, model.act_dim) * 2 - 1 if with_prior else None
            actions = draw_candidates(features, predictors, search_counts(m, ratios, with_prior=with_prior),
                                      model.codec, prior=prior)
            exact = critic.q_layers(features, actions)
        m = actions.shape[1]

        def score(dtype: torch.dtype | None, compiled: bool, fused: bool, autograd: bool = False,
                  features=features, actions=actions) -> Callable[[], torch.Tensor]:
            def run() -> torch.Tensor:
                if autograd:  # what inference_mode saves: the layers with autograd recording
                    with torch.enable_grad():
                        return critic.q_layers(features.clone().requires_grad_(), actions)
                with torch.inference_mode():
                    if not fused:
                        return reference_scoring(critic, features, actions, dtype=dtype)
                    critic.compile_scoring = compiled
                    try:
                        return critic.score_candidates(features, actions, dtype=dtype)
                    finally:
                        critic.compile_scoring = False
            return run

        variants = {
            "fp32_layers_autograd": (None, False, False, True),
            "fp32_layers": (None, False, False),
            "fp32_fused": (None, False, True),
            "bf16_layers_autocast": (torch.bfloat16, False, False),
            "bf16_fused": (torch.bfloat16, False, True),
        }
        if not args.no_compile:
            variants["fp32_fused_compiled"] = (None, True, True)
            variants["bf16_fused_compiled"] = (torch.bfloat16, True, True)
        fns = {name: score(*spec) for name, spec in variants.items()}
        first: dict[str, dict] = {}
        for name, fn in fns.items():  # first calls: compile time for the compiled variants
            c0, w0, k0 = time.process_time(), time.perf_counter(), children_cpu_seconds()
            q = fn().detach()
            first[name] = {"cpu_s": time.process_time() - c0, "wall_s": time.perf_counter() - w0,
                           "children_cpu_s": children_cpu_seconds() - k0, "q": q}
        timings = time_interleaved(fns, args.kernel_repeats)
        flops = scoring_flops(critic, batch, m)
        for name, spec in variants.items():
            cpu_ms, wall_ms = timings[name]
            q = first[name]["q"].float()
            dtype = "bf16" if spec[0] == torch.bfloat16 else "fp32"
            peak = peaks[dtype]["gflops_cpu"]
            gflops = flops / cpu_ms / 1e6
            row = {
                "shape": shape, "variant": name, "batch": batch, "m": m, "dtype": dtype,
                "compiled": spec[1], "fused": spec[2], "inference_mode": len(spec) < 4,
                "cpu_ms": round(cpu_ms, 4), "wall_ms": round(wall_ms, 4), "flops": flops,
                "gflops_cpu": round(gflops, 3), "gflops_wall": round(flops / wall_ms / 1e6, 3),
                "peak_gflops_cpu": peak, "percent_of_peak": round(100 * gflops / peak, 2),
                "max_abs_diff_vs_fp32_layers": float((q - exact).abs().max()),
                "same_winner_fraction": float((q.argmax(1) == exact.argmax(1)).float().mean()),
            }
            if spec[1]:
                row["first_call_cpu_s"] = round(first[name]["cpu_s"], 2)
                row["first_call_children_cpu_s"] = round(first[name]["children_cpu_s"], 2)
                row["first_call_wall_s"] = round(first[name]["wall_s"], 2)
            rows.append(row)
    return rows


# --- memory over a long run --------------------------------------------------------------------


def memory_run(args, seed: int) -> dict:
    """RSS every ``--memory-every`` updates over ``--memory-updates`` QMLE updates on a filled buffer;
    the growth per update is the slope of a line fitted after the first 10% of the updates."""
    name = args.memory_algorithm
    algo, buffer, _, train_envs, _, _ = make_agent(name, args, seed)
    train_envs.close()
    every = max(1, args.memory_every)
    updates, rss = [0], [rss_mb()]
    c0, w0 = time.process_time(), time.perf_counter()
    with policy_within_training_step(algo.policy):
        for i in range(1, args.memory_updates + 1):
            algo.update(buffer, args.batch_size)
            if i % every == 0 or i == args.memory_updates:
                updates.append(i)
                rss.append(rss_mb())
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    start = next(k for k, u in enumerate(updates) if u >= 0.1 * args.memory_updates)
    slope = float(np.polyfit(updates[start:], rss[start:], 1)[0]) if len(updates) - start >= 2 else 0.0
    return {
        "algorithm": name, "updates": args.memory_updates, "every": every, "buffer_transitions": len(buffer),
        "samples_update": updates, "samples_rss_mb": [round(r, 4) for r in rss],
        "growth_mb_per_update": round(slope, 5),
        "growth_mb_total": round(rss[-1] - rss[start], 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "update_ms_cpu_mean": round(cpu / args.memory_updates * 1e3, 3),
        "update_ms_wall_mean": round(wall / args.memory_updates * 1e3, 3),
        "authors_mb_per_update": AUTHORS_WALKER_WALK["memory_growth_mb_per_update"],
    }


# --- report ------------------------------------------------------------------------------------


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
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "commit": git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "tianshou": tianshou.__version__,
        "tianshou_qmle": tianshou_qmle.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def compute_ratios(results: list[dict], algorithms: list[str]) -> dict:
    def mean(name: str, key: str) -> float:
        return float(np.mean([r[key] for r in results if r["algorithm"] == name]))

    ratios: dict[str, float] = {}
    for name in [a for a in algorithms if a.startswith("qmle")]:
        if "td3" in algorithms:
            ratios[f"env_steps_per_second_{name}_over_td3"] = round(
                mean(name, "env_steps_per_second") / mean("td3", "env_steps_per_second"), 3)
            ratios[f"env_steps_per_cpu_second_{name}_over_td3"] = round(
                mean(name, "env_steps_per_cpu_second") / mean("td3", "env_steps_per_cpu_second"), 3)
            ratios[f"update_ms_{name}_over_td3"] = round(
                mean(name, "update_ms") / mean("td3", "update_ms"), 3)
            ratios[f"update_ms_cpu_{name}_over_td3"] = round(
                mean(name, "update_ms_cpu") / mean("td3", "update_ms_cpu"), 3)
        ratios[f"env_steps_per_cpu_second_{name}_over_authors"] = round(
            mean(name, "env_steps_per_cpu_second") / AUTHORS_WALKER_WALK["env_steps_per_second"], 3)
        authors_updates = AUTHORS_WALKER_WALK["gradient_updates_per_second"]
        ratios[f"updates_per_cpu_second_{name}_over_authors"] = round(
            mean(name, "gradient_updates_per_cpu_second") / authors_updates, 3)
    return ratios


def compute_goals(ratios: dict, kernels: list[dict], memory: dict | None, task: str) -> dict:
    goals: dict[str, Any] = {"targets": GOALS}
    over_td3 = {k: v for k, v in ratios.items()  # the "before" variants do not count
                if k.startswith("env_steps_per_cpu_second_") and k.endswith("_td3") and "_reference" not in k}
    if over_td3:
        best = max(over_td3, key=over_td3.get)  # type: ignore[arg-type]
        goals["qmle_over_td3_env_steps"] = {"best": best, "value": over_td3[best],
                                            "met": over_td3[best] >= GOALS["qmle_over_td3_env_steps"]}
    if task == "walker-walk":
        per_variant = {}
        for key, value in ratios.items():
            if key.startswith("env_steps_per_cpu_second_") and key.endswith("_over_authors"):
                name = key.removeprefix("env_steps_per_cpu_second_").removesuffix("_over_authors")
                updates = ratios[f"updates_per_cpu_second_{name}_over_authors"]
                per_variant[name] = {"env_steps": value, "updates": updates,
                                     "met": min(value, updates) >= GOALS["over_authors"]}
        if per_variant:
            goals["over_authors"] = per_variant
    for dtype in ("fp32", "bf16"):
        rows = [r for r in kernels if r["dtype"] == dtype and r["shape"] == "target" and r["inference_mode"]]
        if rows:
            best = max(rows, key=lambda r: r["percent_of_peak"])
            goals[f"percent_of_peak_{dtype}"] = {"best": best["variant"], "value": best["percent_of_peak"],
                                                 "met": best["percent_of_peak"] >= GOALS["percent_of_peak"]}
    if memory is not None:
        goals["flat_memory"] = {"mb_per_update": memory["growth_mb_per_update"],
                                "met": memory["growth_mb_per_update"] <= GOALS["flat_memory_mb_per_update"]}
    return goals


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results, kernels, memory = report["results"], report["kernels"], report["memory"]
    panels = 1 + bool(kernels) + (memory is not None)
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.2), squeeze=False)
    axes = list(axes[0])
    ax = axes.pop(0)
    names = list(dict.fromkeys(r["algorithm"] for r in results))
    x = np.arange(len(names))
    for offset, key, label in ((-0.2, "env_steps_per_cpu_second", "per CPU second"),
                               (0.2, "env_steps_per_second", "per wall second")):
        means = [np.mean([r[key] for r in results if r["algorithm"] == n]) for n in names]
        ax.bar(x + offset, means, width=0.4, label=label)
        for i, v in enumerate(means):
            ax.text(i + offset, v, f"{v:.0f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("env steps / s")
    ax.legend(fontsize=8)
    ax.set_title(f"{report['args']['task']}: training throughput", fontsize=9)
    if kernels:
        ax = axes.pop(0)
        rows = [r for r in kernels if r["shape"] == "target"]
        colors = ["tab:blue" if r["dtype"] == "fp32" else "tab:orange" for r in rows]
        ax.bar(range(len(rows)), [r["gflops_cpu"] for r in rows], color=colors)
        for i, r in enumerate(rows):
            ax.text(i, r["gflops_cpu"], f"{r['percent_of_peak']:.0f}%", ha="center", va="bottom", fontsize=7)
        for dtype, color in (("fp32", "tab:blue"), ("bf16", "tab:orange")):
            ax.axhline(report["peak"][dtype]["gflops_cpu"], color=color, ls="--", lw=1,
                       label=f"{dtype} GEMM peak")
        ax.set_xticks(range(len(rows)), [r["variant"] for r in rows], rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("GFLOP/s (CPU time)")
        ax.legend(fontsize=8)
        ax.set_title(f"scoring {rows[0]['batch']} × {rows[0]['m']} candidates (% of peak)", fontsize=9)
    if memory is not None:
        ax = axes.pop(0)
        ax.plot(memory["samples_update"], memory["samples_rss_mb"], marker=".")
        ax.set_xlabel("updates")
        ax.set_ylabel("RSS (MB)")
        ax.set_title(f"{memory['algorithm']}: {memory['growth_mb_per_update']:+.4f} MB/update", fontsize=9)
    threads = report["machine"]["torch_threads"]
    fig.suptitle(f"{report['machine']['cpu']}, {threads} torch thread(s)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="walker-walk", help="DMC task (domain-task)")
    p.add_argument("--steps", type=int, default=3000, help="timed learning env steps per agent")
    p.add_argument("--warmup", type=int, default=1000, help="random steps before timing")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds, each runs every agent")
    p.add_argument("--algorithms", nargs="*", default=["qmle", "qmle_bf16", "td3"], choices=sorted(BUILDERS),
                   help="agents to train and time (none: only the kernel and memory sections)")
    p.add_argument("--m-target", type=int, default=100, help="QMLE target candidates (Table 1)")
    p.add_argument("--m-greedy", type=int, default=1000, help="QMLE greedy candidates (Table 1)")
    p.add_argument("--batch-size", type=int, default=256, help="replay batch size of both agents")
    p.add_argument("--buffer-size", type=int, default=1_000_000, help="replay capacity of both agents")
    p.add_argument("--repeats", type=int, default=20, help="repeats of the single update/action timings")
    p.add_argument("--kernel-repeats", type=int, default=10,
                   help="interleaved repeats of each candidate-scoring variant")
    p.add_argument("--peak-repeats", type=int, default=10,
                   help="repeats of each GEMM in the peak measurement")
    p.add_argument("--no-kernels", action="store_true", help="skip the candidate-evaluation section")
    p.add_argument("--no-compile", action="store_true",
                   help="skip torch.compile-d scoring in the kernel section")
    p.add_argument("--warm-compile-cache", action="store_true",
                   help="let torch.compile reuse its on-disk cache (by default a fresh one, so the first "
                        "call's time is a cold compile)")
    p.add_argument("--memory-updates", type=int, default=0,
                   help="QMLE updates of the memory run (e.g. 2000); 0 skips it")
    p.add_argument("--memory-every", type=int, default=50, help="updates between RSS samples")
    p.add_argument("--memory-algorithm", default="qmle",
                   choices=sorted(k for k in BUILDERS if k.startswith("qmle")),
                   help="the QMLE variant of the memory run")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--out", default="benchmarks/results/speed", help="output directory")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    with contextlib.ExitStack() as stack:
        if not args.warm_compile_cache and "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
            cache = stack.enter_context(tempfile.TemporaryDirectory(prefix="inductor_"))
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
            stack.callback(os.environ.pop, "TORCHINDUCTOR_CACHE_DIR", None)
        report = run_all(args)
    return report


def run_all(args: argparse.Namespace) -> dict:
    seed = args.seeds[0]
    peaks: dict[str, dict] = {}
    kernels: list[dict] = []
    if not args.no_kernels:
        block = min(args.batch_size * args.m_target, 2048)
        shapes = [(block, 256, 256), (block, 128, 256), (1024, 1024, 1024)]
        peaks = {"fp32": gemm_peak(torch.float32, shapes, args.peak_repeats),
                 "bf16": gemm_peak(torch.bfloat16, shapes, args.peak_repeats)}
        kernels = kernel_benchmark(args, seed, peaks)
    results = [run_one(name, args, s) for s in args.seeds for name in args.algorithms]
    memory = memory_run(args, seed) if args.memory_updates > 0 else None
    ratios = compute_ratios(results, args.algorithms)
    goals = compute_goals(ratios, kernels, memory, args.task)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"args": vars(args), "machine": machine(), "results": results, "peak": peaks, "kernels": kernels,
              "memory": memory, "ratios": ratios, "goals": goals, "authors": AUTHORS_WALKER_WALK,
              "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    json_path = out / f"speed_{args.task}.json"
    json_path.write_text(json.dumps(report, indent=2))
    plot(report, out / f"speed_{args.task}.png")
    print_report(report)
    print(f"wrote {json_path}")
    return report


def print_report(report: dict) -> None:
    for dtype, peak in report["peak"].items():
        print(f"GEMM peak {dtype}: {peak['gflops_cpu']:.1f} GFLOP/s (CPU time), "
              f"{peak['gflops_wall']:.1f} (wall)")
    for r in report["kernels"]:
        extra = f" first call {r['first_call_cpu_s']:.1f}+{r['first_call_children_cpu_s']:.1f}s CPU" \
            if r["compiled"] else ""
        print(f"score {r['shape']:>6} {r['batch']}x{r['m']:<5} {r['variant']:<22} cpu {r['cpu_ms']:8.3f} ms "
              f"wall {r['wall_ms']:8.3f} ms {r['gflops_cpu']:7.1f} GFLOP/s "
              f"{r['percent_of_peak']:5.1f}% of peak winners {100 * r['same_winner_fraction']:.1f}%{extra}")
    for r in report["results"]:
        print(f"{r['algorithm']:>20} seed={r['seed']} env_steps/s cpu={r['env_steps_per_cpu_second']:7.2f} "
              f"wall={r['env_steps_per_second']:7.2f} "
              f"updates/s cpu={r['gradient_updates_per_cpu_second']:7.2f} "
              f"update={r['update_ms_cpu']:.2f}ms cpu ({r['update_ms']:.2f} wall) "
              f"act={r['act_ms_cpu']:.3f}ms cpu ({r['act_ms']:.3f} wall)")
    if report["memory"] is not None:
        mem = report["memory"]
        print(f"memory {mem['algorithm']}: {mem['updates']} updates, RSS {mem['samples_rss_mb'][0]:.0f} → "
              f"{mem['samples_rss_mb'][-1]:.0f} MB, {mem['growth_mb_per_update']:+.5f} MB/update "
              f"(authors: {mem['authors_mb_per_update']} MB/update)")
    for k, v in report["ratios"].items():
        print(f"{k} = {v}")
    for k, v in report["goals"].items():
        if k != "targets":
            print(f"goal {k}: {v}")


if __name__ == "__main__":
    main()
