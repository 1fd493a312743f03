"""Training: `FerTrainer` (transformers' Trainer plus sampling, CutMix, vote targets, distillation) and what runs it.

- `trainer`: FerTrainer and FerTrainingArguments; `precision`: the device and precision policy, explicit and logged.
- `distill`: the frozen teacher, its input adapter and logit cache, the distillation losses.
- `callbacks`: the confusion matrix in TensorBoard, per-source results; `budget`: a run sized to a time budget.
- `recipes`: YAML recipes read by HfArgumentParser; `launch`: `accelerate launch` on a machine without a GPU.

May import: data, models, evaluation, utils. Never imported by inference, export or hub.
"""
