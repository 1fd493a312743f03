"""FerTrainer: balanced sampler, CutMix only in training, soft-target loss, precision choice."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from datasets import ClassLabel, Dataset, Features, Value

from fer_hf.metrics import classification_metrics, format_report
from fer_hf.modeling import ModelArguments, build_model
from fer_hf.trainer import EpochWeightedSampler, cpu_has_native_bf16, FerTrainer, FerTrainingArguments, class_weights, soft_cross_entropy


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
        loss, out = trainer.compute_loss(model, {"pixel_values": x, "labels": y}, return_outputs=True)
        assert torch.allclose(loss, F.cross_entropy(model(pixel_values=x).logits, y))
    assert model.config.problem_type in (None, "single_label_classification")


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


def test_metrics_and_report():
    m = classification_metrics([0, 0, 1, 2, 6], [0, 1, 1, 2, 6])
    assert m["accuracy"] == 0.8 and m["support_anger"] == 2 and m["recall_anger"] == 0.5
    assert m["support_neutral"] == 0  # absent classes do not count in the macro average
    assert np.isclose(m["macro_f1"], np.mean([2 / 3, 2 / 3, 1, 1]))
    report = format_report(m)
    assert "macro avg" in report and "weighted avg" in report and "surprise" in report
