"""Make `accelerate launch` do what its command line says on a machine without a GPU.

Two behaviours of `accelerate launch` (1.x, read from its source and measured here) surprise CPU users:

- Without `--cpu`, it exports `OMP_NUM_THREADS=1` unless the user set it, so a one-process run on a
  CPU-only machine trains on one core (docs/decisions.md, "Every core for one training process").
- With `--cpu --num_processes N` it expects MPI (`--mpirun_hostfile`); without it, it starts ONE process
  that trains alone.

`fix_cpu_launch()` (called first thing by scripts/train.py) reads the `accelerate launch` command line of
the parent process and, on a machine without an accelerator, restores the thread count in the first
case and starts the N processes itself with torch's elastic launcher (as `--multi_gpu` would) in the
second; Accelerate then joins them over gloo. Anything else is left exactly as Accelerate set it up.
"""

from __future__ import annotations

import logging
import os
import sys

import torch

from ..utils.device import has_accelerator

logger = logging.getLogger(__name__)


def _proc_file(pid: int, name: str) -> list[str]:
    try:
        with open(f"/proc/{pid}/{name}", "rb") as f:
            return [part.decode(errors="replace") for part in f.read().split(b"\0") if part]
    except OSError:  # not Linux, or the parent is gone
        return []


def launch_args(cmdline: list[str]):
    """The parsed `accelerate launch` options of a command line (`accelerate launch ...` or
    `python -m accelerate.commands.launch ...`), or None if it is not one."""
    for i, arg in enumerate(cmdline):
        if arg == "accelerate.commands.launch" or (
                arg == "launch" and any(os.path.basename(a).startswith("accelerate") for a in cmdline[:i])):
            from accelerate.commands.launch import launch_command_parser

            try:
                return launch_command_parser().parse_args(cmdline[i + 1:])
            except SystemExit:  # a command line this accelerate cannot parse: leave everything as it is
                return None
    return None


def fix_cpu_launch(script: str, argv: list[str], environ, pid: int | None = None) -> None:
    """Restore CPU threads, or start `--num_processes` CPU processes; returns only in the process that trains.
    `environ` is the entry point's `os.environ`: read for the launch's settings, and given the thread count."""
    if int(environ.get("WORLD_SIZE", "1")) > 1 or has_accelerator():
        return
    parent = pid or os.getppid()
    launch = launch_args(_proc_file(parent, "cmdline"))
    if launch is None:
        return
    parent_env = dict(item.split("=", 1) for item in _proc_file(parent, "environ") if "=" in item)
    processes = launch.num_processes or 1
    if launch.cpu and processes > 1 and not launch.mpirun_hostfile:
        from torch.distributed.run import main as torchrun

        logger.warning("accelerate launch --cpu --num_processes %d without MPI starts one process; starting %d "
                       "processes with torch.distributed.run (DDP over gloo).", processes, processes)
        environ.setdefault("OMP_NUM_THREADS", str(max(1, _cores() // processes)))
        torchrun(["--nproc_per_node", str(processes), "--master_addr", environ.get("MASTER_ADDR", "127.0.0.1"),
                  "--master_port", environ.get("MASTER_PORT", "29500"), script, *argv])
        sys.exit(0)  # torchrun raises if a worker failed
    if processes == 1 and "OMP_NUM_THREADS" not in parent_env and launch.num_cpu_threads_per_process is None:
        # accelerate's default of one thread, not the user's choice: use the cores we may run on
        torch.set_num_threads(_cores())
        logger.info("Using %d CPU threads (accelerate launch defaults to 1 without --cpu).", _cores())


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
