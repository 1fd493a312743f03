"""`accelerate launch` on a machine without a GPU: its command line is read back, and one-process runs get
every core (the two-process `--cpu` run is tests/test_reliability.py::test_slow_ddp_two_cpu_processes)."""

import os
import re
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, TINY_MODEL

from fer_hf.training.launch import launch_args


@pytest.mark.parametrize("cmdline", [
    ["/usr/bin/python3", "/usr/local/bin/accelerate", "launch", "--cpu", "--num_processes", "2", "train.py", "a.yaml"],
    [sys.executable, "-m", "accelerate.commands.launch", "--num_processes=2", "--cpu", "train.py", "a.yaml"],
])
def test_accelerate_command_lines_are_read_back(cmdline):
    args = launch_args(cmdline)
    assert args.cpu and args.num_processes == 2 and args.training_script == "train.py"
    assert args.training_script_args == ["a.yaml"] and args.mpirun_hostfile is None


@pytest.mark.parametrize("cmdline", [["python", "scripts/train.py", "launch"], ["torchrun", "train.py"], []])
def test_other_command_lines_are_left_alone(cmdline):
    assert launch_args(cmdline) is None


def test_slow_accelerate_launch_without_cpu_flag_uses_every_core(tmp_path):
    # accelerate exports OMP_NUM_THREADS=1 when the user did not set it and --cpu is absent
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    command = [shutil.which("accelerate") or "accelerate", "launch", "--num_processes", "1", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", str(ROOT / "scripts" / "train.py"),
               str(ROOT / "scripts" / "configs" / "quickstart.yaml"), "--synthetic_per_class", "4",
               "--output_dir", str(tmp_path / "run"), *TINY_MODEL, "--max_steps", "1", "--eval_strategy", "no",
               "--save_strategy", "no", "--report_to", "none"]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-3000:]
    threads = int(re.search(r"Precision: fp32 on cpu, (\d+) CPU threads", log).group(1))
    assert threads == len(os.sched_getaffinity(0))
