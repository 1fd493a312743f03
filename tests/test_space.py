"""The Space: a real Gradio server on 127.0.0.1 driven through gradio_client, and its page in headless Chromium."""

import importlib.util
import io
import json
import os
import shutil
import socket
import struct
import zlib

import cv2
import numpy as np
import pytest
import torch
from conftest import ROOT
from PIL import Image

from fer_hf.data.labels import CLASSES
from fer_hf.inference.recognizer import EmotionRecognizer
from fer_hf.models.modeling import ModelArguments, build_model

CHROMIUM = "/usr/bin/chromium"


def load_app():
    """space/app.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("fer_space_app", ROOT / "space" / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SYNTHETIC_COUNTS = {"train": {"synthetic_fer": {c: 20 for c in CLASSES}, "synthetic_raf": {c: 10 for c in CLASSES}},
                    "validation": {"synthetic_fer": {c: 4 for c in CLASSES}}}


def tiny_model_folder(folder, counts=SYNTHETIC_COUNTS, accuracy=0.9123):
    """A tiny random model saved with the files a training run writes about itself."""
    tiny = ModelArguments(init_from="none", image_size=32, patch_size=8, model_args='{"depth": 1}')
    build_model(tiny).save_pretrained(folder)
    (folder / "class_counts.json").write_text(json.dumps(counts))
    (folder / "all_results.json").write_text(json.dumps({"eval_accuracy": accuracy, "eval_macro_f1": 0.5}))
    return folder


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    """(app module, URL, example files) of a running server with a tiny model (recorded as synthetic-only)."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    threads = torch.get_num_threads(), cv2.getNumThreads()
    app = load_app()  # sets one torch and one OpenCV thread, as the server process should
    folder = tiny_model_folder(tmp_path_factory.mktemp("quickstart"))
    recognizer = EmotionRecognizer.from_pretrained(folder)  # default detector: the YuNet shipped in fer_hf
    examples = tmp_path_factory.mktemp("examples")
    demo = app.build_demo(recognizer, examples)
    port = free_port()
    demo.queue(default_concurrency_limit=1).launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True,
                                                   max_file_size=app.MAX_BYTES, quiet=True)
    try:
        yield app, f"http://127.0.0.1:{port}/", {p.stem: p for p in examples.glob("*.png")}
    finally:
        demo.close()
        torch.set_num_threads(threads[0])  # the rest of the test session keeps its threads
        cv2.setNumThreads(threads[1])


@pytest.fixture(scope="module")
def client(space):
    from gradio_client import Client

    return Client(space[1], verbose=False)


def call(client, path, cropped=False):
    from gradio_client import handle_file

    return client.predict(handle_file(str(path)), cropped, api_name="/predict")


def png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header says width x height (refused from the header, never decoded)."""
    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)  # IHDR data starts after signature, length, type
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def test_predict_endpoint_returns_the_main_face_and_all_faces(space, client):
    _, _, examples = space
    result = call(client, examples["two_faces"])
    assert set(result) >= {"emotion", "confidence", "faces"} and len(result["faces"]) == 2
    main = result["faces"][0]
    assert result["emotion"] == main["emotion"] in CLASSES and result["confidence"] == round(main["confidence"], 4)
    assert main["box"][2] * main["box"][3] >= result["faces"][1]["box"][2] * result["faces"][1]["box"][3]
    assert set(main["scores"]) == set(CLASSES)
    cropped = call(client, examples["one_face"], cropped=True)
    assert [f["box"] for f in cropped["faces"]] == [[0, 0, 640, 420]]
    empty = call(client, examples["no_face"])
    assert empty["faces"] == [] and "No face found" in empty["note"] and empty["emotion"] in CLASSES
    assert empty["whole_image"]["box"] == [0, 0, 640, 420]
    model = result["model"]  # what is served, read from the folder's own files
    assert model["name"].startswith("quickstart") and model["validation_accuracy"] == 0.9123
    assert model["trained_on"] == ["synthetic_fer", "synthetic_raf"] and model["training_images"] == 210
    assert model["synthetic_only"] and "not meant for photos" in model["warning"] and model["backend"] == "torch"


def test_bad_uploads_get_a_message_and_the_server_keeps_serving(space, client, tmp_path):
    from gradio_client.exceptions import AppError

    _, _, examples = space
    good = examples["one_face"].read_bytes()
    frames = [Image.new("RGB", (64, 64), c) for c in ("red", "blue")]
    frames[0].save(tmp_path / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    bad = {
        "text.png": (b"this is not an image", "text.png cannot be used: not an image file"),
        "truncated.png": (good[: len(good) // 3], "truncated.png cannot be used"),
        "dot.png": (png_claiming(1, 1), "too small"),
        "huge.png": (png_claiming(12000, 12000), "over the limit of 40 megapixels"),
        "heavy.png": (good + bytes(21 * 2**20), "(20 MB|maximum)"),  # valid image, 21 MB of trailing bytes
    }
    for name, (data, message) in bad.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises((AppError, ValueError), match=message):
            call(client, tmp_path / name)
    gif = call(client, tmp_path / "animated.gif")
    assert "animated; its first frame was used" in gif["note"] and gif["emotion"] in CLASSES
    assert len(call(client, examples["two_faces"])["faces"]) == 2  # still serving


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")
def test_page_shows_boxes_and_the_label_in_chromium(space, client, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    _, url, examples = space
    expected = call(client, examples["two_faces"])["emotion"]
    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(url)
            page.locator("input[type=file]").first.set_input_files(str(examples["two_faces"]))
            page.get_by_role("button", name="Analyse").click()
            label = page.locator("#main-face [data-testid='label-output-value']")
            expect(label).to_have_text(expected, timeout=30_000)
            expect(page.locator("#message")).to_contain_text("2 faces found")
            expect(page.locator("#annotated img").first).to_be_visible()
            info = page.locator("#model-info")  # above the result: name, data, accuracy, and the warning
            expect(info).to_contain_text("quickstart")
            expect(info).to_contain_text("validation accuracy 91.2%")
            expect(info).to_contain_text("Not a model for photos")
            page.screenshot(path=str(tmp_path / "space.png"), full_page=True)
            (tmp_path / "bad.png").write_bytes(b"not an image at all")
            page.locator("input[type=file]").first.set_input_files(str(tmp_path / "bad.png"))
            page.get_by_role("button", name="Analyse").click()
            expect(page.get_by_text("bad.png cannot be used").first).to_be_visible(timeout=30_000)
        finally:
            browser.close()
    if os.environ.get("FER_SPACE_SCREENSHOT"):  # keep the page picture for a human to look at
        shutil.copy(tmp_path / "space.png", os.environ["FER_SPACE_SCREENSHOT"])


def test_labels_stay_inside_the_photo_and_show_doubt():
    """The label of a face at the right (or top) edge is moved in, never cut off; an unsure face names its runner-up."""
    from fer_hf.inference.recognizer import Face

    app = load_app()
    assert app.label_origin((600, 100, 40, 40), (120, 20), (640, 480)) == (520, 80)  # right edge: moved left
    assert app.label_origin((10, 5, 40, 40), (120, 20), (640, 480)) == (10, 45)  # no room above: below
    assert app.label_origin((10, 5, 40, 470), (120, 20), (640, 480)) == (10, 5)  # nor below: inside the box
    unsure = Face((600, 200, 40, 40), "neutral", 0.48, {"neutral": 0.48, "happiness": 0.41, "sadness": 0.11})
    sure = Face((20, 200, 40, 40), "happiness", 0.96, {"happiness": 0.96, "neutral": 0.04})
    assert app.label_text(unsure, "1: ") == "1: neutral 48% / happiness 41%" and app.label_text(sure) == "happiness 96%"
    photo = Image.new("RGB", (640, 480), (255, 255, 255))
    drawn = np.asarray(app.annotate(photo, [unsure, sure])).astype(int)
    green = (np.abs(drawn - [40, 220, 90]).sum(-1) == 0)
    cols = np.nonzero(green[150:200].any(axis=0))[0]  # the label band above the right-hand face
    assert cols.max() == 639 and cols.min() < 600  # it reaches the edge by being shifted left, not cut


def real_photo(path):
    """A 1280x720 photo with four faces 40-70 px wide (skimage's public-domain astronaut; no dataset image)."""
    pytest.importorskip("skimage")
    import benchmark_detection as bench

    rng = np.random.default_rng(11)
    canvas = bench.background(rng, (1280, 720))
    truth = bench.place_faces(canvas, rng, [44, 52, 62, 70], max_tilt=12, light=False)
    canvas.save(path)
    return truth


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")
def test_page_on_a_real_photo_in_chromium(space, client, tmp_path):
    """Boxes on every face of a real photo, the model's facts above the result (the README's picture of the page
    with the trained model: benchmarks/make_figures.py --screenshots)."""
    from playwright.sync_api import expect, sync_playwright

    _, url, _ = space
    truth = real_photo(tmp_path / "group.jpg")
    result = call(client, tmp_path / "group.jpg")
    assert len(result["faces"]) == len(truth) == 4
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url)
            page.locator("input[type=file]").first.set_input_files(str(tmp_path / "group.jpg"))
            page.get_by_role("button", name="Analyse").click()
            expect(page.locator("#message")).to_contain_text("4 faces found", timeout=30_000)
            expect(page.locator("#model-info")).to_contain_text("validation accuracy")
        finally:
            browser.close()


def test_examples_are_real_photos_unless_the_model_saw_only_drawn_faces(tmp_path):
    app = load_app()
    real = app.example_files({"synthetic_only": False}, tmp_path / "a")
    assert [os.path.basename(f) for f in real] == ["astronaut.jpg", "group.jpg"]
    drawn = app.example_files({"synthetic_only": True}, tmp_path / "b")
    assert sorted(os.path.basename(f) for f in drawn) == sorted(app.EXAMPLES)
