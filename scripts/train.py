"""Fine-tune a timm network on facial expressions with FerTrainer.

    accelerate launch scripts/train.py scripts/configs/quickstart.yaml [--key value ...]

The YAML recipe holds ModelArguments, DataArguments and FerTrainingArguments; command-line flags
override it. Writes the model folder, `all_results.json` and TensorBoard logs to `output_dir`;
a killed run continues from its last complete checkpoint (`--resume_from_checkpoint`, or
automatically when `output_dir` already holds checkpoints).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import asdict, replace

import torch
import transformers
from transformers import EarlyStoppingCallback, set_seed

from fer_hf.data.sources import DataArguments, build_datasets, class_counts, format_class_counts
from fer_hf.data.transforms import FerCollator, FerTransform
from fer_hf.evaluation.metrics import compute_metrics, text_report
from fer_hf.evaluation.suite import flat_metrics, format_suite, score_suite, suite_sets
from fer_hf.inference.pipeline import PipelineConfig
from fer_hf.models.modeling import ModelArguments, build_model, preprocessing_config
from fer_hf.training.budget import apply_time_budget
from fer_hf.training.callbacks import ConfusionMatrixCallback, TrainingClock, eval_predictions, per_source_eval_metrics
from fer_hf.training.distill import teacher_record
from fer_hf.training.launch import fix_cpu_launch
from fer_hf.training.preflight import check_hub_first, resume_point
from fer_hf.training.recipes import parse_args
from fer_hf.training.trainer import FerTrainer, FerTrainingArguments

logger = logging.getLogger("fer_hf.train")


def setup_logging(args: FerTrainingArguments) -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        handlers=[logging.StreamHandler(sys.stdout)])
    level = logging.INFO if args.should_log else logging.WARNING
    logging.getLogger("fer_hf").setLevel(level)
    transformers.utils.logging.set_verbosity(level)


def main(argv: list[str] | None = None) -> dict:
    model_args, data_args, args = parse_args(
        (ModelArguments, DataArguments, FerTrainingArguments),
        sys.argv[1:] if argv is None else argv,
        bare_flags={"--resume_from_checkpoint": "last"},
    )
    setup_logging(args)
    check_hub_first(args)
    set_seed(args.seed)
    logger.info("Precision: %s, %d CPU threads", args.precision, torch.get_num_threads())

    resume = resume_point(args)
    # first: a bad init_from fails in seconds, before data loading. When resuming, the checkpoint brings
    # the weights, so init_from is not fetched again (it may be offline) but is still recorded.
    model = build_model(replace(model_args, init_from="none") if resume else model_args)
    model.config.fer_init_from = model_args.init_from
    # the served pipeline's settings (detection, the crop framed as FER2013's) travel with the model
    pipeline = replace(PipelineConfig.from_model_config(model.config), grayscale=data_args.grayscale)
    model.config.fer_pipeline = pipeline.serving_entry()
    data = build_datasets(data_args, seed=args.seed)
    counts = class_counts(data)
    logger.info("Images per split, source and class:\n%s", format_class_counts(counts))
    pre = preprocessing_config(model.config)
    train_transform = FerTransform(pre["image_size"], train=True, seed=args.seed, **data_args.augmentation(),
                                   teacher_view=bool(args.teacher_model) and args.teacher_view == "flip")
    data["train"].set_transform(train_transform)
    data["validation"].set_transform(FerTransform(pre["image_size"], train=False))

    callbacks = [TrainingClock()]  # train_runtime counts only this process's part of a resumed run
    if args.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=args.early_stopping_patience))
    trainer = FerTrainer(
        model=model, args=args, train_dataset=data["train"], eval_dataset=data["validation"],
        data_collator=FerCollator(pre["mean"], pre["std"], pre["image_size"], pre["grayscale"]),
        compute_metrics=compute_metrics, callbacks=callbacks,
    )
    teacher = teacher_record(args.teacher_model, trainer.teacher) if trainer.teacher is not None else None
    if teacher:  # in config.json, so that the model folder itself says what it was distilled from
        model.config.fer_teacher = teacher
        logger.info("Teacher %s: validation %s", teacher["path"], teacher["validation"] or "not recorded")
    budget = apply_time_budget(trainer, len(data["train"]), len(data["validation"]), resume, train_transform.views)
    if "tensorboard" in args.report_to:  # the eval confusion matrix as an image, next to the scalars
        trainer.add_callback(ConfusionMatrixCallback(trainer))
    if trainer.is_world_process_zero():
        os.makedirs(args.output_dir, exist_ok=True)
        with open(os.path.join(args.output_dir, "class_counts.json"), "w") as f:
            json.dump(counts, f, indent=2)
        # The run's arguments as JSON for the model card (training_args.bin is a pickle); to_json_string()
        # masks hub_token and every other *_token field.
        with open(os.path.join(args.output_dir, "train_args.json"), "w") as f:
            json.dump({"model": asdict(model_args), "data": asdict(data_args),
                       "training": json.loads(args.to_json_string()), "teacher": teacher,
                       "time_budget": budget}, f, indent=2)

    result = trainer.train(resume_from_checkpoint=resume)
    if trainer.ema is not None:  # the average is the model (the best checkpoint's, when the best is loaded)
        best = trainer.state.best_model_checkpoint if args.load_best_model_at_end else None
        trainer.model.load_state_dict(trainer.ema.take_final_weights(best))
    trainer.save_model()
    trainer.save_state()
    train_metrics = dict(result.metrics, precision=args.precision,
                         train_samples=len(data["train"]), skipped_images=trainer.data_collator.skipped)
    # the clock in use (restore_callback_states_from_checkpoint puts a new one in its place)
    clock = next(c for c in trainer.callback_handler.callbacks if isinstance(c, TrainingClock))
    if clock.whole:  # every part of the run, resumes included
        train_metrics["train_runtime_total"] = round(clock.seconds(), 4)
    if teacher:  # measured over this process's training steps (a resumed run: since the resume)
        train_metrics["teacher_share"] = round(trainer.teacher_share() or 0.0, 4)
        if trainer.teacher_cache is not None:
            train_metrics["teacher_cache_hits"] = round(trainer.teacher_cache.hit_rate, 4)
    trainer.log_metrics("train", train_metrics)
    trainer.save_metrics("train", train_metrics)

    eval_metrics = trainer.evaluate()
    predictions = eval_predictions(trainer)  # (labels, probabilities, sources) on the main process
    eval_metrics.update(per_source_eval_metrics(trainer, predictions=predictions))  # eval_<source>_accuracy, ...
    eval_metrics["eval_samples"] = len(data["validation"])
    trainer.log_metrics("eval", eval_metrics)
    trainer.save_metrics("eval", eval_metrics)
    if trainer.is_world_process_zero():
        labels, probs, _ = predictions
        print(f"\nValidation ({len(data['validation'])} images, {args.precision}):\n{text_report(labels, probs.argmax(1))}")
    if data_args.report_sets and trainer.is_world_process_zero():  # reported, after every choice was made
        suite = score_suite(trainer.model, suite_sets(data_args.report_sets), args.per_device_eval_batch_size)
        print(f"Quality suite (FER+ and other domains; reported, never selected on):\n{format_suite(suite)}\n")
        trainer.save_metrics("suite", flat_metrics(suite, "suite_"))  # merged into all_results.json
        eval_metrics.update(flat_metrics(suite, "suite_"))
    return {**train_metrics, **eval_metrics}


if __name__ == "__main__":
    fix_cpu_launch(os.path.abspath(__file__), sys.argv[1:], os.environ)  # `accelerate launch` on a machine without a GPU
    main()
