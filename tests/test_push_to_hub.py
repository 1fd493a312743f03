"""scripts/push_to_hub.py, fer_hf/hub/model_card.py and the hub helpers: what is staged, that it loads in transformers
and timm with the same predictions, that the card's numbers are the measured ones, and that uploads fail fast
and clearly offline (no token, no Hub) without leaking a token or touching the staged folder."""

import importlib.util
import json
import os
import tempfile
import time

import numpy as np
import push_to_hub
import pytest
import timm
import torch
import train
from conftest import ROOT, TINY_MODEL
from huggingface_hub import ModelCard
from PIL import Image
from transformers import AutoModelForImageClassification, pipeline

from fer_hf.data.labels import CLASSES
from fer_hf.hub import model_card, publish
from fer_hf.hub.staging import MissingTokenError
from fer_hf.models.modeling import TEMPERATURE_KEY, read_temperature
from fer_hf.utils import offline
from fer_hf.utils.offline import HubUnreachableError

torch.set_num_threads(1)
FAKE_TOKEN = "hf_fakeTokenForTestsOnly0123456789abcdefXYZ"
REPO = "me/fer-test"
DATA = ["--datasets", "synthetic", "--synthetic_per_class", "10"]
RECIPE = ["--learning_rate", "0.002", "--lr_scheduler_type", "cosine", "--label_smoothing_factor", "0.1",
          "--class_balanced_sampling", "true"]  # explicit: the card must show these whatever the YAML says


def _evaluate_script():
    spec = importlib.util.spec_from_file_location("evaluate_script", ROOT / "scripts" / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny trained model (with checkpoints, training_args.bin, TensorBoard logs), its evaluation, its stage."""
    tmp = tmp_path_factory.mktemp("push")
    model, evals, stage = tmp / "model", tmp / "eval_synth", tmp / "stage"
    train.main([str(ROOT / "scripts/configs/quickstart.yaml"), *DATA, "--output_dir", str(model), *TINY_MODEL,
                "--per_device_train_batch_size", "16", "--max_steps", "4", "--save_steps", "2", "--eval_strategy", "no",
                "--logging_steps", "2", "--report_to", "tensorboard", *RECIPE])
    _evaluate_script().main(["--model", str(model), *DATA, "--validation_split", "0.1", "--output_dir", str(evals),
                             "--tta", "flip", "--temperature", "auto"])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_TOKEN", FAKE_TOKEN)
        result = push_to_hub.main(["--model", str(model), "--repo_id", REPO, "--eval_dir", str(evals),
                                   "--local_dir", str(stage)])
    return {"model": model, "eval": evals, "stage": stage, "result": result,
            "metrics": json.loads((evals / "metrics.json").read_text())}


def test_stages_exactly_the_allowed_files(run):
    model, stage = run["model"], run["stage"]
    assert any(p.name.startswith("checkpoint-") for p in model.iterdir()) and (model / "training_args.bin").exists()
    files = set(run["result"]["files"])
    assert files == {p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file()}
    assert {"README.md", "model.safetensors", "config.json", "all_results.json", "class_counts.json",
            "eval/eval_synth/metrics.json", "eval/eval_synth/report.md", "eval/eval_synth/confusion_matrix.png",
            "eval/eval_synth/reliability.png"} <= files
    assert any(f.startswith("runs/") and "events.out.tfevents." in f for f in files)
    assert not [f for f in files if "checkpoint-" in f or f.endswith((".bin", ".pt", ".pth", ".csv"))]
    # config.json is copied byte for byte: labels, timm pretrained_cfg and the fitted temperature survive
    assert (stage / "config.json").read_bytes() == (model / "config.json").read_bytes()
    assert read_temperature(stage) == read_temperature(model) == run["metrics"]["calibration"]["temperature"]


def test_staged_folder_predicts_like_the_original(run, tmp_path):
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    original = AutoModelForImageClassification.from_pretrained(run["model"]).eval()
    staged = AutoModelForImageClassification.from_pretrained(run["stage"]).eval()
    with torch.no_grad():
        expected = original(pixel_values=x).logits
        torch.testing.assert_close(staged(pixel_values=x).logits, expected, atol=1e-5, rtol=0)
        # timm reads the same folder: config.json (architecture, model_args, labels) + prefix-free weights
        net = timm.create_model(f"local-dir:{run['stage']}", pretrained=True).eval()
        torch.testing.assert_close(net(x), expected, atol=1e-5, rtol=0)
    assert net.pretrained_cfg["label_names"] == list(CLASSES)
    face = tmp_path / "face.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(face)
    want = pipeline("image-classification", model=str(run["model"]), device="cpu")(str(face), top_k=7)
    got = pipeline("image-classification", model=str(run["stage"]), device="cpu")(str(face), top_k=7)
    assert [s["label"] for s in got] == [s["label"] for s in want]
    np.testing.assert_allclose([s["score"] for s in got], [s["score"] for s in want], atol=1e-5)


def _tables(text: str) -> list[list[list[str]]]:
    """Every markdown table of `text` as rows of cells (header first, separator dropped)."""
    tables, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            if not line.startswith("|---"):
                current.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif current:
            tables.append(current)
            current = []
    return tables


def _table(text: str, first_header: str, second_header: str) -> dict[str, list[str]]:
    (table,) = [t for t in _tables(text) if t[0][:2] == [first_header, second_header]]
    return {row[0]: row[1:] for row in table[1:]}


def test_card_metadata_holds_the_measured_headline(run):
    card = ModelCard.load(run["stage"] / "README.md")
    data, m = card.data.to_dict(), run["metrics"]
    assert data["pipeline_tag"] == "image-classification" and data["library_name"] == "transformers"
    assert data["license"] == "apache-2.0" and "demo" in data["tags"]  # synthetic-only training
    results = {r.metric_type: r for r in card.data.eval_results}
    assert set(results) == {"accuracy", "f1"} and results["f1"].metric_args == {"average": "macro"}
    assert results["accuracy"].metric_value == pytest.approx(m["accuracy"], abs=5e-5)
    assert results["f1"].metric_value == pytest.approx(m["macro_f1"], abs=5e-5)
    assert {(r.task_type, r.dataset_type, r.dataset_split) for r in results.values()} == {
        ("image-classification", "synthetic", "validation")}
    assert data["model-index"][0]["name"] == "fer-test"


def test_card_text_numbers_are_those_of_the_files(run):
    text, m = ModelCard.load(run["stage"] / "README.md").text, run["metrics"]
    headline = _table(text, "metric", "single view")
    for key, label in model_card.HEADLINE:
        assert headline[label] == [f"{m[key]:.4f}", f"{m['tta_flip'][key]:.4f}"]
    per_class = _table(text, "class", "precision")
    assert list(per_class) == list(CLASSES)
    for c in CLASSES:
        assert per_class[c] == [f"{m[f'precision_{c}']:.4f}", f"{m[f'recall_{c}']:.4f}", f"{m[f'f1_{c}']:.4f}",
                                str(m[f"support_{c}"])]
    per_source = _table(text, "source", "images")
    assert {s: v[:3] for s, v in per_source.items()} == {
        s: [str(v["n_images"]), f"{v['accuracy']:.4f}", f"{v['macro_f1']:.4f}"] for s, v in m["per_source"].items()}
    counts = json.loads((run["model"] / "class_counts.json").read_text())
    (sizes,) = [t for t in _tables(text) if t[0][:2] == ["split", "source"]]
    assert sizes[1:] == [[split, src, *[str(c[k]) for k in CLASSES], str(sum(c.values()))]
                         for split, per_source_counts in counts.items() for src, c in per_source_counts.items()]
    recipe = _table(text, "setting", "value")
    assert recipe["learning rate"] == ["0.002"] and recipe["scheduler"] == ["cosine"]
    assert recipe["label smoothing"] == ["0.1"] and recipe["class-balanced sampling"] == ["yes"]
    assert recipe["image size"] == ["32 px"] and recipe["patch size"] == ["8"]
    assert recipe["precision"] == [json.loads((run["model"] / "all_results.json").read_text())["precision"]]
    assert f"temperature {m['calibration']['temperature']:.4f}" in text and "`none` — random initialisation" in text
    assert f'timm.create_model("hf-hub:{REPO}", pretrained=True)' in text and "checked: this folder loads" in text
    assert model_card.TEMPERATURE_KEY == TEMPERATURE_KEY


def test_card_without_evaluation_says_so_and_promises_timm_only_when_checked(run):
    card = model_card.build_model_card(str(run["model"]), REPO)
    assert "No evaluation results" in card.text and "model-index" not in card.content
    assert card.data.eval_results is None and "| metric | single view" not in card.text
    assert "import timm" not in card.text  # not checked: no promise
    failed = {"timm": {"ok": False, "version": "1.0", "error": "TypeError: unexpected keyword argument 'img_size'"}}
    text = model_card.build_model_card(str(run["model"]), REPO, files=failed).text
    assert "import timm" not in text and "does not load this model (timm 1.0: TypeError: unexpected" in text


def _snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_upload_offline_fails_fast_and_leaves_the_stage_alone(run, tmp_path):
    before = _snapshot(run["stage"])
    start = time.monotonic()
    with pytest.raises(HubUnreachableError) as err:
        push_to_hub.main(["--model", str(run["model"]), "--repo_id", REPO, "--local_dir", str(run["stage"]), "--upload"])
    assert time.monotonic() - start < 10
    message = str(err.value)
    assert "HF_HUB_OFFLINE" in message and f"({run['stage']} is untouched)" in message
    assert f"`hf upload {REPO} {run['stage']}`" in message and "no `--upload`" in message
    assert _snapshot(run["stage"]) == before
    # without --local_dir: nothing is staged, and the message says how to stage and publish
    temp = set(os.listdir(tempfile.gettempdir()))
    with pytest.raises(HubUnreachableError, match=f"--local_dir STAGE.*hf upload {REPO} STAGE --private --revision v1"):
        push_to_hub.main(["--model", str(run["model"]), "--repo_id", REPO, "--private", "--revision", "v1"])
    assert not [d for d in set(os.listdir(tempfile.gettempdir())) - temp if d.startswith("fer_hf_stage-")]
    with pytest.raises(HubUnreachableError):
        push_to_hub.main(["--model", str(run["model"]), "--repo_id", REPO, "--local_dir", str(tmp_path / "new"), "--upload"])
    assert not (tmp_path / "new").exists()


def test_no_token_is_a_clear_error_before_uploading(run, tmp_path, monkeypatch):
    monkeypatch.setattr(offline, "hub_problem", lambda timeout=3.0: None)  # pretend the Hub is reachable
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_TOKEN_PATH", str(tmp_path / "none"))
    monkeypatch.setattr("huggingface_hub.constants.HF_STORED_TOKENS_PATH", str(tmp_path / "none2"))
    with pytest.raises(MissingTokenError, match="HF_TOKEN or run `hf auth login`") as err:
        push_to_hub.main(["--model", str(run["model"]), "--repo_id", REPO, "--local_dir", str(tmp_path / "s"), "--upload"])
    assert f"hf upload {REPO} {tmp_path / 's'}" in str(err.value) and not (tmp_path / "s").exists()


def test_upload_is_one_commit_of_the_staged_folder(run, monkeypatch):
    calls = []

    class RecordingApi:  # stands in for the Hub, which no test machine reaches
        def __init__(self, token=None):
            calls.append(("token", token))

        def create_repo(self, repo_id, private=None, exist_ok=False):
            calls.append(("create_repo", repo_id, private, exist_ok))

        def create_branch(self, repo_id, branch, exist_ok=False):
            calls.append(("create_branch", repo_id, branch, exist_ok))

        def upload_folder(self, repo_id, folder_path, revision=None, commit_message=None, delete_patterns=None):
            calls.append(("upload_folder", repo_id, sorted(publish.staged_files(folder_path)), revision))
            calls.append(("delete", delete_patterns))
            return type("CommitInfo", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/abc"})()

    monkeypatch.setattr(offline, "hub_problem", lambda timeout=3.0: None)
    monkeypatch.setattr("huggingface_hub.HfApi", RecordingApi)
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    result = push_to_hub.main(["--model", str(run["model"]), "--repo_id", REPO, "--eval_dir", str(run["eval"]),
                               "--private", "--revision", "v1"])
    assert result["uploaded"] and result["commit_url"].endswith("/commit/abc") and result["stage"] is None
    assert calls[:3] == [("token", FAKE_TOKEN), ("create_repo", REPO, True, True), ("create_branch", REPO, "v1", True)]
    assert calls[3] == ("upload_folder", REPO, sorted(run["result"]["files"]), "v1") and len(calls) == 5
    assert "training_args.bin" in calls[4][1]  # what an earlier `train.py --push_to_hub` left goes, same commit


def test_no_token_in_staged_folder_or_output(run, tmp_path, capsys, caplog, monkeypatch):
    needle = FAKE_TOKEN.encode()
    assert not [p for p in run["stage"].rglob("*") if p.is_file() and needle in p.read_bytes()]
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    push_to_hub.main(["--model", str(run["model"]), "--repo_id", REPO, "--local_dir", str(tmp_path / "s")])
    assert FAKE_TOKEN not in capsys.readouterr().out + caplog.text
    # a token that made it into a run's files stops the staging instead of being published
    leaky = tmp_path / "leaky"
    import shutil

    shutil.copytree(run["model"], leaky, ignore=shutil.ignore_patterns("checkpoint-*"))
    (leaky / "all_results.json").write_text(json.dumps({"note": FAKE_TOKEN}))
    with pytest.raises(RuntimeError, match="all_results.json would publish an access token") as err:
        push_to_hub.main(["--model", str(leaky), "--repo_id", REPO, "--local_dir", str(tmp_path / "s2")])
    assert FAKE_TOKEN not in str(err.value) and not (tmp_path / "s2").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".fer_hf_staging-")]


def test_local_dir_is_never_wiped_unless_it_is_a_stage(run, tmp_path):
    args = ["--model", str(run["model"]), "--repo_id", REPO, "--local_dir"]
    with pytest.raises(FileExistsError, match="--overwrite_local_dir"):
        push_to_hub.main([*args, str(run["stage"])])
    push_to_hub.main([*args, str(run["stage"]), "--overwrite_local_dir"])  # a former stage: replaced
    assert not (run["stage"] / "eval").exists()
    push_to_hub.main([*args, str(run["stage"]), "--overwrite_local_dir", "--eval_dir", str(run["eval"])])
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="mine.txt"):
        push_to_hub.main([*args, str(tmp_path), "--overwrite_local_dir"])
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_bad_inputs_name_what_was_expected(run, tmp_path):
    (tmp_path / "m" / "checkpoint-2").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="checkpoint-2"):
        push_to_hub.main(["--model", str(tmp_path / "m"), "--repo_id", REPO, "--local_dir", str(tmp_path / "s")])
    with pytest.raises(FileNotFoundError, match="no metrics.json"):
        push_to_hub.main(["--model", str(run["model"]), "--repo_id", REPO, "--eval_dir", str(tmp_path),
                          "--local_dir", str(tmp_path / "s")])
    with pytest.raises(SystemExit):
        push_to_hub.main(["--model", str(run["model"]), "--repo_id", "no-slash"])


def test_training_with_push_to_hub_refuses_to_start_offline(tmp_path, monkeypatch):
    argv = [str(ROOT / "scripts/configs/quickstart.yaml"), *DATA, "--output_dir", str(tmp_path), *TINY_MODEL,
            "--max_steps", "1", "--push_to_hub", "true", "--hub_model_id", "x/y", "--report_to", "none"]
    start = time.monotonic()
    with pytest.raises(HubUnreachableError, match="push_to_hub.*scripts/push_to_hub.py"):
        train.main(argv)
    assert time.monotonic() - start < 10 and not (tmp_path / "model.safetensors").exists()
    monkeypatch.setattr(offline, "hub_problem", lambda timeout=3.0: None)  # Hub reachable, but no token
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_TOKEN_PATH", str(tmp_path / "none"))
    with pytest.raises(RuntimeError, match="needs a token"):
        train.main(argv)
    assert not (tmp_path / "model.safetensors").exists()


def test_recipe_comes_from_train_args_json_else_says_not_recorded(run, tmp_path):
    import shutil

    bare = tmp_path / "bare"  # no train_args.json, no TensorBoard logs: nothing to read the recipe from
    shutil.copytree(run["model"], bare, ignore=shutil.ignore_patterns("checkpoint-*", "runs", "train_args.json"))
    recipe = _table(model_card.build_model_card(str(bare), REPO).text, "setting", "value")
    assert recipe["learning rate"] == ["not recorded"] and recipe["image size"] == ["32 px"]
    (bare / "train_args.json").write_text(json.dumps({
        "model": {"init_from": "none"}, "data": {"datasets": ["synthetic"]},
        "training": {"learning_rate": 0.0003, "lr_scheduler_type": "linear", "warmup_steps": 50, "cutmix_prob": 0.5,
                     "cutmix_alpha": 1.0, "class_balanced_sampling": False, "per_device_train_batch_size": 64}}))
    text = model_card.build_model_card(str(bare), REPO).text
    recipe = _table(text, "setting", "value")
    assert recipe["learning rate"] == ["0.0003"] and recipe["warm-up"] == ["50 steps"]
    assert recipe["CutMix probability / alpha"] == ["0.5 / 1"] and recipe["class-balanced sampling"] == ["no"]
    assert "from train_args.json" in text and "`--datasets synthetic`" in text


def test_two_evaluations_of_one_split_stay_apart(run, tmp_path):
    result = push_to_hub.main(["--model", str(run["model"]), "--repo_id", REPO, "--local_dir", str(tmp_path / "s"),
                               "--eval_dir", str(run["eval"]), str(run["eval"])])
    assert {"eval/eval_synth/metrics.json", "eval/eval_synth-2/metrics.json"} <= set(result["files"])
    card = ModelCard.load(tmp_path / "s" / "README.md")
    # the Hub keys results by (task, dataset, split): one value per key in the metadata, both in the text
    assert len(card.data.eval_results) == 2 and {r.dataset_name for r in card.data.eval_results} == {"synthetic"}
    assert "### eval_synth\n" in card.text and "### eval_synth-2\n" in card.text


def test_card_of_a_grey_model_says_pipeline_users_must_give_grey_crops(run):
    """EmotionRecognizer greys faces for a model trained on grey ones; `pipeline()` cannot, so the card says so."""
    folder = model_card.RunFolder.read(run["model"])
    assert "grey" not in " ".join(model_card.model_section(folder, None))
    folder.config["fer_pipeline"] = {**folder.config.get("fer_pipeline", {}), "grayscale": True}
    text = " ".join(model_card.model_section(folder, None))
    assert "turned grey" in text and 'convert(\\"L\\")' not in text and '.convert("L")' in text
