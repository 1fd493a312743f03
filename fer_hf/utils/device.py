"""What hardware this process has: an accelerator, and whether the CPU computes bf16 natively.

Machines of one kind differ here: bf16 is native (fast) only with AVX512-BF16 or AMX, otherwise oneDNN emulates it
many times slower than fp32, so every precision choice asks `cpu_has_native_bf16` first.
"""

from __future__ import annotations

import contextlib
import platform
import subprocess

import torch


def has_accelerator() -> bool:
    """Whether torch sees a GPU or another accelerator (CUDA, XPU, MPS, ...)."""
    accelerator = getattr(torch, "accelerator", None)  # torch >= 2.6
    return accelerator.is_available() if accelerator is not None else torch.cuda.is_available()


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (oneDNN's own check: AVX512-BF16 / AMX / AVX512 core)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cpu_name() -> str:
    """`lscpu`'s model name: the CPU a figure was measured on."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"
