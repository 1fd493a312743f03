"""The static Space: scripts/build_static_space.py builds the site from a tiny model; a plain HTTP server serves it
on loopback; headless Chromium runs it with every outside request blocked; its faces and scores are compared
with scripts/predict.py on the same ONNX file."""

import collections
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("onnxruntime")

import benchmark_static_space as bench
import build_static_space
import photos as benchmark_photos
import predict

from fer_hf.data.labels import CLASSES
from fer_hf.export import static_site, yunet_program
from fer_hf.models.modeling import ModelArguments, build_model, write_temperature
from fer_hf.utils.offline import HubUnreachableError

TOLERANCE = 0.02  # the parity bound, for scores and (relative to the face's size) for boxes
needs_chromium = pytest.mark.skipif(not os.path.exists(bench.CHROMIUM),
                                    reason=f"no Chromium at {bench.CHROMIUM} (apt-get install chromium)")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """(root, build result): a tiny ViT (head scaled up so its scores are far from uniform and any slip in
    the preprocessing shows), calibrated, reading faces in grey as the FER+ models do (the photos are colour), with
    the files a training run leaves, built into a site."""
    if shutil.which("npm") is None and not os.environ.get("FER_ORT_DIST"):
        pytest.skip("npm is needed to fetch onnxruntime-web (or set FER_ORT_DIST to its dist/ folder)")
    root = tmp_path_factory.mktemp("static_space")
    torch.manual_seed(0)
    model = build_model(ModelArguments(init_from="none", image_size=32, patch_size=8, model_args='{"depth": 1}'))
    with torch.no_grad():
        model.timm_model.head.weight.mul_(12)
    model.config.fer_pipeline = {"grayscale": True}
    model.save_pretrained(root / "model")
    write_temperature(root / "model", 1.3)
    counts = {"train": {"synthetic_fer": {c: 4 for c in CLASSES}}, "validation": {"synthetic_fer": {c: 2 for c in CLASSES}}}
    (root / "model" / "class_counts.json").write_text(json.dumps(counts))
    (root / "model" / "all_results.json").write_text(json.dumps({"eval_accuracy": 0.4286, "eval_macro_f1": 0.3512,
                                                                 "eval_samples": 14}))
    argv = ["--model", str(root / "model"), "--output_dir", str(root / "site"), "--num_images", "14"]
    if os.environ.get("FER_ORT_DIST"):
        argv += ["--ort_dist", os.environ["FER_ORT_DIST"]]
    try:
        result = build_static_space.main(argv)
    except RuntimeError as err:  # no npm registry (and nothing cached): say so rather than fail every test here
        if "npm" not in str(err):
            raise
        pytest.skip(str(err))
    return root, result


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Generated photos: drawn faces on a plain room (fer_hf/data/synthetic.py), sizes that are shrunk for detection
    by non-integer factors, JPEGs (one with an EXIF rotation), the astronaut photo from scikit-image when it is
    installed, an empty scene, a non-image."""
    folder = tmp_path_factory.mktemp("photos")
    scenes = {"one_face": bench.scene(bench.ONE_FACE),
              "group": bench.scene(bench.GROUP, size=(960, 640), seed=1),
              "two_large": bench.scene([("surprise", 420, (60, 150)), ("happiness", 380, (820, 260))],
                                       size=(1400, 900), seed=2),
              "no_face": Image.new("RGB", (320, 240), (90, 90, 90))}
    try:
        from skimage import data

        astronaut = Image.fromarray(data.astronaut())
        canvas = Image.new("RGB", (1100, 760), (120, 140, 160))
        canvas.paste(astronaut.resize((420, 420)), (560, 250))
        canvas.paste(astronaut.resize((260, 260), Image.BICUBIC), (60, 40))
        scenes["astronaut"] = canvas
    except ImportError:
        pass
    files = {}
    for name, image in scenes.items():
        image.save(folder / f"{name}.png")
        files[name] = folder / f"{name}.png"
    scenes["group"].save(folder / "group.jpg", quality=88)  # JPEG: the browser's decoder against Pillow's
    files["group_jpeg"] = folder / "group.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # a phone photo stored sideways: both sides must turn it upright before detecting
    scenes["one_face"].transpose(Image.Transpose.ROTATE_90).save(folder / "sideways.jpg", quality=90, exif=exif)
    files["sideways_jpeg"] = folder / "sideways.jpg"
    (folder / "bad.png").write_bytes(b"this is not an image at all")
    files["bad"] = folder / "bad.png"
    return files


def test_site_files_card_and_size(site):
    root, result = site
    out = root / "site"
    for name in ("index.html", "app.js", "fer.js", "pixels.js", "yunet.js", "vit.js", "kernels.wasm",
                 "kernels-relaxed.wasm", "style.css",
                 "model.onnx", "yunet.json", "yunet.bin", "preprocessing.json", "vit.json", "stem.bin",
                 "README.md", "ort/ort.wasm.min.mjs", "ort/ort-wasm-simd-threaded.mjs"):
        assert (out / name).is_file(), name
    assert not (out / "ort" / "ort-wasm-simd-threaded.wasm").exists()  # onnxruntime-web runs nothing of this ViT
    assert result["precision"] == "int8" and result["under_size_limit"] and result["size_mb"] < 25
    assert result["export"]["reduce_range"] and result["export"]["per_channel"]  # 7-bit weights: no CPU saturates
    assert result["export"]["parity_ok"] and "warning" not in result  # a ViT: no CNN warning
    assert not any(p.suffix == ".map" or "jsep" in p.name or "webgpu" in p.name for p in out.rglob("*"))  # CPU build only
    config = json.loads((out / "preprocessing.json").read_text())
    assert config["labels"] == list(CLASSES) and config["image_size"] == 32 and config["calibration_temperature"] == 1.3
    assert config["grayscale"] is True  # read by fer.js: the page greys each face as predict.py does
    assert config["vit"] == "vit.json"  # an int8 ViT: all of it on the page's own kernels, no onnxruntime-web file
    index = (out / "index.html").read_text()
    assert '<link rel="preload" href="stem.bin"' in index and "ort-wasm-simd-threaded" not in index
    readme = (out / "README.md").read_text()
    assert readme.startswith("---\n") and "\nsdk: static\n" in readme and "app_file: index.html" in readme
    assert "cross-origin-embedder-policy: require-corp" in readme  # so that the wasm runtime may use threads
    assert "synthetic_fer" in readme and "accuracy 0.4286, macro-F1 0.3512" in readme  # trained on / measured accuracy
    assert "drawn cartoon faces" in readme and "Nothing is uploaded" in readme
    assert "turned grey (the model learnt from grey faces only)" in readme
    for name in ("index.html", "app.js", "fer.js", "pixels.js", "yunet.js"):  # no CDN, no outside URL the page could fetch
        assert "https://" not in (out / name).read_text() and "http://" not in (out / name).read_text()


def test_cnn_model_gets_a_warning(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architecture": "resnet18", "model_args": {"drop_rate": 0.0}}))
    assert "resnet18 is a CNN" in static_site.cnn_warning(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"architecture": "vit_tiny_r_s16_p8_224", "model_args": {"img_size": 48}}))
    assert static_site.cnn_warning(str(tmp_path)) is None


def predict_py(root, photo) -> list[dict]:
    """scripts/predict.py on the site's own ONNX file and the YuNet file the site was built from."""
    yunet = static_site.yunet_source()
    return predict.main(["--model", str(root / "site" / "model.onnx"), "--detector", "yunet",
                         "--yunet_model", str(yunet), str(photo)])


def assert_same_face(page_face: dict, line: dict, where: str) -> float:
    size = max(line["box"][2], line["box"][3])
    box_diff = max(abs(a - b) for a, b in zip(page_face["box"], line["box"]))
    assert box_diff <= TOLERANCE * size, f"{where}: box {page_face['box']} vs predict.py {line['box']}"
    score_diff = max(abs(page_face["scores"][c] - line["scores"][c]) for c in CLASSES)
    assert score_diff <= TOLERANCE, f"{where}: scores differ by {score_diff:.4f}"
    assert page_face["emotion"] == line["emotion"] or score_diff < 1e-3, where  # a tie may break either way
    return score_diff


def check_shape(result: dict):
    """window.ferResult has the Gradio API's shape."""
    assert set(result) >= {"emotion", "confidence", "faces"} and result["emotion"] in CLASSES
    for face in result["faces"]:
        assert len(face["box"]) == 4 and all(isinstance(v, int) for v in face["box"])
        assert face["emotion"] in CLASSES and set(face["scores"]) == set(CLASSES)
        assert abs(sum(face["scores"].values()) - 1) < 1e-4 and face["confidence"] == max(face["scores"].values())
    if result["faces"]:
        main = result["faces"][0]
        assert result["emotion"] == main["emotion"] and result["confidence"] == round(main["confidence"], 4)
        areas = [f["box"][2] * f["box"][3] for f in result["faces"]]
        assert areas == sorted(areas, reverse=True)  # largest first


@needs_chromium
def test_page_in_chromium_matches_predict_py_offline(site, photos, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    root, _ = site
    blocked, diffs = [], []
    with bench.serve(root / "site") as url, sync_playwright() as p, bench.browser_page(p, blocked) as page:
        errors, fetched = [], collections.Counter()
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.on("request", lambda request: fetched.update([request.url]))
        page.goto(url, wait_until="load")
        expect(page.locator("#privacy")).to_contain_text("never leave this device")
        for name in [n for n in photos if n not in ("bad", "no_face")]:
            out = bench.analyse(page, photos[name])
            assert out["error"] is None, out["error"]
            result, lines = out["result"], predict_py(root, photos[name])
            check_shape(result)
            assert len(result["faces"]) == len(lines) == lines[0]["faces"] >= 1, name
            for i, (face, line) in enumerate(zip(result["faces"], lines)):
                diffs.append(assert_same_face(face, line, f"{name} face {i}"))
            n = len(lines)
            found = "1 face found." if n == 1 else f"{n} faces found; the scores are for the largest."
            expect(page.locator("#message")).to_have_text(found)
            expect(page.locator("#bars .bar")).to_have_count(7)
            expect(page.locator("#bars .bar").first).to_have_attribute("data-label", result["emotion"])  # sorted: top first
            if name == "group":
                bench.save_screenshot(page, str(tmp_path / "static_space.png"))
        # no face: the whole image's prediction, said so, as predict.py and the Gradio API do
        out = bench.analyse(page, photos["no_face"])
        line = predict_py(root, photos["no_face"])[0]
        assert out["result"]["faces"] == [] and line["faces"] == 0
        assert_same_face(out["result"]["whole_image"], line, "no_face")
        expect(page.locator("#message")).to_contain_text("No face found")
        # a file that is not an image: a message, no stale result
        out = bench.analyse(page, photos["bad"])
        assert out["result"] is None and "bad.png cannot be used: not an image" in out["error"]
        expect(page.locator("#message")).to_contain_text("bad.png cannot be used")
        assert page.evaluate("document.body.dataset.state") == "error"
        # still working after the error
        assert len(bench.analyse(page, photos["one_face"])["result"]["faces"]) == 1
        assert not errors, errors
        assert not blocked, f"the page asked for outside URLs: {blocked}"
        assert fetched[url + "model.onnx"] == fetched[url + "stem.bin"] == fetched[url + "vit.json"] == 1  # preloads reused
        assert fetched[url + "kernels-relaxed.wasm"] == 1 and fetched[url + "ort/ort-wasm-simd-threaded.wasm"] == 0
        assert page.evaluate("window.ferTimings.vit_kernels") == "all"  # stem, blocks, head in vit.c: as predict.py
        assert page.evaluate("window.ferTimings.kernels") == "relaxed-simd"  # Chromium has it; the plain build below
        page.goto(url + "?kernels=simd", wait_until="load")
        for name in ("group", "one_face"):  # as a browser without relaxed SIMD runs it
            lines = predict_py(root, photos[name])
            for i, (face, line) in enumerate(zip(bench.analyse(page, photos[name])["result"]["faces"], lines, strict=True)):
                diffs.append(assert_same_face(face, line, f"{name} face {i}, plain SIMD kernels"))
        assert page.evaluate("window.ferTimings.kernels") == "simd"
        # and the guard really blocks: an outside request from the page fails and is recorded
        failed = page.evaluate("fetch('https://huggingface.co/').then(() => false, () => true)")
        assert failed and blocked == ["https://huggingface.co/"]
    assert len(diffs) >= 8
    # far inside the bound: the pixels are bit-identical, and 7-bit weights leave only tiny int8 rounding flips
    # (8-bit ones saturate in x86 AVX2 kernels, not in wasm: 0.009 on this model)
    assert max(diffs) < 5e-3
    print(f"{len(diffs)} faces compared with predict.py; largest score difference {max(diffs):.2e}")
    assert (tmp_path / "static_space.png").stat().st_size < 300_000
    if os.environ.get("FER_STATIC_SCREENSHOT"):  # the README's picture
        shutil.copy(tmp_path / "static_space.png", os.environ["FER_STATIC_SCREENSHOT"])


def test_graphs_vit_c_does_not_cover_are_named(site, tmp_path):
    """vit_program reads only the plain pre-norm ViT block; anything else keeps the whole model in onnxruntime-web,
    and says why."""
    import onnx

    from fer_hf.export.vit_program import write_vit_program

    root, _ = site
    model = onnx.load(str(root / "site" / "model.onnx"))
    add = next(n for n in model.graph.node if n.name.endswith("/blocks.0/Add"))
    add.name = add.name.replace("/blocks.0/", "/blocks.0/ls1/")  # as a block with layer scale is named
    onnx.save(model, str(tmp_path / "ls.onnx"))
    assert "layer scale" in write_vit_program(tmp_path / "ls.onnx", tmp_path, 32)
    assert not (tmp_path / "vit.json").exists() and not (tmp_path / "stem.bin").exists()
    assert write_vit_program(root / "site" / "model.onnx", tmp_path, 32) is None  # the tiny ViT itself: covered


@needs_chromium
def test_fp32_site_runs_the_whole_model_in_onnxruntime_web(site, photos, tmp_path):
    """--fp32 (float graph, no vit.json): the page runs model.onnx whole in onnxruntime-web, same scores as predict.py."""
    from playwright.sync_api import sync_playwright

    root, _ = site
    fp32 = tmp_path / "fp32"
    build_static_space.main(["--model", str(root / "model"), "--output_dir", str(fp32 / "site"), "--fp32",
                             "--num_images", "2"])
    config = json.loads((fp32 / "site" / "preprocessing.json").read_text())
    assert config["precision"] == "fp32" and config["vit"] is None and not (fp32 / "site" / "vit.json").exists()
    assert (fp32 / "site" / "ort" / "ort-wasm-simd-threaded.wasm").is_file()
    blocked = []
    with bench.serve(fp32 / "site") as url, sync_playwright() as p, bench.browser_page(p, blocked) as page:
        page.goto(url, wait_until="load")
        out = bench.analyse(page, photos["group"])
        assert out["error"] is None and page.evaluate("window.ferTimings.vit_kernels") == "none"
        lines = predict_py(fp32, photos["group"])
        assert len(out["result"]["faces"]) == len(lines) >= 2
        for i, (face, line) in enumerate(zip(out["result"]["faces"], lines)):
            assert_same_face(face, line, f"fp32 group face {i}")
    assert not blocked


def page_matches_predict_py(site_root, photos, names, kernels_in: str):
    """Each photo in the page (one browser, the network blocked) against predict.py on the site's ONNX file."""
    from playwright.sync_api import sync_playwright

    blocked = []
    with bench.serve(site_root / "site") as url, sync_playwright() as p, bench.browser_page(p, blocked) as page:
        page.goto(url, wait_until="load")
        for name in names:
            out = bench.analyse(page, photos[name])
            assert out["error"] is None, out["error"]
            lines = predict_py(site_root, photos[name])
            for i, (face, line) in enumerate(zip(out["result"]["faces"], lines, strict=True)):
                assert_same_face(face, line, f"{name} face {i}")
        assert page.evaluate("window.ferTimings.vit_kernels") == kernels_in
    assert not blocked


@needs_chromium
def test_hybrid_vit_stem_on_own_kernels_matches_predict_py(photos, tmp_path):
    """The R+ViT-Ti student's stem (ResNet conv, group norm, max pool, then the patch embedding) in vit.c."""
    torch.manual_seed(1)
    model = build_model(ModelArguments(architecture="vit_tiny_r_s16_p8_224", init_from="none", image_size=48,
                                       patch_size=2, model_args='{"depth": 1}'))
    with torch.no_grad():
        model.timm_model.head.weight.mul_(12)
    model.save_pretrained(tmp_path / "model")
    build_static_space.main(["--model", str(tmp_path / "model"), "--output_dir", str(tmp_path / "site"), "--num_images", "2"])
    steps = json.loads((tmp_path / "site" / "vit.json").read_text())["stem"]["steps"]
    assert [s["op"] for s in steps] == ["conv", "groupnorm_relu", "maxpool", "conv"]
    page_matches_predict_py(tmp_path, photos, ["group", "one_face"], "all")


@needs_chromium
def test_a_stem_vit_c_does_not_cover_runs_in_onnxruntime_web(site, photos, tmp_path, monkeypatch):
    """A ViT whose stem the kernels lack: stem.onnx in onnxruntime-web, the blocks and head still in vit.c."""
    from fer_hf.export import vit_stem

    def refuse(*args):
        raise vit_stem.NotOwnStem("a stem vit.c does not have")

    monkeypatch.setattr(vit_stem, "stem_program", refuse)
    root, _ = site
    build_static_space.main(["--model", str(root / "site" / "model.onnx"), "--output_dir", str(tmp_path / "site")])
    assert json.loads((tmp_path / "site" / "vit.json").read_text())["stem"]["onnx"] == "stem.onnx"
    page_matches_predict_py(tmp_path, photos, ["group"], "blocks")


def test_publishing_offline_fails_fast_before_building(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    start = time.perf_counter()
    with pytest.raises(HubUnreachableError, match="static Space 'me/fer'.*hf upload me/fer SITE --repo-type space"):
        build_static_space.main(["--model", str(tmp_path / "nope"), "--output_dir", str(tmp_path / "site"),
                                 "--push_to_hub", "me/fer"])
    assert time.perf_counter() - start < 10 and not (tmp_path / "site").exists()


def test_output_dir_is_not_clobbered(site, tmp_path):
    root, _ = site
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    argv = ["--model", str(root / "site" / "model.onnx"), "--output_dir", str(tmp_path / "mine")]
    with pytest.raises(FileExistsError, match="not empty"):
        build_static_space.main(argv)
    with pytest.raises(FileExistsError, match="does not look like a site"):
        build_static_space.main(argv + ["--overwrite"])
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_an_onnx_file_builds_a_site_with_its_metadata(site, tmp_path):
    """--model x.onnx: the export is shipped as it is; labels and preprocessing come from its metadata."""
    root, _ = site
    result = build_static_space.main(["--model", str(root / "site" / "model.onnx"), "--output_dir", str(tmp_path / "s2")])
    config = json.loads((tmp_path / "s2" / "preprocessing.json").read_text())
    assert result["precision"] == "int8" and config["labels"] == list(CLASSES)
    assert np.isclose(config["calibration_temperature"], 1.3)
    assert (tmp_path / "s2" / "model.onnx").read_bytes() == (root / "site" / "model.onnx").read_bytes()


@needs_chromium
def test_paste_drop_and_webcam(site, photos):
    """The other ways in: a pasted image, a dropped file, and the webcam (Chromium's fake camera: a test
    pattern without faces, so the whole-frame prediction)."""
    import base64

    from playwright.sync_api import expect, sync_playwright

    root, _ = site
    blocked = []
    fake_camera = ("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream")
    data = base64.b64encode(photos["group"].read_bytes()).decode()
    give = """([data, how]) => {
        const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], 'group.png', { type: 'image/png' }));
        if (how === 'paste') window.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt }));
        else document.getElementById('drop').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true }));
    }"""
    with bench.serve(root / "site") as url, sync_playwright() as p, bench.browser_page(p, blocked, args=fake_camera) as page:
        page.goto(url, wait_until="load")
        expected = predict_py(root, photos["group"])
        for how in ("paste", "drop"):
            runs = page.evaluate("window.ferTimings.runs")
            page.evaluate(give, [data, how])
            page.wait_for_function(f"window.ferTimings.runs > {runs}", timeout=60_000)
            result = page.evaluate("window.ferResult")
            assert result is not None and len(result["faces"]) == len(expected), how
            assert [f["emotion"] for f in result["faces"]] == [line["emotion"] for line in expected], how
        page.evaluate("window.ferResult = null")
        page.locator("#webcam").click()
        expect(page.locator("#webcam")).to_have_text("Stop webcam", timeout=30_000)
        page.wait_for_function("window.ferResult !== null", timeout=60_000)
        check_shape(page.evaluate("window.ferResult"))
        page.locator("#webcam").click()
        expect(page.locator("#webcam")).to_have_text("Start webcam")
    assert not blocked, blocked


def run_pixel_ops(tmp_path, cases, box, wasm, site):
    """Runs pixels.js and yunet.js (with `wasm` as its kernels, the YuNet of `site`) in node on tmp_path/{i}.in;
    writes tmp_path/{i}.out."""
    import subprocess

    web = bench.ROOT / "static_space"
    script = f"""
        import fs from 'fs';
        import {{ FaceResizer }} from '{(web / "pixels.js").as_uri()}';
        import {{ YuNet }} from '{(web / "yunet.js").as_uri()}';
        const yunet = await YuNet.load({{ wasm: fs.readFileSync('{wasm}'), weights: fs.readFileSync('{site}/yunet.bin'),
                                         program: JSON.parse(fs.readFileSync('{site}/yunet.json')) }});
        const resizer = await FaceResizer.load(await WebAssembly.compile(fs.readFileSync('{wasm}')));
        const cases = {json.dumps(cases)}, box = {json.dumps(box)};
        cases.forEach(([kind, w, h, ow, oh, ch], i) => {{
          const src = new Uint8Array(fs.readFileSync('{tmp_path}/' + i + '.in'));
          let out;
          if (kind === 'area') {{
            const plan = yunet.input(src, w, h, ch, ow, oh);
            out = new Float32Array(yunet.k.memory.buffer, plan.at.input, 3 * plan.h * plan.w);
          }} else if (kind === 'yunet') {{
            const plan = yunet.input(src, w, h, ch, ow, oh), outputs = yunet.run(plan);
            out = new Float32Array(Object.keys(outputs).sort().flatMap((k) => [...outputs[k]]));
          }} else if (kind === 'cropresize') out = resizer.resize(src, w, ch, box, ow, oh);
          else if (kind === 'crop') out = resizer.resize(src, w, ch, box, box[2] - box[0], box[3] - box[1]);
          else out = resizer.resize(src, w, ch, [0, 0, w, h], ow, oh);
          fs.writeFileSync('{tmp_path}/' + i + '.out', out);
        }});"""
    subprocess.run(["node", *node_flags(wasm), "--input-type=module", "-e", script], check=True, timeout=120)


def node_flags(wasm) -> list[str]:
    """Node 20 validates relaxed SIMD only behind a flag (on by default from node 22, like Chrome 114+)."""
    import subprocess

    check = f"process.exit(WebAssembly.validate(require('fs').readFileSync('{wasm}')) ? 0 : 1)"
    return [] if subprocess.run(["node", "-e", check], check=False).returncode == 0 else ["--experimental-wasm-relaxed-simd"]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is needed to run static_space/vit.js outside a browser")
def test_vit_kernels_match_onnxruntime_on_a_224_px_vit(tmp_path):
    """vit.js (both builds) against onnxruntime on the same int8 file: a plain ViT at 224 px (196 patches + the class
    token: sequences not a multiple of 4), two blocks, five faces in one batch (one activation range for all)."""
    import subprocess

    import export_onnx
    import onnxruntime as ort

    from fer_hf.export.vit_program import write_vit_program

    torch.manual_seed(2)
    model = build_model(ModelArguments(init_from="none", image_size=224, patch_size=16, model_args='{"depth": 2}'))
    with torch.no_grad():
        model.timm_model.head.weight.mul_(12)
    model.save_pretrained(tmp_path / "model")
    files = export_onnx.main(["--model", str(tmp_path / "model"), "--output", str(tmp_path / "m.onnx"), "--quantize",
                              "int8", "--per_channel", "--reduce_range", "--num_images", "2"])["files"]
    assert write_vit_program(Path(files["int8"]), tmp_path, 224) is None
    x = np.random.default_rng(0).uniform(-1, 1, (5, 3, 224, 224)).astype(np.float32)
    x.tofile(tmp_path / "x.bin")
    expected = ort.InferenceSession(files["int8"], providers=["CPUExecutionProvider"]).run(None, {"pixel_values": x})[0]
    for name in ("kernels.wasm", "kernels-relaxed.wasm"):
        wasm = bench.ROOT / "static_space" / name
        script = f"""
            import fs from 'fs';
            import {{ ViT }} from '{(bench.ROOT / "static_space" / "vit.js").as_uri()}';
            const vit = await ViT.load(await WebAssembly.compile(fs.readFileSync('{wasm}')),
                                       JSON.parse(fs.readFileSync('{tmp_path}/vit.json')), fs.readFileSync('{files["int8"]}'),
                                       fs.readFileSync('{tmp_path}/stem.bin'));
            const b = fs.readFileSync('{tmp_path}/x.bin'), x = new Float32Array(b.buffer, b.byteOffset, b.length / 4);
            fs.writeFileSync('{tmp_path}/logits.bin', vit.classify(x, 5));"""
        subprocess.run(["node", *node_flags(wasm), "--input-type=module", "-e", script], check=True, timeout=120)
        logits = np.fromfile(tmp_path / "logits.bin", np.float32).reshape(expected.shape)
        probs = [np.exp(v - v.max(1, keepdims=True)) / np.exp(v - v.max(1, keepdims=True)).sum(1, keepdims=True)
                 for v in (logits, expected)]
        assert np.abs(probs[0] - probs[1]).max() < 0.01, name
        assert (logits.argmax(1) == expected.argmax(1)).all(), name


def yunet_planes(bgr: np.ndarray) -> np.ndarray:
    """cv2.FaceDetectorYN's input: B, G, R float planes, zero-padded at the right and bottom to multiples of 32."""
    h, w = bgr.shape[:2]
    out = np.zeros((3, (h - 1) // 32 * 32 + 32, (w - 1) // 32 * 32 + 32), np.float32)
    out[:, :h, :w] = bgr.transpose(2, 0, 1)
    return out


@pytest.mark.skipif(shutil.which("node") is None, reason="node is needed to run static_space/pixels.js outside a browser")
def test_pixel_ops_and_yunet_kernels_match_opencv_and_pillow(tmp_path):
    """pixels.js and kernels.wasm against cv2.resize(INTER_AREA) (then YuNet's padded BGR planes) and PIL's BICUBIC
    resize, byte for byte, on random images and sizes that take every path (integer and fractional shrink factors,
    none, up- and downscaling, one axis only); the shrink and the crop also from RGBA, as the page hands them a
    canvas's pixels. YuNet's twelve outputs from yunet.js against OpenCV's own run of the ONNX file (cv2.dnn, as
    cv2.FaceDetectorYN runs it) on the same input. With clang and wasm-ld installed, build_wasm.sh must give the
    committed kernels.wasm."""
    import subprocess

    import cv2

    yunet = static_site.yunet_source()
    yunet_program.write_yunet_program(yunet, tmp_path)
    rng = np.random.default_rng(0)
    cases = [("area", 900, 700, 480, 373, 3), ("area", 960, 720, 480, 360, 3), ("area", 1234, 77, 480, 30, 3),
             ("area", 900, 700, 480, 373, 4), ("area", 960, 720, 480, 360, 4), ("area", 640, 480, 480, 360, 4),
             ("area", 1500, 900, 500, 300, 4), ("area", 300, 200, 300, 200, 4), ("area", 301, 199, 301, 199, 3),
             ("bicubic", 140, 140, 32, 32, 3), ("bicubic", 33, 47, 48, 48, 3), ("bicubic", 500, 400, 224, 224, 3),
             ("bicubic", 64, 40, 64, 48, 3), ("bicubic", 64, 40, 32, 40, 3), ("crop", 300, 200, 0, 0, 3),
             ("crop", 300, 200, 0, 0, 4), ("cropresize", 300, 200, 48, 48, 4), ("cropresize", 300, 200, 224, 224, 3),
             ("yunet", 640, 480, 480, 360, 4), ("yunet", 333, 250, 333, 250, 3)]
    box = [17, 9, 251, 190]
    net = cv2.dnn.readNetFromONNX(str(yunet))
    for i, (kind, w, h, ow, oh, ch) in enumerate(cases):
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        if kind == "yunet":  # a smooth image: a network's outputs on noise say little
            image = (cv2.GaussianBlur(image, (0, 0), 4).astype(np.int32) * 3 % 256).astype(np.uint8)
        if kind in ("area", "yunet"):
            small = cv2.resize(image, (ow, oh), interpolation=cv2.INTER_AREA) if (ow, oh) != (w, h) else image
            expected = yunet_planes(np.ascontiguousarray(small[:, :, ::-1]))
        if kind == "yunet":
            net.setInput(expected[None])
            names = sorted(yunet_program.YUNET_OUTPUTS)
            expected = np.concatenate([o.ravel() for o in net.forward(names)]).astype(np.float32)
        elif kind == "crop":
            expected = np.asarray(Image.fromarray(image).crop(box))
        elif kind == "cropresize":
            expected = np.asarray(Image.fromarray(image).crop(box).resize((ow, oh), Image.BICUBIC))
        elif kind == "bicubic":
            expected = np.asarray(Image.fromarray(image).resize((ow, oh), Image.BICUBIC))
        alpha = rng.integers(0, 256, (h, w, 1), dtype=np.uint8)  # must be ignored
        (np.concatenate([image, alpha], axis=2) if ch == 4 else image).tofile(tmp_path / f"{i}.in")
        expected.tofile(tmp_path / f"{i}.expected")
    wasm = [bench.ROOT / "static_space" / name for name in ("kernels.wasm", "kernels-relaxed.wasm")]
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    build = subprocess.run(["bash", str(bench.ROOT / "static_space" / "build_wasm.sh"), str(fresh)],
                           capture_output=True, text=True, check=False)
    if build.returncode != 3:  # 3: no clang >= 16 here; else the committed files are what the C files compile to
        assert build.returncode == 0, build.stderr
        for kernels in wasm:
            assert (fresh / kernels.name).read_bytes() == kernels.read_bytes(), f"{kernels.name} is stale: run build_wasm.sh"
    for kernels in wasm:
        run_pixel_ops(tmp_path, cases, box, kernels, tmp_path)
        for i, case in enumerate(cases):
            out, expected = (tmp_path / f"{i}.out").read_bytes(), (tmp_path / f"{i}.expected").read_bytes()
            if case[0] == "yunet":  # float sums in another order than OpenCV's
                out, expected = np.frombuffer(out, np.float32), np.frombuffer(expected, np.float32)
                assert out.shape == expected.shape and np.abs(out - expected).max() < 1e-3 * max(1, np.abs(expected).max())
                continue
            assert out == expected, f"{kernels.name} {case}: {sum(a != b for a, b in zip(out, expected))} bytes differ"


@needs_chromium
def test_benchmark_reports_every_figure(site):
    root, _ = site
    result = bench.main(["--site", str(root / "site"), "--repeats", "2"])
    assert result["first_prediction_ms"] > result["models_ready_ms"] > 0 and result["first_faces"] == 1
    group = len(benchmark_photos.GROUP_WIDTHS)  # the astronaut composited five times
    for name, faces in (("one_face_jpeg", 1), ("one_face_png", 1), ("group_jpeg", group), ("group_png", group)):
        r = result[name]
        assert r["faces"] == result["python_reference"][name]["faces"] == faces
        assert 0 < r["yunet_ms"] < r["detect_ms"] < r["total_ms"] and r["ms_per_face"] == r["total_ms"] / faces
    assert result["blocked_requests"] == [] and set(result["targets"]) == {
        "first_prediction_within_3s", "under_50ms_a_face_jpeg", "under_50ms_a_face_png", "site_under_25mb",
        "no_outside_requests"}
