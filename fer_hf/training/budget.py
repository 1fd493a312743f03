"""A training run sized to a time budget on the machine it runs on (`--time_budget_minutes`).

CPUs of the same kind differ several-fold here (native bf16 with AMX, or fp32 on AVX2 only), so a recipe that
fits 45 minutes on one takes two hours on another. With a budget, `scripts/train.py` times a few real training
steps before it starts (the run's own data pipeline, augmentation, teacher and precision, on a throwaway copy of
the model, with every random state put back afterwards) and caps `max_steps` at what fits, evaluations included.
The schedule (warm-up, cosine) is then laid over the capped steps, so the run still anneals. A resumed run keeps
the cap its checkpoint was trained with: the schedule must not change halfway. A student given
`teacher_budget_minutes` (its teacher recipe's budget) also gets whatever of it the teacher's training left unused,
so that the two recipes together spend their whole budget.
"""

from __future__ import annotations

import copy
import logging
import math
import random
import time

import numpy as np
import psutil
import torch

from ..models.run_folder import RunFolder

logger = logging.getLogger(__name__)

# Forward passes only, at inference batch size: an evaluation image costs about this share of a training image.
EVAL_COST = 0.3
# Other processes keeping more than this share of the machine's cores busy during the probe: it was not idle
# (docs/decisions.md, "Budget probe times what the run will do").
BUSY_SHARE = 0.25


def cpu_snapshot() -> tuple[float, float, float]:
    """(wall seconds, this process's CPU seconds, CPU seconds every process has kept the machine busy) now."""
    t = psutil.cpu_times()
    total = sum(t) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)  # guest time is counted in user too
    return time.perf_counter(), time.process_time(), total - t.idle - getattr(t, "iowait", 0.0)


def others_cpu_share(before: tuple, after: tuple, cores: int | None = None, own: float | None = None) -> float:
    """The share of the machine's cores that other processes kept busy between two `cpu_snapshot`s; `own`: the CPU
    seconds of this run's processes (all of them in a multi-process run), else this process's."""
    wall, mine, busy = (b - a for a, b in zip(before, after))
    return max(0.0, busy - (mine if own is None else own)) / max(wall * (cores or psutil.cpu_count() or 1), 1e-9)


def measure_step_seconds(trainer, steps: int = 8, warmup: int = 8, warm_pass: bool = False):
    """Median wall-clock seconds of one training step (data loading, loss with teacher, backward, clipping, the
    optimizer the run builds) over `steps` batches of the run's own train dataloader, after `warmup` batches.
    Trains a copy of the model; the trainer, its model and every random number generator are left as they were.

    The warm-up is long because a fresh process's first steps are slow (docs/decisions.md, "Budget probe warm-up").
    The teacher cache (fer_hf/training/distill.py) is cold for these batches; with `warm_pass` the same batches are
    stepped again (their views repeat, so the teacher answers from the cache) and (cold, warm) is returned: what a
    step costs in the first epoch and once every view has been scored."""
    states = (random.getstate(), np.random.get_state(), torch.random.get_rng_state())
    model = copy.deepcopy(trainer.model).train()
    if trainer.args.torch_compile:  # the compiled steps the run will take; the warm-up absorbs the compilation
        model = torch.compile(model, backend=trainer.args.torch_compile_backend or "inductor",
                              mode=trainer.args.torch_compile_mode)
    # The optimizer the Trainer itself will build (fused AdamW by default; docs/decisions.md, "Budget probe").
    optimizer_cls, optimizer_kwargs = trainer.get_optimizer_cls_and_kwargs(trainer.args, model)
    optimizer = optimizer_cls([p for p in model.parameters() if p.requires_grad], **{**optimizer_kwargs, "lr": 1e-6})
    teacher_seconds, started = trainer.teacher_seconds, trainer.train_started
    cache = trainer.teacher_cache  # its answers are the teacher's own and stay; its hit counts are the run's alone
    counts = (cache.hits, cache.lookups) if cache is not None else None

    def step(inputs) -> float:
        start = time.perf_counter()
        # Accelerate's autocast wraps only the prepared model's forward, and this copy is not prepared: without it
        # the probe timed fp32 steps of a bf16 run (docs/decisions.md, "Budget probe").
        with trainer.compute_loss_context_manager(), trainer.accelerator.autocast():
            loss = trainer.compute_loss(model, {k: v.clone() if torch.is_tensor(v) else v for k, v in inputs.items()})
        loss.backward()
        if trainer.args.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), trainer.args.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    times, timed = [], []
    try:
        loader = trainer.get_train_dataloader()
        batches = iter(loader)
        for i in range(warmup + steps):
            start = time.perf_counter()
            try:
                inputs = next(batches)
            except StopIteration:  # a training set smaller than the probe: go round it again
                batches = iter(loader)
                inputs = next(batches, None)
                if inputs is None:
                    break
            loading = time.perf_counter() - start
            seconds = loading + step(inputs)
            if i == 0:
                logger.info("Time budget: the probe's first step took %.1f s (kernel set-up%s)", seconds,
                            ", compilation" if trainer.args.torch_compile else "")
            if i >= warmup:
                times.append(seconds)
                timed.append((inputs, loading))
        warm = [loading + step(inputs) for inputs, loading in timed] if warm_pass else []
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.random.set_rng_state(states[2])
        trainer.teacher_seconds, trainer.train_started = teacher_seconds, started
        if cache is not None:
            cache.hits, cache.lookups = counts
    if not times:
        raise ValueError("time budget: the training set gave no batch to time")
    return (float(np.median(times)), float(np.median(warm))) if warm_pass else float(np.median(times))


def planned_steps(args, train_images: int) -> tuple[int, int, int]:
    """(images a step, optimizer steps per epoch, steps the arguments ask for) as Trainer computes them."""
    batch = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
    per_epoch = max(1, math.ceil(train_images / batch) if not args.dataloader_drop_last else train_images // batch)
    total = args.max_steps if args.max_steps > 0 else math.ceil(args.num_train_epochs * per_epoch)
    return batch, per_epoch, total


def budget_steps(budget_minutes: float, step_seconds: float, per_epoch: int, planned: int, batch: int,
                 eval_images: int, evaluate_every_epoch: bool, warm_seconds: float | None = None,
                 views: int | None = None) -> int:
    """The most steps, at most `planned`, whose training and evaluations fit `budget_minutes`.

    With a teacher cache and `views` distinct views of each image (2 with flip-only augmentation), a step of epoch e
    (from 0) misses the cache with probability (1 - 1/views)^e, so it costs warm + (cold - warm) * that: the run is
    planned epoch by epoch as the cache warms instead of at the first epoch's price."""
    budget = budget_minutes * 60
    eval_seconds = eval_images * EVAL_COST * (warm_seconds or step_seconds) / batch if evaluate_every_epoch else 0.0
    if warm_seconds is None or not views or warm_seconds >= step_seconds:
        per_step = step_seconds + eval_seconds / per_epoch  # an evaluation's cost spread over its epoch's steps
        return max(1, min(planned, int(budget / per_step)))
    steps, epoch = 0, 0
    while steps < planned:
        per_step = warm_seconds + (step_seconds - warm_seconds) * (1 - 1 / views) ** epoch + eval_seconds / per_epoch
        fit = min(per_epoch, planned - steps, int(budget / per_step))
        steps, budget, epoch = steps + fit, budget - fit * per_step, epoch + 1
        if fit < per_epoch:
            break
    return max(1, steps)


def resumed_max_steps(checkpoint: str) -> int | None:
    """The `max_steps` a checkpoint was trained towards (its trainer_state.json)."""
    steps = RunFolder.read(checkpoint, require_model=False).state.get("max_steps")
    return int(steps) if isinstance(steps, int) else None


def teacher_leftover_minutes(args) -> float:
    """The minutes of the teacher recipe's budget (`teacher_budget_minutes`) that the teacher's training left unused,
    by the training time its folder recorded (all parts of a resumed run); 0 without a teacher, that budget or that
    record."""
    if not (args.teacher_budget_minutes and args.teacher_model):
        return 0.0
    runtime = RunFolder.read(args.teacher_model, require_model=False).train_seconds
    if runtime is None:
        logger.info("Time budget: %s records no whole training time (none, or resumed before it was kept), so "
                    "nothing of the teacher's budget is added", args.teacher_model)
        return 0.0
    return max(0.0, args.teacher_budget_minutes - runtime / 60)


def apply_time_budget(trainer, train_images: int, eval_images: int, resume: str | None,
                      views: int | None = None) -> dict | None:
    """Cap `trainer.args.max_steps` to the time budget; returns what was decided (for train_args.json). `views`:
    distinct views of each training image (FerTransform.views), which with a teacher cache plan the warm steps."""
    args = trainer.args
    if not args.time_budget_minutes:
        return None
    leftover = teacher_leftover_minutes(args)
    minutes = args.time_budget_minutes + leftover
    if leftover:
        logger.info("Time budget: %g min, and %.1f min the teacher's training left of its %g: %.1f min",
                    args.time_budget_minutes, leftover, args.teacher_budget_minutes, minutes)
    batch, per_epoch, planned = planned_steps(args, train_images)
    if resume:
        steps = resumed_max_steps(resume)
        if steps:
            args.max_steps = steps
            logger.info("Time budget: resuming with the %d steps the run was sized to", steps)
            recorded = RunFolder.read(args.output_dir, require_model=False).budget or {}
            return {**recorded, "minutes": minutes, "max_steps": steps, "planned_steps": planned, "resumed": True}
    # a cache pays only where views repeat: flip-only augmentation and no CutMix (which pastes a fresh box each time)
    cached = trainer.teacher_cache is not None and views and not args.cutmix_prob
    before = cpu_snapshot()
    measured = measure_step_seconds(trainer, warm_pass=bool(cached))
    after = cpu_snapshot()
    # the run's own processes are not "others": their CPU seconds, summed over them, count as this run's
    own = trainer.accelerator.gather(torch.tensor([after[1] - before[1]], dtype=torch.float64)).sum().item()
    others = others_cpu_share(before, after, own=own)
    cold, warm = measured if cached else (measured, None)
    # every process of a multi-process run must lay out the same schedule: the slowest one's step times count
    times = trainer.accelerator.gather(torch.tensor([cold, warm or cold])).view(-1, 2).max(0).values.tolist()
    step_s, warm = times[0], times[1] if cached else None
    steps = budget_steps(minutes, step_s, per_epoch, planned, batch, eval_images,
                         getattr(args.eval_strategy, "value", args.eval_strategy) == "epoch", warm,
                         views if cached else None)
    decision = {"minutes": minutes, "teacher_leftover_minutes": round(leftover, 2),
                "step_seconds": round(step_s, 4), "max_steps": steps, "planned_steps": planned,
                "epochs": round(steps / per_epoch, 2), "others_cpu_share": round(others, 2)}
    if others > BUSY_SHARE:
        logger.warning("Time budget: other processes kept %.0f%% of this machine's cores busy while the steps were "
                       "timed, so the run is sized for a busy machine (%d steps). To size it for this machine alone, "
                       "stop the other work and start again with a new --output_dir (a resumed run keeps its size).",
                       100 * others, steps)
    if cached:
        decision.update(warm_step_seconds=round(warm, 4), views=views)
        logger.info("Time budget: %.3f s a step with a cold teacher cache, %.3f s once warm (%d views an image)",
                    step_s, warm, views)
    if steps < planned:
        args.max_steps = steps
        logger.warning("Time budget %.1f min: %.3f s a step on this machine, so %d of the recipe's %d steps "
                       "(%.1f of %g epochs); the schedule is laid over them.", minutes, step_s, steps, planned,
                       steps / per_epoch, args.num_train_epochs)
    else:
        logger.info("Time budget %.1f min: %.3f s a step on this machine; all %d steps fit.", minutes, step_s, planned)
    return decision
