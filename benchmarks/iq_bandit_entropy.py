#!/usr/bin/env python
"""Does fitting IQ's loss spread the policy as τ grows? A contextual-bandit check, no bootstrapping.

IQ's entropy-targeting temperature assumes that a larger τ makes π = softmax(Q/τ) more uniform.
That holds for the exact solution; this script checks that SGD on Eq. 2 with one replayed action
per state (what a replay buffer of a continuous-state task holds) reaches it. States are
s ~ U(−1, 1), actions one of ``--bins`` evenly spaced values in [−1, 1], chosen uniformly at random,
and the reward is r = −4(a − s)²; with γ = 0 the loss is (τ ln π(a|s) + V(s) − r)². Policy and
value are the iq100k tier's 256-256 ReLU MLPs, trained with Adam (3e-4, batch 256).

For each τ it prints the learned policy's mean entropy on fresh states against that of
softmax(r/τ), and the mean probability π gives the replayed action at training states (uniform:
1/bins; a policy that memorised the replayed actions would give them more). Writes
``iq_bandit_entropy.json`` under ``--out``. About 1 CPU-minute per τ.

    python benchmarks/iq_bandit_entropy.py
    python benchmarks/iq_bandit_entropy.py --taus 0.1 1 --updates 2000
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: make `benchmarks` importable
from benchmarks.harness.meta import git_commit, library_versions, machine, now_iso


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--taus", type=float, nargs="+", default=[0.01, 0.1, 1.0, 10.0, 100.0],
                        help="temperatures to fit (default: 0.01 0.1 1 10 100)")
    parser.add_argument("--bins", type=int, default=11, help="actions per state (11, as IQ's n)")
    parser.add_argument("--transitions", type=int, default=5000, help="replayed (s, a, r) triples")
    parser.add_argument("--updates", type=int, default=6000, help="Adam steps per τ")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and the networks")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/iq_bandit"),
                        help="folder for iq_bandit_entropy.json")
    return parser


def reward(states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    return -4.0 * (actions - states) ** 2


def mlp(out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(1, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                         nn.Linear(256, out_dim))


def mean_entropy(log_probs: torch.Tensor) -> float:
    return float(-(log_probs.exp() * log_probs).sum(-1).mean())


def fit_one(tau: float, args: argparse.Namespace) -> dict[str, Any]:
    generator = torch.Generator().manual_seed(args.seed)
    values = torch.linspace(-1.0, 1.0, args.bins)
    states = torch.rand(args.transitions, 1, generator=generator) * 2 - 1
    chosen = torch.randint(args.bins, (args.transitions,), generator=generator)
    rewards = reward(states[:, 0], values[chosen])
    fresh = torch.rand(2000, 1, generator=generator) * 2 - 1
    torch.manual_seed(args.seed + 1)
    policy, value = mlp(args.bins), mlp(1)
    optim = torch.optim.Adam([*policy.parameters(), *value.parameters()], lr=3e-4)
    for _ in range(args.updates):
        rows = torch.randint(args.transitions, (256,), generator=generator)
        log_pi = torch.log_softmax(policy(states[rows]), -1).gather(1, chosen[rows, None])[:, 0]
        loss = (tau * log_pi + value(states[rows])[:, 0] - rewards[rows]).pow(2).mean()
        optim.zero_grad()
        loss.backward()
        optim.step()
    with torch.no_grad():
        learned = mean_entropy(torch.log_softmax(policy(fresh), -1))
        ideal = mean_entropy(torch.log_softmax(reward(fresh, values[None, :]) / tau, -1))
        replayed = torch.log_softmax(policy(states), -1).gather(1, chosen[:, None]).exp().mean()
    return {"tau": tau, "learned_entropy": learned, "softmax_entropy": ideal,
            "mean_prob_of_replayed_action": float(replayed), "uniform_prob": 1.0 / args.bins,
            "final_loss": float(loss.detach())}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = build_parser()
    args = parser.parse_args(argv)
    if any(not (math.isfinite(t) and t > 0) for t in args.taus):
        parser.error(f"--taus must be finite and > 0, got {args.taus}")
    for flag, value, least in (("--bins", args.bins, 2), ("--transitions", args.transitions, 1),
                               ("--updates", args.updates, 1)):
        if value < least:
            parser.error(f"{flag} must be ≥ {least}, got {value}")
    torch.set_num_threads(1)
    rows = []
    for tau in args.taus:
        row = fit_one(tau, args)
        rows.append(row)
        print(f"τ = {tau:g}: learned entropy {row['learned_entropy']:.2f} nats, softmax(r/τ) "
              f"{row['softmax_entropy']:.2f} (uniform {math.log(args.bins):.2f}); π(replayed a) "
              f"{row['mean_prob_of_replayed_action']:.3f} (uniform {row['uniform_prob']:.3f})", flush=True)
    result = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "results": rows, "machine": machine(torch_threads=1), "versions": library_versions(),
              "git": git_commit(), "date": now_iso()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "iq_bandit_entropy.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out / 'iq_bandit_entropy.json'}")
    return result


if __name__ == "__main__":
    main()
