#!/usr/bin/env python
"""QMLE §5.1 / Fig. 2: DPG against QMLE with local and with global sampling on the 2-D bimodal bandit.

Every (method, exploration, seed) run trains through Tianshou's Collector and OffPolicyTrainer on
:class:`~tianshou_qmle.env.BimodalBanditEnv` (one-step episodes, so Q(s, a) = r(a) and learning
is supervised regression of rewards, §5.1), with one gradient update per env step. As in the
paper, the three methods share hyper-parameters (Adam lr 1e-3, batch 64, the same uniform replay
buffer and warm-up, ``hidden`` units) and differ only in how the delta parameters move:

* ``dpg``: Tianshou's own :class:`~tianshou.algorithm.DDPG`; the actor (the delta δθ) follows
  ∇a Q(s, a = δθ(s)). Its critic and actor are QMLE's action-in critic and delta predictor, built
  under the same seed, so all three methods start from the same Q and the same δ.
* ``qmle-local``: QMLE with a single delta arg max predictor whose MLE targets are the best of
  ``m_target`` samples δθ(s) + ξ, ξ ~ N(0, 0.001²) (the paper's "local sampling").
* ``qmle-global``: the same plus uniform samples over the whole box (ρ0 = ρ_delta = 0.5; the
  paper's "global sampling", the A_m0 samples of Eq. 21).
* ``qmle-global-prior``: ``qmle-global`` with our arg max prior buffer, so every search also
  scores the stored best action of its transition (Eq. 20, Principle 2). §5.1 does not say
  whether its variants kept the prior; the local variant cannot (the prior starts as the taken
  action, which under exploration may lie anywhere in the box), so the first three use a plain
  Tianshou replay buffer and this one shows what the prior adds.

All QMLE variants act with δθ(s) itself rather than a sampled arg max ("aligning its computation
of greedy actions with that of DPG", §5.1).

The paper names "three canonical exploration strategies" but not which; we use

* ``gaussian``: the greedy action plus N(0, 0.1²) noise (Tianshou's DDPG default), clipped;
* ``epsilon``: a uniform action with probability 0.1 (Table 1's ε), else the greedy action;
* ``uniform``: always a uniform action (pure off-policy learning from random data).

The reward surface is our own (:func:`~tianshou_qmle.env.bimodal_reward`: a broad local mode of
height 0.6 at (−0.5, −0.5), a narrow global one of height 1 at (0.6, 0.6)); the paper publishes
only that its surface is bimodal and deterministic.

Writes into ``--out``: ``runs.json`` (per run: δ trajectory, final δ, reward at δ, whether it
reached the global mode), ``table.md`` (how often each method × exploration reaches the global
mode, and the mean reward of its final δ), and ``fig2.png`` (the true reward, then per
exploration × method the learned Q surface of the first seed with every seed's δ trajectory in
yellow and its end point in green, as Fig. 2b).

    python benchmarks/bandit_fig2.py --workers 2           # 4 × 3 × 5 seeds, ≈ 25 min here
    python benchmarks/bandit_fig2.py --seeds 0 1 --updates 500 --out /tmp/fig2
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tianshou.algorithm import DDPG
from tianshou.algorithm.algorithm_base import OffPolicyAlgorithm
from tianshou.algorithm.modelfree.ddpg import ContinuousDeterministicPolicy
from tianshou.algorithm.optim import AdamOptimizerFactory
from tianshou.data import Collector, ReplayBuffer
from tianshou.env import DummyVectorEnv
from tianshou.trainer import OffPolicyTrainerParams
from tqdm import tqdm

from tianshou_qmle import QMLE, QMLEPolicy, build_qmle_network, make_replay_buffer
from tianshou_qmle.env import BimodalBanditEnv, bimodal_reward
from tianshou_qmle.env.bandit import GLOBAL_MODE, LOCAL_MODE
from tianshou_qmle.net.qmle_net import QMLENetwork
from tianshou_qmle.utils import seed_everything

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.harness.meta import git_commit, library_versions, machine, now_iso  # noqa: E402

METHODS = ("dpg", "qmle-local", "qmle-global", "qmle-global-prior")
EXPLORATIONS = ("gaussian", "epsilon", "uniform")
GAUSSIAN_SIGMA = 0.1
EPSILON = 0.1
LOCAL_STD = 0.001
"""σ of §5.1's local samples δθ(s) + ξ."""
GLOBAL_RADIUS = 0.15
"""A final δ within this distance of the global mode (0.6, 0.6) counts as reaching it; the reward
there is above 0.75, more than the local mode's 0.6."""
OBS = np.ones((1, 1), dtype=np.float32)


def explore(act: np.ndarray, strategy: str) -> np.ndarray:
    """The behaviour action for greedy actions ``act`` ``[batch, 2]`` under ``strategy``."""
    if strategy == "gaussian":
        return np.clip(act + np.random.normal(0.0, GAUSSIAN_SIGMA, act.shape), -1.0, 1.0).astype(np.float32)
    uniform = np.random.uniform(-1.0, 1.0, act.shape).astype(np.float32)
    if strategy == "uniform":
        return uniform
    if strategy == "epsilon":
        replace = np.random.rand(act.shape[0]) < EPSILON
        return np.where(replace[:, None], uniform, act).astype(np.float32)
    raise ValueError(f"exploration must be one of {EXPLORATIONS}, got {strategy!r}")


class DeltaActingQMLEPolicy(QMLEPolicy):
    """QMLE that acts with its delta predictor's point δθ(s), as DPG acts with its actor (§5.1)."""

    def __init__(self, *, strategy: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.strategy = strategy

    def greedy_actions(self, obs: Any, m: int | None = None) -> torch.Tensor:
        with torch.inference_mode():
            features = self.model.critic.features(self.observation_tensor(obs))
            delta = self.model.predictors[0]
            return delta.mode(delta(features))

    def add_exploration_noise(self, act: Any, batch: Any) -> Any:
        return explore(act, self.strategy)


class StrategyDDPGPolicy(ContinuousDeterministicPolicy):
    """Tianshou's deterministic policy with one of the three exploration strategies."""

    def __init__(self, *, strategy: str, **kwargs: Any) -> None:
        super().__init__(exploration_noise=None, **kwargs)
        self.strategy = strategy

    def add_exploration_noise(self, act: Any, batch: Any) -> Any:
        return explore(act, self.strategy)


class DeltaActor(torch.nn.Module):
    """DPG's actor with exactly QMLE's delta predictor: an observation stream and a tanh-bounded
    point, here trained by the deterministic policy gradient instead of maximum likelihood."""

    max_action = 1.0

    def __init__(self, model: QMLENetwork) -> None:
        super().__init__()
        self.obs_stream = copy.deepcopy(model.critic.obs_stream)
        self.delta = model.predictors[0]

    def forward(self, obs: Any, state: Any = None, info: Any = None) -> tuple[torch.Tensor, Any]:
        return self.delta(self.obs_stream(torch.as_tensor(obs, dtype=torch.float32))), state


def bandit_network(hidden: int) -> QMLENetwork:
    """The network every method starts from: under one seed, Q and δθ start identical (§5.1)."""
    return build_qmle_network(obs_dim=1, act_dim=2, hidden_width=hidden, predictor_families=("delta",),
                              delta_std=LOCAL_STD)


def build_dpg(strategy: str, *, hidden: int, lr: float) -> tuple[DDPG, Callable[[], np.ndarray]]:
    env = BimodalBanditEnv()
    model = bandit_network(hidden)
    actor = DeltaActor(model)
    policy = StrategyDDPGPolicy(strategy=strategy, actor=actor, action_space=env.action_space,
                                observation_space=env.observation_space)
    algo = DDPG(policy=policy, policy_optim=AdamOptimizerFactory(lr=lr), critic=model.critic,
                critic_optim=AdamOptimizerFactory(lr=lr))

    def delta() -> np.ndarray:
        with torch.no_grad():
            return actor(OBS)[0].numpy()[0]

    return algo, delta


def build_qmle(strategy: str, *, local_only: bool, hidden: int, lr: float, m_target: int,
               ) -> tuple[QMLE, Callable[[], np.ndarray]]:
    env = BimodalBanditEnv()
    model = bandit_network(hidden)
    policy = DeltaActingQMLEPolicy(
        strategy=strategy, model=model, action_space=env.action_space,
        observation_space=env.observation_space,
        proposal_ratios=(0.0, 1.0) if local_only else (0.5, 0.5), eps_training=0.0,
    )
    # hard target copies every 10 updates; with one-step episodes the target network never enters a TD target
    algo = QMLE(policy=policy, optim=AdamOptimizerFactory(lr=lr), m_target=m_target, target_update_freq=10)

    def delta() -> np.ndarray:
        with torch.no_grad():
            return policy.greedy_actions(OBS).numpy()[0]

    return algo, delta


def fit_critic_to_warmup(critic: torch.nn.Module, buffer: ReplayBuffer, *, steps: int, batch_size: int,
                         lr: float) -> None:
    """Regress Q(s, a) on the warm-up rewards (one-step episodes: the exact target) before learning.

    Every method runs this on the same network, data and seed, so they all start from the same Q.
    Without it DPG's first few updates follow the random initial Q's slope to a corner of the box,
    and where it lands depends on the initialisation rather than on the reward surface (measured:
    within 20 updates, δ at (±0.9, ±0.9) in every run); §5.1 studies DPG with an accurate Q.
    """
    data = buffer[np.sort(buffer.sample_indices(0))]
    obs, act = torch.as_tensor(data.obs, dtype=torch.float32), torch.as_tensor(data.act, dtype=torch.float32)
    reward = torch.as_tensor(data.rew, dtype=torch.float32)
    # our own generator, not the buffer's sampler, so every buffer type yields the same batches
    generator = torch.Generator().manual_seed(int(torch.initial_seed()) % 2**31)
    optim = torch.optim.Adam(critic.parameters(), lr=lr)
    for _ in range(steps):
        rows = torch.randint(len(reward), (batch_size,), generator=generator)
        loss = (critic(obs[rows], act[rows]) - reward[rows]).pow(2).mean()
        optim.zero_grad()
        loss.backward()
        optim.step()


def critic_of(algo: OffPolicyAlgorithm) -> torch.nn.Module:
    """The Q network being learned: DDPG's critic, or QMLE's action-in critic."""
    return algo.critic if isinstance(algo, DDPG) else algo.policy.model.critic


def learned_q(algo: OffPolicyAlgorithm, grid: np.ndarray) -> np.ndarray:
    critic = critic_of(algo)
    with torch.no_grad():
        obs = torch.ones(len(grid), 1)
        return critic(obs, torch.as_tensor(grid, dtype=torch.float32)).numpy()


def train_one(method: str, strategy: str, seed: int, *, updates: int, warmup: int, record_every: int,
              critic_warmup: int, hidden: int, lr: float, batch_size: int, m_target: int,
              grid: np.ndarray | None) -> dict[str, Any]:
    """One run; returns its δ trajectory, final δ and (if ``grid``) the learned Q on the grid."""
    seed_everything(seed)
    if method == "dpg":
        algo, delta = build_dpg(strategy, hidden=hidden, lr=lr)
    else:
        algo, delta = build_qmle(strategy, local_only=method == "qmle-local", hidden=hidden, lr=lr,
                                 m_target=m_target)
    envs = DummyVectorEnv([BimodalBanditEnv])
    envs.seed(seed)
    buffer = (make_replay_buffer(size=10_000, num_envs=1, prioritized=False, seed=seed)
              if method == "qmle-global-prior" else ReplayBuffer(10_000))
    collector = Collector(algo, envs, buffer, exploration_noise=True)
    collector.reset()
    collector.collect(n_step=warmup, random=True)
    critic = critic_of(algo)
    fit_critic_to_warmup(critic, collector.buffer, steps=critic_warmup, batch_size=batch_size, lr=lr)
    if isinstance(algo, DDPG):  # its actor's stream starts from the fitted one, as QMLE's δ reads it
        algo.policy.actor.obs_stream.load_state_dict(critic.obs_stream.state_dict())
    algo._lagged_networks.full_parameter_update()  # the targets start from the fitted Q too
    trajectory = [delta().tolist()]

    def record(_epoch: int, env_step: int) -> None:
        if env_step > 0 and env_step % record_every == 0:
            trajectory.append(delta().tolist())

    start = time.process_time()
    algo.create_trainer(OffPolicyTrainerParams(
        training_collector=collector, max_epochs=1, epoch_num_steps=updates, collection_step_num_env_steps=1,
        update_step_num_gradient_steps_per_sample=1.0, batch_size=batch_size, training_fn=record,
        show_progress=False, verbose=False, test_collector=None,
    )).run(reset_collectors=False)
    final = delta()
    trajectory.append(final.tolist())
    result: dict[str, Any] = {
        "method": method, "exploration": strategy, "seed": seed, "updates": updates,
        "trajectory": trajectory, "final_delta": final.tolist(),
        "final_reward": float(bimodal_reward(final)),
        "distance_to_global": float(np.linalg.norm(final - GLOBAL_MODE)),
        "distance_to_local": float(np.linalg.norm(final - LOCAL_MODE)),
        "cpu_seconds": round(time.process_time() - start, 2),
    }
    result["reached_global"] = result["distance_to_global"] < GLOBAL_RADIUS
    if grid is not None:
        result["q_grid"] = learned_q(algo, grid).tolist()
    return result


def run_job(job: tuple[str, str, int], kwargs: dict[str, Any]) -> dict[str, Any]:
    """One run in this or a worker process (one torch thread each)."""
    kwargs = dict(kwargs)
    torch.set_num_threads(kwargs.pop("threads"))
    # the plain-buffer variants search without a prior on purpose (see the module docstring)
    warnings.filterwarnings("ignore", message=".*stores no arg max prior.*")
    return train_one(*job, **kwargs)


def summary_rows(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for strategy in EXPLORATIONS:
        for method in METHODS:
            mine = [r for r in runs if r["method"] == method and r["exploration"] == strategy]
            if not mine:
                continue
            rewards = np.array([r["final_reward"] for r in mine])
            rows.append({
                "exploration": strategy, "method": method, "seeds": len(mine),
                "reached_global": int(sum(r["reached_global"] for r in mine)),
                "ended_near_local": int(sum(r["distance_to_local"] < GLOBAL_RADIUS for r in mine)),
                "final_reward_mean": float(rewards.mean()),
                "final_reward_sem": (float(rewards.std(ddof=1) / np.sqrt(len(rewards)))
                                     if len(rewards) > 1 else None),
            })
    return rows


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["| exploration | method | reached global mode | ended at local mode "
             "| r(δ) at the end, mean ± s.e. |",
             "| --- | --- | --- | --- | --- |"]
    for row in rows:
        sem = "" if row["final_reward_sem"] is None else f" ± {row['final_reward_sem']:.3f}"
        lines.append(f"| {row['exploration']} | {row['method']} | {row['reached_global']}/{row['seeds']} | "
                     f"{row['ended_near_local']}/{row['seeds']} | {row['final_reward_mean']:.3f}{sem} |")
    return "\n".join(lines) + "\n"


def plot(runs: Sequence[dict[str, Any]], axis: np.ndarray, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xx, yy = np.meshgrid(axis, axis)
    rows, cols = len(EXPLORATIONS), len(METHODS) + 1
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.6 * rows), squeeze=False)
    truth = bimodal_reward(np.stack([xx, yy], axis=-1))
    for row, strategy in enumerate(EXPLORATIONS):
        ax = axes[row, 0]
        ax.contourf(xx, yy, truth, levels=20, cmap="viridis")
        ax.set_title("(a) true reward = Q*" if row == 0 else "")
        ax.set_ylabel(f"{strategy} exploration")
        for col, method in enumerate(METHODS, start=1):
            ax = axes[row, col]
            mine = sorted((r for r in runs if r["method"] == method and r["exploration"] == strategy),
                          key=lambda r: r["seed"])
            with_q = [r for r in mine if "q_grid" in r]
            if with_q:
                q = np.asarray(with_q[0]["q_grid"]).reshape(xx.shape)
                ax.contourf(xx, yy, q, levels=20, cmap="viridis")
            for r in mine:
                t = np.asarray(r["trajectory"])
                ax.plot(t[:, 0], t[:, 1], color="yellow", lw=1.2)
                ax.scatter(t[-1, 0], t[-1, 1], color="lime", edgecolor="black", s=30, zorder=3)
            reached = sum(r["reached_global"] for r in mine)
            counts = f"{reached}/{len(mine)} reach global"
            ax.set_title(f"{method}: {counts}" if row == 0 else counts)
            ax.set_xlim(-1, 1)
            ax.set_ylim(-1, 1)
            ax.set_aspect("equal")
    fig.suptitle("QMLE §5.1, Fig. 2: δ trajectories (yellow, end green) over the learned Q of the first seed")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--explorations", nargs="+", choices=EXPLORATIONS, default=list(EXPLORATIONS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4], help="≥ 5 for the table")
    parser.add_argument("--updates", type=int, default=1500,
                        help="env steps = gradient updates per run (default 1500: QMLE global + prior "
                             "reached the global mode in 15/15 runs)")
    parser.add_argument("--warmup", type=int, default=500,
                        help="uniformly random env steps before learning (default 500)")
    parser.add_argument("--critic-warmup", type=int, default=300,
                        help="regression steps of Q on the warm-up data before learning, shared by all "
                             "methods (see fit_critic_to_warmup; default 300); 0 disables")
    parser.add_argument("--record-every", type=int, default=20, help="updates between recorded δ points")
    parser.add_argument("--hidden", type=int, default=128, help="hidden units of every network")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate of every network")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--m-target", type=int, default=32, help="QMLE samples per arg max search")
    parser.add_argument("--grid", type=int, default=61, help="points per axis of the plotted Q surface")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--workers", type=int, default=1, help="runs in parallel processes (one core each)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bandit")
    args = parser.parse_args(argv)
    for name in ("workers", "updates", "record_every", "hidden", "batch_size", "m_target", "grid", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be ≥ 1, got {getattr(args, name)}")
    if args.warmup < args.batch_size:
        parser.error(f"--warmup must be ≥ --batch-size ({args.batch_size}), got {args.warmup}")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    axis = np.linspace(-1.0, 1.0, args.grid)
    grid = np.stack(np.meshgrid(axis, axis), axis=-1).reshape(-1, 2).astype(np.float32)
    jobs = [(m, e, s) for e in args.explorations for m in args.methods for s in args.seeds]
    runs: list[dict[str, Any]] = []
    settings = {"updates": args.updates, "warmup": args.warmup, "record_every": args.record_every,
                "critic_warmup": args.critic_warmup, "hidden": args.hidden, "lr": args.lr,
                "batch_size": args.batch_size, "m_target": args.m_target, "threads": args.threads}
    calls = [((m, e, s), {**settings, "grid": grid if s == min(args.seeds) else None}) for m, e, s in jobs]
    if args.workers == 1:
        runs = [run_job(*call) for call in tqdm(calls, desc="bandit runs", unit="run")]
    else:
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            futures = [pool.submit(run_job, *call) for call in calls]
            for future in tqdm(as_completed(futures), total=len(futures), desc="bandit runs", unit="run"):
                runs.append(future.result())
    runs.sort(key=lambda r: (EXPLORATIONS.index(r["exploration"]), METHODS.index(r["method"]), r["seed"]))
    rows = summary_rows(runs)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "date": now_iso(), "git": git_commit(), "versions": library_versions(),
        "machine": machine(torch_threads=args.threads),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "constants": {"gaussian_sigma": GAUSSIAN_SIGMA, "epsilon": EPSILON, "local_std": LOCAL_STD,
                      "global_radius": GLOBAL_RADIUS},
        "summary": rows, "runs": runs,
    }
    (args.out / "runs.json").write_text(json.dumps(report, indent=1))
    table = markdown(rows)
    (args.out / "table.md").write_text(table)
    plot(runs, axis, args.out / "fig2.png")
    print(table)
    print(f"wrote {args.out / 'runs.json'}, {args.out / 'table.md'} and {args.out / 'fig2.png'}")
    return report


if __name__ == "__main__":
    main()
