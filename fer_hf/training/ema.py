"""An exponential moving average of the weights during training (timm's `ModelEmaV3`), resumable.

`EmaCallback` updates the average after every optimizer step, saves it next to each checkpoint (`ema.safetensors`)
and loads it back when a run resumes, so a resumed run averages exactly as an uninterrupted one. FerTrainer
evaluates with the averaged weights (`ema_weights`), so the checkpoint the Trainer keeps as "best" is the best
average, and scripts/train.py saves the average as the model. Decay warms up (timm's 1 - (1 + step)^-2/3), so short
runs are not dominated by their first, random weights.
"""

from __future__ import annotations

import contextlib
import os

import torch
from safetensors.torch import load_file, save_file
from timm.utils import ModelEmaV3
from transformers import TrainerCallback

EMA_FILE = "ema.safetensors"


def ema_state(ema: ModelEmaV3) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in ema.module.state_dict().items()}


class EmaCallback(TrainerCallback):
    def __init__(self, decay: float):
        self.decay, self.ema, self.resume_from = decay, None, None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.ema = ModelEmaV3(model, decay=self.decay, use_warmup=True)
        path = os.path.join(self.resume_from, EMA_FILE) if self.resume_from else None
        if path and os.path.isfile(path):
            self.ema.module.load_state_dict(load_file(path))

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.ema.update(model, step=state.global_step)

    def on_save(self, args, state, control, **kwargs):
        if self.ema is not None and state.is_world_process_zero:
            folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
            if os.path.isdir(folder):
                save_file(ema_state(self.ema), os.path.join(folder, EMA_FILE))

    @contextlib.contextmanager
    def swapped_into(self, model):
        """`model` holds the averaged weights inside the block, its own ones again after it."""
        if self.ema is None:
            yield
            return
        own = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.ema.module.state_dict())
        try:
            yield
        finally:
            model.load_state_dict(own)

    def take_final_weights(self, best_checkpoint: str | None) -> dict[str, torch.Tensor]:
        """The average to save as the model: the best checkpoint's (load_best_model_at_end), else the last one.
        From then on the model is the average: evaluation stops swapping."""
        if best_checkpoint and os.path.isfile(os.path.join(best_checkpoint, EMA_FILE)):
            weights = load_file(os.path.join(best_checkpoint, EMA_FILE))
        else:
            weights = ema_state(self.ema)
        self.ema = None
        return weights
