"""The ``tianshou-qmle`` command: train, evaluate and watch agents without a checkout.

    tianshou-qmle list                                   # the commands and the QMLE presets
    tianshou-qmle train --algo qmle --task walker-walk   # picks the command from algo and task
    tianshou-qmle train dmc-qmle --task walker-walk --preset efficient   # or names it
    tianshou-qmle eval log/walker-walk/qmle/seed_0/checkpoint.pt --episodes 10
    tianshou-qmle watch log/walker-walk/qmle/seed_0/checkpoint.pt --video walker.mp4

``train`` runs exactly what the scripts in ``examples/`` run (they are thin wrappers over the same
commands); ``train COMMAND --help`` lists a command's flags. ``eval`` and ``watch`` rebuild the
algorithm from the command and flags its checkpoint recorded.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tianshou_qmle.experiment.commands import COMMAND_MODULES, args_from_config, load_command, run_command

ALGORITHM_COMMANDS: dict[str, dict[str, tuple[str, list[str]]]] = {
    "qmle": {"dmc": ("dmc-qmle", []), "recsim": ("recsim-qmle", [])},
    "qmle-discrete": {"dmc": ("dmc-qmle-discrete", ["--algo", "qmle"])},
    "dqn": {"dmc": ("dmc-qmle-discrete", ["--algo", "dqn"])},
    "bdqn": {"dmc": ("dmc-qmle-discrete", ["--algo", "bdqn"])},
    "iq": {"dmc": ("dmc-iq", ["--algo", "iq"]), "gym": ("mujoco-iq", ["--algo", "iq"])},
    "miq": {"dmc": ("dmc-iq", ["--algo", "miq"]), "gym": ("mujoco-iq", ["--algo", "miq"])},
    "sac": {"dmc": ("dmc-iq", ["--algo", "sac"]), "gym": ("mujoco-iq", ["--algo", "sac"])},
    "savo": {"restricted": ("restricted-savo", ["--algo", "savo"]), "recsim": ("recsim-savo", [])},
    "td3": {"restricted": ("restricted-savo", ["--algo", "td3"])},
}
"""``--algo`` → task family → (command, flags it adds)."""

RESTRICTED_NAMES = ("hopper", "walker2d", "invertedpendulum", "inverteddoublependulum")


def task_family(task: str) -> str:
    """``recsim``, ``restricted`` (SAVO's restricted MuJoCo names), ``gym`` (ids such as
    ``Hopper-v5``) or ``dmc`` (``domain-task``)."""
    key = task.lower().removeprefix("restricted-").removeprefix("restricted_")
    if key == "recsim":
        return "recsim"
    if key in RESTRICTED_NAMES:
        return "restricted"
    if "-v" in task and task.rsplit("-v", 1)[1].isdigit():
        return "gym"
    return "dmc"


def command_for(algo: str, task: str) -> tuple[str, list[str]]:
    """The command and extra flags that train ``algo`` on ``task``."""
    if algo not in ALGORITHM_COMMANDS:
        raise SystemExit(f"--algo must be one of {', '.join(ALGORITHM_COMMANDS)}, got {algo!r}")
    family = task_family(task)
    choices = ALGORITHM_COMMANDS[algo]
    if family not in choices:
        raise SystemExit(f"--algo {algo} runs on {' or '.join(choices)} tasks; {task!r} is a {family} task")
    return choices[family]


def train(argv: list[str]) -> dict[str, Any]:
    """``train COMMAND [flags]`` or ``train --algo ALGO --task TASK [flags]``."""
    if argv and argv[0] in COMMAND_MODULES:
        return run_command(load_command(argv[0]), argv[1:])
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        print("commands: " + ", ".join(COMMAND_MODULES) + "; algorithms: " + ", ".join(ALGORITHM_COMMANDS))
        return {}
    picker = argparse.ArgumentParser(prog="tianshou-qmle train", add_help=False)
    picker.add_argument("--algo", required=True)
    picker.add_argument("--task", required=True)
    known, rest = picker.parse_known_args(argv)
    name, extra = command_for(known.algo, known.task)
    return run_command(load_command(name), [*extra, "--task", known.task, *rest])


def restore(checkpoint: str, *, num_test_envs: int | None = None, seed: int | None = None) -> Any:
    """The command, its flags and its set-up (algorithm loaded from ``checkpoint``)."""
    from tianshou_qmle.utils import check_checkpoint_fits, read_checkpoint

    try:
        payload = read_checkpoint(checkpoint)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(str(err)) from err
    config = payload.get("config")
    if not config:
        raise SystemExit(f"{checkpoint} does not record the command that wrote it (it was not written by "
                         f"a run of this version); load it with tianshou_qmle.utils.load_checkpoint")
    module = load_command(config["command"])
    args = args_from_config(module, config["args"])
    args.num_train_envs, args.resume, args.no_progress = 1, None, True
    if num_test_envs is not None:
        args.num_test_envs = num_test_envs
    if seed is not None:
        args.seed = seed
    setup = module.setup(args)
    try:
        check_checkpoint_fits(setup.algorithm, payload, path=checkpoint)
    except ValueError as err:
        setup.close()
        raise SystemExit(str(err)) from err
    setup.algorithm.load_state_dict(payload["algorithm"])
    return module, args, setup


def evaluate_checkpoint(argv: list[str]) -> dict[str, Any]:
    """``eval CHECKPOINT [--episodes N] [--seed S] [--json PATH]``: greedy returns of a checkpoint."""
    from tianshou.data import Collector

    from tianshou_qmle.utils import evaluate

    p = argparse.ArgumentParser(prog="tianshou-qmle eval", description="greedy evaluation of a checkpoint")
    p.add_argument("checkpoint", help="a checkpoint.pt written by a run of tianshou-qmle or examples/")
    p.add_argument("--episodes", type=int, default=10, help="greedy evaluation episodes")
    p.add_argument("--seed", type=int, default=None, help="seed of the evaluation envs; None: the run's")
    p.add_argument("--json", default=None, help="also write the result here")
    args = p.parse_args(argv)
    if args.episodes < 1:
        p.error(f"--episodes must be ≥ 1, got {args.episodes}")
    module, run_args, setup = restore(args.checkpoint, num_test_envs=min(args.episodes, 10), seed=args.seed)
    returns = evaluate(setup.algorithm, Collector(setup.algorithm, setup.test_envs), args.episodes)
    setup.close()
    result = {"checkpoint": args.checkpoint, "command": module.NAME, "task": run_args.task,
              "algorithm": setup.algo_name, "episodes": args.episodes,
              "return_mean": float(returns.mean()), "return_std": float(returns.std()),
              "returns": [float(r) for r in returns]}
    print(f"[{setup.algo_name}] {run_args.task}: return {result['return_mean']:.1f} ± "
          f"{result['return_std']:.1f} over {args.episodes} greedy episodes")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


def watch(argv: list[str]) -> dict[str, Any]:
    """``watch CHECKPOINT [--episodes N] [--render] [--video PATH]``: greedy episodes, shown or filmed."""
    from tianshou_qmle.experiment.watching import play_episodes

    p = argparse.ArgumentParser(prog="tianshou-qmle watch", description="greedy episodes of a checkpoint")
    p.add_argument("checkpoint", help="a checkpoint.pt written by a run of tianshou-qmle or examples/")
    p.add_argument("--episodes", type=int, default=1, help="episodes to play")
    p.add_argument("--render", action="store_true", help="show the episodes in a window (needs a display)")
    p.add_argument("--video", default=None, help="write the episodes to this MP4 file (offscreen)")
    p.add_argument("--fps", type=int, default=30, help="frames per second of the video")
    p.add_argument("--max-steps", type=int, default=None, help="cut each episode after this many steps")
    p.add_argument("--seed", type=int, default=None, help="seed of the env; None: the run's")
    args = p.parse_args(argv)
    if args.episodes < 1:
        p.error(f"--episodes must be ≥ 1, got {args.episodes}")
    module, run_args, setup = restore(args.checkpoint, num_test_envs=1, seed=args.seed)
    setup.close()
    render_mode = "rgb_array" if args.video else ("human" if args.render else None)
    env = module.make_env(run_args, render_mode=render_mode)
    result = play_episodes(setup.algorithm, env, episodes=args.episodes, video=args.video, fps=args.fps,
                           seed=run_args.seed, max_steps=args.max_steps)
    print(f"[{setup.algo_name}] {run_args.task}: returns {[round(r, 1) for r in result['returns']]}"
          + (f", video {args.video} ({result['frames']} frames)" if args.video else ""))
    return result


def list_commands(argv: list[str]) -> dict[str, Any]:
    from tianshou_qmle.experiment.presets import QMLE_PRESETS

    for name in COMMAND_MODULES:
        first_line = (load_command(name).__doc__ or "").strip().splitlines()[0]
        print(f"{name:20s} {first_line}")
    print("\nQMLE presets (--preset):")
    for preset in QMLE_PRESETS.values():
        print(f"  {preset.name:10s} {preset.summary}")
    return {"commands": list(COMMAND_MODULES), "presets": list(QMLE_PRESETS)}


SUBCOMMANDS = {"train": train, "eval": evaluate_checkpoint, "watch": watch, "list": list_commands}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in SUBCOMMANDS:
        print(__doc__)
        if argv and argv[0] not in ("-h", "--help"):
            raise SystemExit(f"unknown subcommand {argv[0]!r}; use one of {', '.join(SUBCOMMANDS)}")
        return {}
    return SUBCOMMANDS[argv[0]](argv[1:])


def console_main() -> None:
    """The ``tianshou-qmle`` console script: :func:`main`, exit status 0 on success."""
    main()


__all__ = ["command_for", "console_main", "main", "task_family"]


if __name__ == "__main__":
    console_main()
