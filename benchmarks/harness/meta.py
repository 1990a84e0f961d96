"""Where and with what a run ran: library versions, the machine, the git commit, peak memory."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from tianshou_qmle.utils import cpu_flags

ROOT = Path(__file__).resolve().parents[2]

LIBRARIES = ("torch", "tianshou", "gymnasium", "dm_control", "mujoco", "shimmy", "numpy", "tianshou-qmle")
"""Distributions whose versions every run records (plus Python's)."""


def library_versions() -> dict[str, str]:
    """Installed versions of :data:`LIBRARIES` (``"missing"`` where absent) and of Python."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo``, else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


#: Vector ISA levels, best first, that change what a CPU second buys here: with native bf16
#: (:data:`tianshou_qmle.utils.CPU_BF16_FLAGS`) QMLE scores its candidates in bf16, without it bf16
#: products are emulated and it scores in float32.
CPU_ISA_LEVELS = ("avx512_bf16", "amx_bf16", "avx512f", "avx2")


def cpu_isa() -> str:
    """The best of :data:`CPU_ISA_LEVELS` among the CPU's flags; "other" if none is, or "unknown"
    where the flags cannot be read. Two CPUs that report one model name (e.g. "AMD EPYC") can
    differ here, and then their CPU seconds are not comparable."""
    flags = cpu_flags()
    if not flags:
        return "unknown"
    return next((level for level in CPU_ISA_LEVELS if level in flags), "other")


def memory_gib() -> float | None:
    """Total memory in GiB (``/proc/meminfo`` or ``sysconf``); None if neither answers."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def usable_cpus() -> int:
    """CPUs this process may run on (affinity), or the logical CPU count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine(*, torch_threads: int) -> dict[str, Any]:
    """The machine a run ran on, with the load average when it was asked (others may share it)."""
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "cpu_model": cpu_model(),
        "cpu_isa": cpu_isa(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable_cpus(),
        "memory_gib": memory_gib(),
        "torch_threads": torch_threads,
        "platform": platform.platform(),
        "load_average_1_5_15min": load,
    }


def git_commit() -> dict[str, Any]:
    """The checkout's commit and whether tracked files differ from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True,
                              timeout=30).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"),
                "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, in MiB (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def now_iso() -> str:
    """The local date and time with its UTC offset."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


__all__ = [
    "CPU_ISA_LEVELS",
    "LIBRARIES",
    "cpu_isa",
    "cpu_model",
    "git_commit",
    "library_versions",
    "machine",
    "memory_gib",
    "now_iso",
    "peak_rss_mib",
    "usable_cpus",
]
