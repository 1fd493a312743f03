"""--time_budget_minutes: the run is capped at what fits, its randomness untouched, and a resume keeps the cap."""

import json
import shutil

import torch
import train
from safetensors.torch import load_file
from test_train_script import quick_args

from fer_hf.hub.model_card import build_model_card
from fer_hf.training import budget
from fer_hf.training.budget import budget_steps, measure_step_seconds, others_cpu_share


def test_budget_steps_counts_training_and_evaluations():
    # 1 s a step, 10 steps an epoch, batch 8: an evaluation of 80 images costs 80 * 0.3 / 8 = 3 s
    assert budget_steps(1, 1.0, 10, 1000, 8, 0, False) == 60
    assert budget_steps(1, 1.0, 10, 1000, 8, 80, True) == int(60 / 1.3)
    assert budget_steps(1, 1.0, 10, 20, 8, 80, True) == 20  # never more than the recipe asks for
    assert budget_steps(0.001, 5.0, 10, 20, 8, 0, False) == 1  # at least one step


def test_budget_caps_the_run_and_leaves_its_randomness_alone(tmp_path, parquet_folder):
    # 28 training images in batches of 8: 4 steps an epoch, 200 asked for; a 0.24 s budget fits far fewer (a step
    # of this tiny model takes 5-50 ms)
    capped = tmp_path / "capped"
    train.main(quick_args(parquet_folder, capped, "--num_train_epochs", "50", "--time_budget_minutes", "0.004",
                          "--eval_strategy", "no", "--save_strategy", "no", "--cutmix_prob", "0.5"))
    budget = json.loads((capped / "train_args.json").read_text())["time_budget"]
    assert budget["planned_steps"] == 200 and 1 <= budget["max_steps"] < 200 and budget["step_seconds"] > 0
    steps = budget["max_steps"]
    assert json.loads((capped / "trainer_state.json").read_text())["global_step"] == steps
    card = str(build_model_card(str(capped), "org/capped"))
    assert f"| time budget | 0.004 min: {budget['step_seconds']:g} s a step timed, so {steps} of the recipe's 200 steps |" in card
    # the same run asked for those steps directly: the timed probe consumed no random numbers of the run
    plain = tmp_path / "plain"
    train.main(quick_args(parquet_folder, plain, "--num_train_epochs", "50", "--max_steps", str(steps),
                          "--eval_strategy", "no", "--save_strategy", "no", "--cutmix_prob", "0.5"))
    a, b = load_file(capped / "model.safetensors"), load_file(plain / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_keeps_the_steps_the_run_was_sized_to(tmp_path, parquet_folder):
    out = tmp_path / "run"
    args = ("--num_train_epochs", "2", "--eval_strategy", "no", "--save_strategy", "steps", "--save_steps", "2")
    train.main(quick_args(parquet_folder, out, *args, "--max_steps", "4"))  # checkpoints of a run sized to 4 steps
    shutil.rmtree(out / "checkpoint-4")  # as if killed after step 2
    # a budget on resume does not re-time the machine: the checkpoint's schedule (4 steps) stands
    train.main(quick_args(parquet_folder, out, *args, "--time_budget_minutes", "0.0001", "--resume_from_checkpoint"))
    budget = json.loads((out / "train_args.json").read_text())["time_budget"]
    assert budget["resumed"] and budget["max_steps"] == 4
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 4


def _tiny_trainer(tmp_path, **training_args):
    """A one-block ViT's FerTrainer whose training set is three batches of two 32 px images."""
    from fer_hf.models.modeling import ModelArguments, build_model
    from fer_hf.training.trainer import FerTrainer, FerTrainingArguments

    args = FerTrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True, **training_args)
    model = build_model(ModelArguments(init_from="none", image_size=32, patch_size=8, model_args='{"depth": 1}'))
    trainer = FerTrainer(model=model, args=args)
    batch = {"pixel_values": torch.randn(2, 3, 32, 32), "labels": torch.tensor([0, 1])}
    trainer.get_train_dataloader = lambda: [batch] * 3
    return trainer


def test_probe_times_steps_in_the_precision_the_run_trains_in(tmp_path):
    """Accelerate autocasts only the prepared model; the probe's copy must be autocast too, or a bf16 run is
    sized by fp32 steps (1.6x slower on the CPU measured)."""
    trainer = _tiny_trainer(tmp_path, bf16=True)
    seen, compute_loss = [], trainer.compute_loss
    trainer.compute_loss = lambda m, inputs: seen.append(torch.is_autocast_enabled("cpu")) or compute_loss(m, inputs)
    assert measure_step_seconds(trainer, steps=2, warmup=1) > 0
    assert seen == [True] * 3


def test_probe_steps_the_optimizer_the_trainer_builds(tmp_path):
    """The Trainer steps fused AdamW; a for-loop AdamW in the probe made a 0.25 s resnet18 step look 0.415 s."""
    trainer = _tiny_trainer(tmp_path, optim="sgd")
    steps = []

    class CountingSGD(torch.optim.SGD):
        def step(self, closure=None):
            steps.append(self.defaults["lr"])
            return super().step(closure)

    optimizer_cls, kwargs = trainer.get_optimizer_cls_and_kwargs(trainer.args, trainer.model)
    assert optimizer_cls is torch.optim.SGD  # what `optim` asks for, as the Trainer resolves it
    trainer.get_optimizer_cls_and_kwargs = lambda a, m: (CountingSGD, kwargs)
    before = [p.clone() for p in trainer.model.parameters()]
    assert measure_step_seconds(trainer, steps=2, warmup=1) > 0
    assert len(steps) == 3
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))  # a copy was trained


def test_probe_goes_round_a_training_set_smaller_than_its_steps(tmp_path):
    """The probe's 8 warm-up and 8 timed steps all run, even on a training set of three batches."""
    trainer = _tiny_trainer(tmp_path)
    seen, compute_loss = [], trainer.compute_loss
    trainer.compute_loss = lambda m, inputs: seen.append(1) or compute_loss(m, inputs)
    assert measure_step_seconds(trainer) > 0
    assert len(seen) == 16


def test_a_cached_teacher_is_planned_epoch_by_epoch_as_the_cache_warms():
    """cold 1.0 s, warm 0.5 s, two views: epoch e costs 0.5 + 0.5 * 0.5^e a step, so 60 s buy 100 steps, not 60."""
    assert budget_steps(1, 1.0, 10, 1000, 8, 0, False, warm_seconds=0.5, views=2) == 100
    assert budget_steps(1, 1.0, 10, 1000, 8, 0, False, warm_seconds=0.5, views=None) == 60  # views never repeat
    assert budget_steps(1, 1.0, 10, 70, 8, 0, False, warm_seconds=0.5, views=2) == 70  # never more than asked
    assert budget_steps(1, 1.0, 10, 1000, 8, 0, False, warm_seconds=1.2, views=2) == 60  # warm no cheaper: as cold


def test_probe_times_the_same_batches_again_with_the_cache_warm(tmp_path):
    """warm_pass: the timed batches are stepped a second time, and the teacher answers them from its cache."""
    from fer_hf.data.transforms import FerTransform
    from fer_hf.models.modeling import ModelArguments, build_model

    teacher = tmp_path / "teacher"
    tiny = ModelArguments(init_from="none", image_size=32, patch_size=8, model_args='{"depth": 1}')
    build_model(tiny).save_pretrained(teacher)
    trainer = _tiny_trainer(tmp_path / "run", teacher_model=str(teacher))
    cache, hits, scored = trainer.teacher_cache, [], trainer.teacher_logits
    trainer.teacher_logits = lambda x: (scored(x), hits.append(cache.hits))[0]
    cold, warm = measure_step_seconds(trainer, steps=2, warmup=1, warm_pass=True)
    assert cold > 0 and warm > 0
    assert hits[-1] >= 2  # the second pass was served from the cache
    # the probe's answers stay in the cache (they are the teacher's own); its hit counts are not the run's
    assert len(cache.table) > 0 and cache.hits == cache.lookups == 0
    assert FerTransform(32, train=True, rotation=0, color_jitter=0).views == 2  # flips only
    assert FerTransform(32, train=True).views is None and FerTransform(32, train=False).views == 1


def test_a_probe_beside_a_busy_process_says_the_run_is_sized_for_a_busy_machine(tmp_path, monkeypatch, caplog):
    # 10 s of wall time on 2 cores: the machine was busy 12 s, 4 of them this process's own
    assert others_cpu_share((0.0, 0.0, 0.0), (10.0, 4.0, 12.0), cores=2) == 0.4
    assert others_cpu_share((0.0, 0.0, 0.0), (10.0, 4.0, 12.0), cores=2, own=12.0) == 0  # a run of 3 processes
    trainer = _tiny_trainer(tmp_path, time_budget_minutes=1.0, per_device_train_batch_size=2)
    decision = budget.apply_time_budget(trainer, train_images=6, eval_images=0, resume=None)
    assert decision["others_cpu_share"] >= 0  # recorded in train_args.json with the rest of the decision
    # as if another process had kept every core busy all along: the machine's busy time runs with the wall clock
    wall = iter(range(0, 10_000, 10))
    monkeypatch.setattr(budget, "cpu_snapshot", lambda: (w := next(wall), 0.0, w * budget.psutil.cpu_count()))
    decision = budget.apply_time_budget(trainer, train_images=6, eval_images=0, resume=None)
    assert decision["others_cpu_share"] == 1.0 and "sized for a busy machine" in caplog.text


def test_a_student_gets_what_its_teacher_left_of_the_teacher_budget(tmp_path, caplog):
    from fer_hf.models.modeling import ModelArguments, build_model

    teacher = tmp_path / "teacher"
    build_model(ModelArguments(init_from="none", image_size=32, patch_size=8, model_args='{"depth": 1}')).save_pretrained(teacher)
    run = {"time_budget_minutes": 1.0, "per_device_train_batch_size": 2, "teacher_model": str(teacher)}
    # no train_runtime recorded: nothing added, and said so
    trainer = _tiny_trainer(tmp_path / "a", teacher_budget_minutes=42.0, **run)
    assert budget.teacher_leftover_minutes(trainer.args) == 0.0 and "records no whole training time" in caplog.text
    # the teacher trained 35 of its 42 minutes: the student's budget is 1 + 7 minutes
    (teacher / "all_results.json").write_text(json.dumps({"train_runtime": 35 * 60, "eval_accuracy": 0.8}))
    decision = budget.apply_time_budget(trainer, train_images=6, eval_images=0, resume=None)
    assert decision["teacher_leftover_minutes"] == 7.0 and decision["minutes"] == 8.0
    # a resumed teacher recorded only its last part's runtime: nothing is added
    (teacher / "train_args.json").write_text(json.dumps({"time_budget": {"resumed": True}}))
    assert budget.teacher_leftover_minutes(trainer.args) == 0.0
    # unless it kept the time of all its parts (TrainingClock): 30 of 42 minutes, 12 left
    (teacher / "all_results.json").write_text(json.dumps({"train_runtime": 10 * 60, "train_runtime_total": 30 * 60}))
    assert budget.teacher_leftover_minutes(trainer.args) == 12.0
    (teacher / "train_args.json").unlink()
    # a teacher that overran its budget takes nothing away; without teacher_budget_minutes nothing is added
    (teacher / "all_results.json").write_text(json.dumps({"train_runtime": 50 * 60}))
    assert budget.teacher_leftover_minutes(trainer.args) == 0.0
    assert budget.apply_time_budget(_tiny_trainer(tmp_path / "b", **run), 6, 0, None)["minutes"] == 1.0
