"""The device and precision policy: what a run asked for, what it will train in, and why, decided in one place.

`decide(...)` is a pure function of the request and the machine; `FerTrainingArguments.__post_init__` applies its
decision before transformers validates the arguments (which refuses bf16 without a GPU unless `use_cpu`), keeps it
as `args.precision_decision`, and every note is logged. The rules:

- fp16 on a CPU does nothing (autocast ignores it; Accelerate would train fp32 and call it fp16): bf16 where the CPU
  computes it natively (AVX512-BF16/AMX), else fp32 (emulated bf16 is many times slower; docs/decisions.md).
- bf16 asked for on a CPU without native bf16: kept, with a warning.
- bf16 without a GPU goes through `use_cpu` (transformers' only way), and pinned memory is off (it needs a GPU).
- several processes (torchrun, `accelerate launch --num_processes N`) and no GPU: `use_cpu`, so that Accelerate
  joins them with gloo instead of each process training alone and all writing one output_dir.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

from ..utils.device import cpu_has_native_bf16, has_accelerator

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrecisionDecision:
    asked: str  # fp16, bf16 or fp32
    fp16: bool
    bf16: bool
    use_cpu: bool
    notes: tuple[str, ...] = ()

    @property
    def precision(self) -> str:
        """What training runs in, e.g. 'bf16 on cpu' (logs and all_results.json)."""
        device = "cuda" if torch.cuda.is_available() and not self.use_cpu else "cpu"
        return f"{'fp16' if self.fp16 else 'bf16' if self.bf16 else 'fp32'} on {device}"


def decide(fp16: bool, bf16: bool, use_cpu: bool, processes: int, cuda: bool, accelerator: bool,
           native_bf16: bool) -> PrecisionDecision:
    """The policy above, for a request (fp16, bf16, use_cpu), `processes` launched and the machine's facts."""
    asked, notes = "fp16" if fp16 else "bf16" if bf16 else "fp32", []
    if not use_cpu and processes > 1 and not accelerator:
        notes.append(f"{processes} processes and no GPU: training on the CPUs with gloo (use_cpu).")
        use_cpu = True
    on_gpu = cuda and not use_cpu
    if fp16 and not on_gpu:
        fp16, bf16 = False, native_bf16
        notes.append("fp16 was asked for but there is no CUDA device; fp16 does nothing on a CPU. " + (
            "Using bf16 on the CPU instead (native bf16 here)." if bf16 else
            "This CPU has no native bf16 (no AVX512-BF16/AMX), where bf16 runs ~20x slower than fp32, so training "
            "runs in fp32."))
    elif bf16 and not on_gpu and not native_bf16:
        notes.append("bf16 on a CPU without native bf16 (no AVX512-BF16/AMX) is emulated and much slower than fp32 "
                     "here; drop --bf16 unless you need it.")
    if bf16 and not on_gpu:
        use_cpu = True  # transformers only allows bf16 without a GPU through use_cpu
    return PrecisionDecision(asked, fp16, bf16, use_cpu, tuple(notes))


def apply_precision_policy(args) -> PrecisionDecision:
    """Decide for `args` (TrainingArguments before their own validation), set fp16/bf16/use_cpu/pinning, log why.
    The process count is the launcher's WORLD_SIZE (torchrun's contract), as transformers reads LOCAL_RANK."""
    decision = decide(args.fp16, args.bf16, args.use_cpu, int(os.environ.get("WORLD_SIZE", "1")),
                      torch.cuda.is_available(), has_accelerator(), cpu_has_native_bf16())
    args.fp16, args.bf16, args.use_cpu = decision.fp16, decision.bf16, decision.use_cpu
    if not (torch.cuda.is_available() and not decision.use_cpu):
        args.dataloader_pin_memory = False  # pinning needs an accelerator; on a CPU it only warns
    for note in decision.notes:
        logger.warning(note)
    return decision
