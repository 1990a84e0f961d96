#!/usr/bin/env python
"""How well QMLE's action-in critic learns the recommender's click model from a fixed amount of data.

A diagnostic for ``examples/recsim_qmle.py``. It has no bootstrapping, exploration or search, only
supervised regression. Per seed it plays ``--transitions`` uniformly random items to
:class:`~tianshou_qmle.env.RecSimEnv` users and fits each critic variant to the clicks (MSE, Adam,
lr 5e-4, batch 256, as QMLE's Table 1 critic). Q(s, a) of a one-step problem is then the click
probability. At each step count in ``--steps`` it records:

- ``heldout_mse``: the error against the *true* click probability on 2000 fresh random
  transitions. Compare it with ``p_variance``, the variance of that probability across random items
  and users, which a constant predictor would score.
- ``clicks``: the mean clicks per 20-step episode when the critic greedily picks the best of
  ``--candidates`` uniformly random items for each of ``--eval-episodes`` users, seeded 10 000 on.
  Under the same protocol it also records ``random_clicks`` (random items) and ``oracle_clicks``
  (the best candidate under the true click model).

The variants are the four critics of ``benchmarks/README.md``'s recommender table: 32- or 128-wide
streams, with or without the bilinear head. Clicks are noisy Bernoulli outcomes whose probability
varies little between items, so the critic overfits the noise as the number of passes over the data
grows. Writes ``fit.json`` and ``fit.png`` into ``--out``.

    python benchmarks/recsim_critic_fit.py                  # 2 seeds × 4 variants, ≈ 10 min here
    python benchmarks/recsim_critic_fit.py --variants w32+bilinear --seeds 0 --steps 500 4500
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tianshou_qmle.env.recsim import PAPER_EPISODE_LENGTH, RecSimEnv, make_recsim_env
from tianshou_qmle.net.critic import ActionInCritic

VARIANTS = {
    "w32+bilinear": {"width": 32, "bilinear_head": True},
    "w32": {"width": 32, "bilinear_head": False},
    "w128+bilinear": {"width": 128, "bilinear_head": True},
    "w128": {"width": 128, "bilinear_head": False},
}
"""Stream width and bilinear head of each critic variant (w128 without the head is the paper's)."""

HELDOUT_TRANSITIONS = 2000
FIRST_EVAL_USER = 10_000
BATCH_SIZE = 256
LEARNING_RATE = 5e-4


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--transitions", type=int, default=10_000,
                   help="random transitions to fit on (default: 10000, the data of a 10k-step run)")
    p.add_argument("--steps", type=int, nargs="+", default=[250, 500, 1000, 2000, 4500],
                   help="Adam steps of 256 after which to measure (increasing)")
    p.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS),
                   help="critic variants to fit")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1],
                   help="seeds of the data, the initialisation and the candidates")
    p.add_argument("--eval-episodes", type=int, default=40, help="users per greedy evaluation")
    p.add_argument("--candidates", type=int, default=1000, help="random items scored per greedy choice")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/recsim_critic_fit"),
                   help="output directory for fit.json and fit.png")
    return p


def check_arguments(args: argparse.Namespace) -> None:
    for name in ("transitions", "eval_episodes", "candidates", "threads"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be ≥ 1, got {getattr(args, name)}")
    if min(args.steps) < 1 or list(args.steps) != sorted(set(args.steps)):
        raise ValueError(f"--steps must be distinct positive integers in increasing order, got {args.steps}")


def random_transitions(env: RecSimEnv, count: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """``count`` steps of uniformly random items: user interest, item, click, true click probability."""
    obs, _ = env.reset(seed=int(rng.integers(2**31)))
    columns: dict[str, list[Any]] = {"obs": [], "item": [], "click": [], "p_click": []}
    for _ in range(count):
        item = int(rng.integers(env.num_items))
        next_obs, click, terminated, truncated, info = env.step(item)
        for key, value in zip(columns, (obs, item, click, info["click_probability"]), strict=True):
            columns[key].append(value)
        obs = env.reset()[0] if terminated or truncated else next_obs
    return {
        "obs": torch.as_tensor(np.asarray(columns["obs"]), dtype=torch.float32),
        "item": torch.as_tensor(columns["item"]),
        "click": torch.as_tensor(columns["click"], dtype=torch.float32),
        "p_click": torch.as_tensor(columns["p_click"], dtype=torch.float32),
    }


def episode_clicks(env: RecSimEnv, choose, episodes: int) -> float:
    """Mean clicks per episode over users seeded ``FIRST_EVAL_USER …``; ``choose(obs) -> item``."""
    totals = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=FIRST_EVAL_USER + episode)
        total = 0.0
        for _ in range(PAPER_EPISODE_LENGTH):
            obs, click, *_ = env.step(choose(obs))
            total += click
        totals.append(total)
    return float(np.mean(totals))


def greedy_chooser(critic: ActionInCritic, items: torch.Tensor, candidates: int, rng: np.random.Generator):
    def choose(obs: np.ndarray) -> int:
        pool = rng.integers(len(items), size=candidates)
        with torch.inference_mode():
            q = critic.q_from_features(critic.features(obs[None]), items[torch.as_tensor(pool)][None])[0]
        return int(pool[int(q.argmax())])

    return choose


def fit_variant(
    variant: str, seed: int, data: dict, heldout: dict, items: torch.Tensor, env: RecSimEnv,
    args: argparse.Namespace,
) -> list[dict[str, float]]:
    """Fit one critic and measure it after each step count of ``args.steps``."""
    torch.manual_seed(seed)
    spec = VARIANTS[variant]
    critic = ActionInCritic(obs_dim=data["obs"].shape[1], act_dim=items.shape[1], obs_width=spec["width"],
                            act_width=spec["width"], bilinear_head=spec["bilinear_head"])
    optim = torch.optim.Adam(critic.parameters(), lr=LEARNING_RATE)
    batches = torch.Generator().manual_seed(seed)
    points, done = [], 0
    for target in args.steps:
        for _ in range(target - done):
            idx = torch.randint(len(data["click"]), (BATCH_SIZE,), generator=batches)
            loss = (critic(data["obs"][idx], items[data["item"][idx]]) - data["click"][idx]).pow(2).mean()
            optim.zero_grad()
            loss.backward()
            optim.step()
        done = target
        with torch.no_grad():
            error = (critic(heldout["obs"], items[heldout["item"]]) - heldout["p_click"]).pow(2).mean()
        choose = greedy_chooser(critic, items, args.candidates, np.random.default_rng(seed))
        clicks = episode_clicks(env, choose, args.eval_episodes)
        points.append({"steps": target, "heldout_mse": float(error), "clicks": clicks})
    return points


def run_seed(seed: int, args: argparse.Namespace) -> dict[str, Any]:
    env = make_recsim_env()
    items = torch.tensor(env.action_representations)
    rng = np.random.default_rng(seed)
    data = random_transitions(env, args.transitions, rng)
    heldout = random_transitions(env, HELDOUT_TRANSITIONS, rng)
    reference_rng = np.random.default_rng(seed)

    def oracle(_obs: np.ndarray) -> int:
        pool = reference_rng.integers(env.num_items, size=args.candidates)
        return int(pool[np.argmax(env.click_probabilities()[pool])])

    result: dict[str, Any] = {
        "seed": seed,
        "p_variance": float(heldout["p_click"].var()),
        "random_clicks": episode_clicks(env, lambda _obs: int(reference_rng.integers(env.num_items)),
                                        args.eval_episodes),
        "oracle_clicks": episode_clicks(env, oracle, args.eval_episodes),
        "variants": {},
    }
    for variant in args.variants:
        start = time.perf_counter()
        result["variants"][variant] = fit_variant(variant, seed, data, heldout, items, env, args)
        print(f"seed {seed} {variant}: {result['variants'][variant]} ({time.perf_counter() - start:.0f}s)",
              flush=True)
    return result


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_clicks, ax_mse) = plt.subplots(1, 2, figsize=(11, 4))
    runs = report["runs"]
    for variant in report["config"]["variants"]:
        steps = [p["steps"] for p in runs[0]["variants"][variant]]
        for ax, key in ((ax_clicks, "clicks"), (ax_mse, "heldout_mse")):
            values = np.array([[p[key] for p in run["variants"][variant]] for run in runs])
            ax.errorbar(steps, values.mean(0), yerr=values.std(0) / np.sqrt(len(runs)), marker="o",
                        capsize=3, label=variant)
    for key, style in (("random_clicks", ":"), ("oracle_clicks", "--")):
        ax_clicks.axhline(np.mean([run[key] for run in runs]), color="gray", linestyle=style,
                          label=key.replace("_", " "))
    ax_mse.axhline(np.mean([run["p_variance"] for run in runs]), color="gray", linestyle=":",
                   label="Var(p), a constant's error")
    ax_clicks.set(xscale="log", xlabel="Adam steps of 256", ylabel="clicks per episode (greedy)")
    ax_mse.set(xscale="log", yscale="log", xlabel="Adam steps of 256", ylabel="held-out MSE vs true p")
    for ax in (ax_clicks, ax_mse):
        ax.set_xticks(steps, [str(s) for s in steps], minor=False)
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax_clicks.legend(fontsize=8)
    ax_mse.legend(fontsize=8)
    fig.suptitle(f"critic fitted to {report['config']['transitions']} random recommender transitions "
                 f"(mean ± s.e. over {len(runs)} seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    check_arguments(args)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    config = {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()}
    report = {"config": config, "runs": [run_seed(seed, args) for seed in args.seeds]}
    (args.out / "fit.json").write_text(json.dumps(report, indent=1))
    plot(report, args.out / "fit.png")
    return report


if __name__ == "__main__":
    main()
