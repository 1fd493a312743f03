"""EmotionRecognizer: detection -> crops -> one batched model call; every input type; clear errors."""

import io
import json
import time

import numpy as np
import pytest
import torch
from conftest import save_confident_vit
from PIL import Image
from test_faces import TWO_FACES, YUNET, detectable_scene, needs_yunet, scene

from fer_hf.data.labels import CLASSES
from fer_hf.data.transforms import BadImageError, FerCollator, FerTransform
from fer_hf.inference import explain
from fer_hf.inference.recognizer import EmotionRecognizer, load_image
from fer_hf.models.modeling import TEMPERATURE_KEY
from fer_hf.utils.offline import HubUnreachableError


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_confident_vit(tmp_path_factory.mktemp("tiny_model"), depth=2)


@pytest.fixture(scope="module")
def rec(model_dir):
    return EmotionRecognizer.from_pretrained(model_dir, detector="yunet")  # the YuNet shipped in fer_hf


def count_calls(recognizer, monkeypatch):
    """Wrap the one method that runs the network; returns the list of batch sizes it saw."""
    sizes, real = [], recognizer._logits
    monkeypatch.setattr(recognizer, "_logits", lambda x: sizes.append(len(x)) or real(x))
    return sizes


def reference_probs(model_dir, images, temperature=1.0):
    """What evaluation computes: FerTransform(train=False) -> FerCollator.normalise -> model -> softmax."""
    from transformers import AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(model_dir).eval()
    x = torch.stack([FerTransform(32, train=False).one(im) for im in images])
    x = FerCollator(model.config.pretrained_cfg["mean"], model.config.pretrained_cfg["std"], 32).normalise(x)
    with torch.no_grad():
        return (model(pixel_values=x).logits / temperature).softmax(-1).numpy()


def test_crops_are_predicted_exactly_like_evaluation(model_dir, rec):
    crops = [scene(TWO_FACES).crop((60, 120, 230, 290)), Image.new("RGB", (48, 48), (200, 100, 50))]
    probs = rec.predict_crops(crops)
    assert probs.shape == (2, 7) and np.allclose(probs, reference_probs(model_dir, crops), atol=1e-6)
    assert probs.max() > 0.5  # the scaled head: a meaningful comparison, not two uniform vectors


def test_all_faces_of_a_call_go_through_one_model_call(rec, monkeypatch):
    sizes = count_calls(rec, monkeypatch)
    faces = rec.recognize(detectable_scene("yunet"))
    assert sizes == [2] and len(faces) == 2
    assert faces[0].box[2] * faces[0].box[3] >= faces[1].box[2] * faces[1].box[3]
    for face in faces:
        assert set(face.scores) == set(CLASSES) and abs(sum(face.scores.values()) - 1) < 1e-5
        assert face.emotion == max(face.scores, key=face.scores.get) and face.confidence == face.scores[face.emotion]
        assert 0.5 < face.detection_score <= 1 and abs(face.crop.size[0] - face.crop.size[1]) <= 1  # square, to rounding
    two = detectable_scene("yunet")
    batch = rec.recognize_batch([two, Image.new("RGB", (300, 200), "gray"), two])
    assert sizes == [2, 4] and [len(f) for f in batch] == [2, 0, 2]  # 4 faces of 3 images, one call
    assert [f.emotion for f in batch[2]] == [f.emotion for f in faces]


def test_no_detect_classifies_the_whole_image(model_dir, rec, monkeypatch):
    image = scene(TWO_FACES)
    sizes = count_calls(rec, monkeypatch)
    assert rec.recognize(Image.new("RGB", (320, 240), "gray")) == []  # no face: empty, not a guess
    [face] = rec.recognize(image, detect=False)
    assert face.box == (0, 0, 640, 480) and face.detection_score is None
    assert np.allclose(list(face.scores.values()), reference_probs(model_dir, [image])[0], atol=1e-6)
    assert sizes == [1]  # nothing detected -> no model call at all; then one for the whole image
    no_detector = EmotionRecognizer.from_pretrained(model_dir, detector=None)
    assert no_detector.detector is None and len(no_detector.recognize(image)) == 1


def test_flip_tta_averages_image_and_mirror_in_one_call(model_dir, monkeypatch):
    tta = EmotionRecognizer.from_pretrained(model_dir, detector=None, tta="flip")
    sizes = count_calls(tta, monkeypatch)
    crops = [scene(TWO_FACES).crop((60, 120, 230, 290)), scene(TWO_FACES, seed=4).crop((390, 90, 580, 280))]
    mirrored = [c.transpose(Image.FLIP_LEFT_RIGHT) for c in crops]
    expected = (reference_probs(model_dir, crops) + reference_probs(model_dir, mirrored)) / 2
    assert np.allclose(tta.predict_crops(crops), expected, atol=1e-5) and sizes == [4]
    with pytest.raises(ValueError, match="tta"):
        EmotionRecognizer.from_pretrained(model_dir, detector=None, tta="crops")


def test_stored_temperature_divides_the_logits(model_dir, tmp_path):
    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).write_bytes((model_dir / name).read_bytes())
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, TEMPERATURE_KEY: 3.0}))
    calibrated = EmotionRecognizer.from_pretrained(tmp_path, detector=None)
    assert calibrated.temperature == 3.0
    image = [scene(TWO_FACES).crop((60, 120, 230, 290))]
    probs = calibrated.predict_crops(image)
    assert np.allclose(probs, reference_probs(model_dir, image, temperature=3.0), atol=1e-6)
    assert probs.max() < reference_probs(model_dir, image).max()  # softer than uncalibrated


def test_exif_orientation_is_honoured(rec, tmp_path):
    upright = detectable_scene("yunet")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display": stored sideways
    upright.transpose(Image.ROTATE_90).save(tmp_path / "sideways.png", exif=exif)
    assert np.array_equal(np.asarray(load_image(tmp_path / "sideways.png")), np.asarray(upright))
    assert [f.box for f in rec.recognize(tmp_path / "sideways.png")] == [f.box for f in rec.recognize(upright)]


def test_every_input_type_gives_the_same_answer(rec, tmp_path):
    rgb = scene(TWO_FACES).crop((40, 100, 250, 310))
    arr = np.asarray(rgb)
    rgb.save(tmp_path / "face.png")
    gray = rgb.convert("L")
    same_as_rgb = [rgb, arr, arr.astype(np.float32) / 255, np.dstack([arr, np.full(arr.shape[:2], 255, np.uint8)]),
                   str(tmp_path / "face.png"), tmp_path / "face.png", (tmp_path / "face.png").read_bytes(),
                   rgb.convert("RGBA")]
    same_as_gray = [gray, np.asarray(gray), np.asarray(gray)[:, :, None], np.asarray(gray).astype(np.uint16) * 257]
    want, want_gray = rec.predict_crops([rgb])[0], rec.predict_crops([gray.convert("RGB")])[0]
    for source in same_as_rgb:
        [face] = rec.recognize(source, detect=False)
        assert np.allclose(list(face.scores.values()), want, atol=1e-6), type(source)
    for source in same_as_gray:
        [face] = rec.recognize(source, detect=False)
        assert np.allclose(list(face.scores.values()), want_gray, atol=1e-6), type(source)
    for lossy in (rgb.convert("CMYK"), rgb.convert("P", palette=Image.ADAPTIVE, colors=64)):
        [face] = rec.recognize(lossy, detect=False)
        assert face.box == (0, 0, 210, 210) and set(face.scores) == set(CLASSES)


@pytest.mark.parametrize("bad, message", [
    (np.full((40, 40, 3), np.nan, np.float32), r"<array \(40, 40, 3\) float32> is not a usable image: .*NaN or inf"),
    (np.full((40, 40), np.inf), "NaN or inf"),
    (np.full((40, 40, 3), 2.0), r"values in \[2, 2\]; expected \[0, 1\]"),
    (np.zeros((40, 40, 2), np.uint8), "expected HxW, HxWx3"),
    (np.zeros((0, 40, 3), np.uint8), "expected HxW, HxWx3"),
    (np.zeros((40, 40, 3), np.int64), "dtype int64"),
    (np.zeros((1, 1, 3), np.uint8), "too small"),
    (b"GIF89a but not really", "<21 bytes> is not a usable image"),
    ("no/such/photo.jpg", "'no/such/photo.jpg' is not a usable image"),
    ([[0, 1], [2, 3]], "expected a path, bytes, a PIL image or a numpy array"),
])
def test_bad_inputs_get_clear_errors(rec, bad, message):
    with pytest.raises(BadImageError, match=message):
        rec.recognize(bad)


def test_truncated_file_and_pixel_limit(tmp_path):
    buffer = io.BytesIO()
    scene(TWO_FACES).save(buffer, format="JPEG")
    (tmp_path / "cut.jpg").write_bytes(buffer.getvalue()[:2000])
    with pytest.raises(BadImageError, match="cut.jpg' is not a usable image"):
        load_image(tmp_path / "cut.jpg")
    with pytest.raises(BadImageError, match="over the limit of 0.1 megapixels"):
        load_image(buffer.getvalue(), max_pixels=100_000)  # refused from the header alone


def test_hub_id_offline_fails_fast_and_folders_are_checked(tmp_path):
    start = time.monotonic()
    with pytest.raises(HubUnreachableError, match="local model folder"):
        EmotionRecognizer.from_pretrained("someone/fer-model-not-in-cache", detector=None)
    assert time.monotonic() - start < 10
    (tmp_path / "checkpoint-64").mkdir()  # a run still training: checkpoints, no model yet
    with pytest.raises(FileNotFoundError, match=r"no config.json.*checkpoint-64"):
        EmotionRecognizer.from_pretrained(tmp_path, detector=None)


@needs_yunet
def test_yunet_recognizer_with_alignment(model_dir):
    aligned = EmotionRecognizer.from_pretrained(model_dir, detector="yunet", yunet_model=YUNET, align=True)
    faces = aligned.recognize(detectable_scene("yunet"))
    assert len(faces) == 2 and all(0.5 < f.detection_score <= 1 for f in faces)


def test_attention_rollout_matches_the_model_and_is_drawn(rec):
    image = detectable_scene("yunet")
    faces = rec.recognize(image)
    vit = rec.model.timm_model
    x = rec.pixel_values([f.crop for f in faces])
    captured = []  # reference: the attention timm itself computes, caught on its unfused path
    hooks = [b.attn.attn_drop.register_forward_hook(lambda m, i, o: captured.append(o)) for b in vit.blocks]
    fused = [b.attn.fused_attn for b in vit.blocks]
    try:
        for b in vit.blocks:
            b.attn.fused_attn = False
        with torch.no_grad():
            vit(x)
    finally:
        for h, b, f in zip(hooks, vit.blocks, fused):
            h.remove()
            b.attn.fused_attn = f
    mine = explain.block_attentions(vit, x)
    assert len(mine) == 2 and all(torch.allclose(a, b, atol=1e-5) for a, b in zip(mine, captured))
    maps = explain.face_maps(rec, faces)
    assert [m.shape for m in maps] == [(4, 4)] * 2 and all(m.min() == 0 and m.max() == 1 for m in maps)
    drawn = np.asarray(explain.overlay(image, faces, maps)).astype(int) - np.asarray(image)
    changed = np.argwhere(np.abs(drawn).sum(-1) > 0)
    boxes = [f.crop_box for f in faces]
    assert len(changed) and all(any(l <= x < r and t <= y < b for l, t, r, b in boxes) for y, x in changed[::97])
