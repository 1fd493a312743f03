"""FerTrainer: balanced sampler, CutMix only in training, soft-target loss, precision choice."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from datasets import ClassLabel, Dataset, Features

from fer_hf.evaluation.metrics import classification_metrics, text_report
from fer_hf.models.modeling import ModelArguments, build_model
from fer_hf.training.precision import decide
from fer_hf.training.trainer import (
    EpochWeightedSampler,
    FerTrainer,
    FerTrainingArguments,
    class_weights,
    soft_cross_entropy,
)
from fer_hf.utils.device import cpu_has_native_bf16


def make_trainer(tmp_path, **kw):
    args = FerTrainingArguments(output_dir=str(tmp_path), report_to=[], seed=7, **kw)
    model = build_model(ModelArguments(init_from="none", image_size=32, patch_size=8, model_args='{"depth": 1}'))
    labels = [0] * 90 + [1] * 9 + [6] * 1  # heavily imbalanced
    train = Dataset.from_dict({"label": labels}, features=Features({"label": ClassLabel(num_classes=7)}))
    return FerTrainer(model=model, args=args, train_dataset=train)


def test_balanced_sampler_draws_classes_equally(tmp_path):
    trainer = make_trainer(tmp_path, class_balanced_sampling=True)
    sampler = trainer._get_train_sampler()
    assert isinstance(sampler, EpochWeightedSampler)
    labels = np.asarray(trainer.train_dataset["label"])
    draws = np.concatenate([labels[list(sampler)] for _ in range(30)])
    share = np.bincount(draws, minlength=7)[[0, 1, 6]] / len(draws)
    assert np.allclose(share, 1 / 3, atol=0.05), share
    first = list(sampler)
    assert first == list(sampler)  # same epoch -> same stream (resumable)
    sampler.set_epoch(1)
    assert first != list(sampler)


def test_sampler_off_is_stock(tmp_path):
    assert not isinstance(make_trainer(tmp_path)._get_train_sampler(), EpochWeightedSampler)


def test_class_weights():
    w = class_weights(np.array([0, 0, 0, 1]))
    assert np.isclose(w[:3].sum(), w[3])


def test_cutmix_only_in_training(tmp_path):
    trainer = make_trainer(tmp_path, cutmix_prob=1.0, label_smoothing_factor=0.0)
    model = trainer.model
    x = torch.randn(4, 3, 32, 32)
    y = torch.tensor([0, 1, 2, 3])
    mixed, targets = trainer.training_targets(x.clone(), y)
    assert targets.shape == (4, 7) and torch.allclose(targets.sum(1), torch.ones(4))
    assert not torch.equal(mixed, x) and (targets.max(1).values < 1).all()  # boxes pasted, labels softened
    model.eval()
    with torch.no_grad():
        loss, _out = trainer.compute_loss(model, {"pixel_values": x, "labels": y}, return_outputs=True)
        assert torch.allclose(loss, F.cross_entropy(model(pixel_values=x).logits, y))
    assert model.config.problem_type in (None, "single_label_classification")


def test_logit_adjustment_adds_the_log_prior_in_training_only(tmp_path):
    """Menon et al.: the loss of logits + tau * log(prior); evaluation scores the raw logits."""
    trainer = make_trainer(tmp_path, logit_adjustment=1.0, label_smoothing_factor=0.0)
    prior = np.bincount([0] * 90 + [1] * 9 + [6] * 1, minlength=7).clip(1) / 100
    assert torch.allclose(trainer.log_prior, torch.log(torch.tensor(prior)).float())
    model, x, y = trainer.model, torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 6, 6])
    torch.manual_seed(0)
    model.train()
    loss = trainer.compute_loss(model, {"pixel_values": x, "labels": y})
    torch.manual_seed(0)
    logits = model(pixel_values=x).logits
    assert torch.allclose(loss, F.cross_entropy(logits + trainer.log_prior, y), atol=1e-5)
    assert not torch.allclose(loss, F.cross_entropy(logits, y), atol=1e-3)  # rare classes: larger loss
    model.eval()
    with torch.no_grad():
        assert torch.allclose(trainer.compute_loss(model, {"pixel_values": x, "labels": y}),
                              F.cross_entropy(model(pixel_values=x).logits, y))
    assert make_trainer(tmp_path).log_prior is None


def test_soft_cross_entropy_matches_hard_ce():
    logits = torch.randn(5, 7)
    y = torch.randint(0, 7, (5,))
    assert torch.allclose(soft_cross_entropy(logits, F.one_hot(y, 7).float()), F.cross_entropy(logits, y), atol=1e-6)


def test_label_smoothing_without_cutmix(tmp_path):
    trainer = make_trainer(tmp_path, label_smoothing_factor=0.1)
    _, targets = trainer.training_targets(torch.randn(3, 3, 32, 32), torch.tensor([0, 1, 2]))
    assert torch.allclose(targets[0, 0], torch.tensor(0.9 + 0.1 / 7))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_fp16_on_cpu_is_never_silent(tmp_path, caplog):
    args = FerTrainingArguments(output_dir=str(tmp_path), fp16=True, report_to=[])
    assert not args.fp16 and "does nothing on a CPU" in caplog.text
    if cpu_has_native_bf16():
        assert args.bf16 and args.use_cpu and args.precision == "bf16 on cpu"
    else:  # emulated bf16 is ~20x slower than fp32 on such CPUs
        assert not args.bf16 and args.precision == "fp32 on cpu" and "fp32" in caplog.text


def test_precision_policy_is_a_pure_decision_with_its_reasons():
    cpu = {"cuda": False, "accelerator": False}
    d = decide(fp16=True, bf16=False, use_cpu=False, processes=1, native_bf16=True, **cpu)
    assert (d.asked, d.fp16, d.bf16, d.use_cpu) == ("fp16", False, True, True) and "does nothing" in d.notes[0]
    d = decide(fp16=True, bf16=False, use_cpu=False, processes=1, native_bf16=False, **cpu)
    assert not d.bf16 and not d.use_cpu and "fp32" in d.notes[0]
    d = decide(fp16=False, bf16=False, use_cpu=False, processes=2, native_bf16=False, **cpu)
    assert d.use_cpu and "gloo" in d.notes[0]  # two processes, no GPU: joined on the CPUs, not training alone
    gpu = decide(fp16=True, bf16=False, use_cpu=False, processes=2, cuda=True, accelerator=True, native_bf16=False)
    assert gpu.fp16 and not gpu.use_cpu and not gpu.notes
    assert decide(False, True, False, 1, False, False, False).notes[0].startswith("bf16 on a CPU without native")


def test_metrics_and_report():
    m = classification_metrics([0, 0, 1, 2, 6], [0, 1, 1, 2, 6])
    assert m["accuracy"] == 0.8 and m["support_anger"] == 2 and m["recall_anger"] == 0.5
    assert m["support_neutral"] == 0  # absent classes do not count in the macro average
    assert np.isclose(m["macro_f1"], np.mean([2 / 3, 2 / 3, 1, 1]))
    report = text_report([0, 0, 1, 2, 6], [0, 1, 1, 2, 6])
    assert "macro avg" in report and "weighted avg" in report and "surprise" in report


def test_vote_targets_are_smoothed_and_cutmixed_like_labels(tmp_path, monkeypatch):
    trainer = make_trainer(tmp_path, cutmix_prob=0.0, label_smoothing_factor=0.1)
    y = torch.tensor([0, 1, 2, 3])
    votes = torch.tensor([[0.5, 0.5, 0, 0, 0, 0, 0]] * 4)
    _, targets = trainer.training_targets(torch.randn(4, 3, 32, 32), y, votes)
    assert torch.allclose(targets[0], votes[0] * 0.9 + 0.1 / 7)
    mixing = make_trainer(tmp_path, cutmix_prob=1.0, label_smoothing_factor=0.0)
    np.random.seed(0)
    x = torch.randn(4, 3, 32, 32)
    mixed, targets = mixing.training_targets(x.clone(), y, F.one_hot(y, 7).float())
    np.random.seed(0)
    np.random.random()  # the draw that decided to mix
    # timm's own Mixup (cutmix only) on the same box; its own "mix or not" draw is stubbed: ours decided already
    from timm.data import Mixup

    monkeypatch.setattr(np.random, "rand", lambda: 0.0)
    timm_cutmix = Mixup(mixup_alpha=0.0, cutmix_alpha=1.0, prob=1.0, switch_prob=0.0, label_smoothing=0.0, num_classes=7)
    reference_x, reference = timm_cutmix(x.clone(), y)
    assert torch.equal(mixed, reference_x) and torch.allclose(targets, reference)


def _teacher_folder(tmp_path):
    teacher = build_model(ModelArguments(architecture="resnet10t", init_from="none", image_size=40))
    teacher.config.pretrained_cfg["mean"], teacher.config.pretrained_cfg["std"] = [0.4] * 3, [0.2] * 3
    folder = tmp_path / "teacher"
    teacher.save_pretrained(folder)
    (folder / "all_results.json").write_text('{"eval_accuracy": 0.8, "eval_macro_f1": 0.7, "train_loss": 1.0}')
    return folder


def test_teacher_is_frozen_and_sees_the_students_batch_in_its_own_preprocessing(tmp_path):
    from fer_hf.training.distill import teacher_record

    trainer = make_trainer(tmp_path, teacher_model=str(_teacher_folder(tmp_path)), distillation_alpha=1.0)
    teacher = trainer.teacher
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in teacher.parameters() if p.dim() == 4)
    x = torch.randn(4, 3, 32, 32)  # the student's normalisation (ViT: mean 0.5, std 0.5) at 32 px
    seen = trainer.teacher_input(x)
    assert seen.shape == (4, 3, 40, 40)
    pixels = x * 0.5 + 0.5  # what the student's batch means in [0, 1]
    expected = F.interpolate((pixels - 0.4) / 0.2, size=(40, 40), mode="bilinear", antialias=True)
    assert torch.allclose(seen, expected, atol=1e-5)
    assert teacher_record(trainer.args.teacher_model, teacher)["validation"] == {"eval_accuracy": 0.8, "eval_macro_f1": 0.7}
    # alpha 1: the loss is the teacher term alone, and its gradient reaches only the student
    trainer.model.train()
    loss = trainer.compute_loss(trainer.model, {"pixel_values": x, "labels": torch.tensor([0, 1, 2, 3])})
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters()) and trainer.teacher_seconds > 0


def test_teacher_cache_answers_a_repeated_view_as_the_teacher_would(tmp_path):
    teacher = str(_teacher_folder(tmp_path))
    trainer = make_trainer(tmp_path, teacher_model=teacher)
    cache = trainer.teacher_cache
    x = torch.randn(4, 3, 32, 32)
    flipped = x.flip(-1)
    with torch.no_grad():
        direct = trainer.teacher(pixel_values=trainer.teacher_input(torch.cat([x, flipped]))).logits
    first = trainer.teacher_logits(x)
    assert cache.hits == 0 and len(cache.table) == 4
    # a batch mixing seen views and new ones (the other flip): the teacher scores only the new rows
    scored = []
    second = cache(torch.cat([flipped[:2], x]), lambda rows: scored.append(len(rows)) or trainer.teacher(
        pixel_values=trainer.teacher_input(rows)).logits)
    assert scored == [2] and cache.hits == 4 and len(cache.table) == 6
    assert torch.allclose(first, direct[:4], atol=1e-5)
    # channels-last (load_teacher's layout) answers as the layout the teacher was saved in
    from transformers import AutoModelForImageClassification

    saved = AutoModelForImageClassification.from_pretrained(teacher).eval()
    with torch.no_grad():
        assert torch.allclose(saved(pixel_values=trainer.teacher_input(x)).logits, direct[:4], atol=1e-4)
    assert torch.allclose(second, torch.cat([direct[4:6], direct[:4]]), atol=1e-5)
    trainer.log({"loss": 1.0})  # training logs carry the hit rate
    assert trainer.state.log_history[-1]["teacher_cache_hits"] == pytest.approx(4 / 10)
    # bounded: a full cache still answers, it only stops remembering
    full = make_trainer(tmp_path / "full", teacher_model=teacher, teacher_cache_size=2)
    assert torch.allclose(full.teacher_logits(x), direct[:4], atol=1e-5) and len(full.teacher_cache.table) == 2
    assert make_trainer(tmp_path / "off", teacher_model=teacher, teacher_cache_size=0).teacher_cache is None


def test_teacher_view_flip_scores_the_unaugmented_face_and_caches_it(tmp_path, caplog):
    """`teacher_view: flip`: the teacher scores `teacher_pixel_values` (the face with its flip only), not the student's
    shifted view, so its answers repeat and the cache serves them; CutMix has no such face and is refused."""
    teacher = str(_teacher_folder(tmp_path))
    trainer = make_trainer(tmp_path, teacher_model=teacher, teacher_view="flip", distillation_alpha=1.0)
    x, face = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        expected = trainer.teacher(pixel_values=trainer.teacher_input(face)).logits
    scored = []
    trainer.teacher_logits = lambda seen: scored.append(seen) or expected
    trainer.model.train()
    trainer.compute_loss(trainer.model, {"pixel_values": x, "teacher_pixel_values": face, "labels": torch.arange(4)})
    assert torch.equal(scored[0], face)
    with pytest.raises(ValueError, match="teacher_view"):
        FerTrainingArguments(output_dir=str(tmp_path), teacher_view="flip", cutmix_prob=0.5)
    with pytest.raises(ValueError, match="teacher_view"):
        FerTrainingArguments(output_dir=str(tmp_path), teacher_view="clean")
    make_trainer(tmp_path / "nocache", teacher_model=teacher, teacher_view="flip", teacher_cache_size=0)
    assert "without a teacher cache" in caplog.text


def test_math_attention_matches_the_fused_kernel():
    from fer_hf.training.trainer import use_math_attention

    model = build_model(ModelArguments(init_from="none", image_size=32, patch_size=8, model_args='{"depth": 2}')).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        fused = model(pixel_values=x).logits
        assert use_math_attention(model) == 2 and use_math_attention(model) == 0  # switched once, then nothing left
        assert torch.allclose(model(pixel_values=x).logits, fused, atol=1e-5)


def test_distillation_losses():
    from fer_hf.training.distill import distillation_loss

    s, t = torch.randn(5, 7), torch.randn(5, 7)
    base = torch.tensor(2.0)
    kl = (F.softmax(t / 2, -1) * (F.log_softmax(t / 2, -1) - F.log_softmax(s / 2, -1))).sum(-1).mean() * 4
    assert torch.allclose(distillation_loss(s, t, base, "soft", 0.25, 2.0), 0.75 * base + 0.25 * kl, atol=1e-5)
    hard = F.cross_entropy(s, t.argmax(-1))
    assert torch.allclose(distillation_loss(s, t, base, "hard", 0.5, 1.0), 0.5 * base + 0.5 * hard)
    assert distillation_loss(t, t, torch.tensor(0.0), "soft", 1.0, 3.0).abs() < 1e-6  # student = teacher: no loss


def test_bad_teacher_and_distillation_settings_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="teacher_model"):
        make_trainer(tmp_path, teacher_model=str(tmp_path / "nowhere"))
    assert FerTrainingArguments(output_dir=str(tmp_path), teacher_model="none").teacher_model is None  # a recipe's teacher, off
    with pytest.raises(ValueError, match="distillation_type"):
        FerTrainingArguments(output_dir=str(tmp_path), distillation_type="medium")
    with pytest.raises(ValueError, match="distillation_alpha"):
        FerTrainingArguments(output_dir=str(tmp_path), distillation_alpha=1.5)


def test_distillation_token_head_learns_the_teacher(tmp_path):
    """DeiT's distilled ViT: the class token learns the targets, the distillation token the teacher."""
    args = FerTrainingArguments(output_dir=str(tmp_path / "s"), report_to=[], teacher_model=str(_teacher_folder(tmp_path)),
                                distillation_alpha=1.0)
    model = build_model(ModelArguments(architecture="deit_tiny_distilled_patch16_224", init_from="none", image_size=32,
                                       patch_size=8, model_args='{"depth": 1}'))
    trainer = FerTrainer(model=model, args=args, train_dataset=Dataset.from_dict({"label": [0, 1]}))
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    model.train()
    _cls_logits, _dist_logits = model(pixel_values=x).logits
    loss = trainer.compute_loss(model, {"pixel_values": x, "labels": y})
    loss.backward()  # alpha 1: only the distillation head (and the shared trunk) gets a gradient
    head, head_dist = model.timm_model.head.weight.grad, model.timm_model.head_dist.weight.grad
    assert (head is None or head.abs().sum() == 0) and head_dist.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        single = model(pixel_values=x).logits  # eval: one tensor, the two heads averaged
    assert torch.is_tensor(single) and single.shape == (4, 7)


def test_training_clock_counts_every_part_of_a_resumed_run():
    from transformers import TrainerControl, TrainerState

    from fer_hf.training.callbacks import TrainingClock

    first = TrainingClock()
    state = TrainerState(stateful_callbacks=[first])  # a fresh run: what Trainer builds
    first.on_train_begin(None, state, TrainerControl())
    first.start -= 30.0  # as if it had trained 30 s
    saved = first.state()  # what a checkpoint's trainer_state.json keeps
    assert saved["attributes"]["before"] == pytest.approx(30.0, abs=0.5) and saved["attributes"]["whole"]

    second = TrainingClock()  # the resumed process, reading that checkpoint
    second.on_train_begin(None, TrainerState(stateful_callbacks={"TrainingClock": saved}), TrainerControl())
    second.start -= 10.0
    second.on_train_end(None, None, None)
    assert second.seconds() == pytest.approx(40.0, abs=0.5) and second.whole

    # a checkpoint written before the clock: only this part is counted, and it says so (FerTrainer adds its key)
    old = TrainerState(stateful_callbacks={"TrainerControl": TrainerControl().state()})
    third = TrainingClock()
    third.on_train_begin(None, old, TrainerControl())
    assert not third.whole
