"""Speed of the static Space in headless Chromium, measured by the page itself with performance.now().

    python benchmarks/benchmark_static_space.py --model outputs/quickstart [--site site] [--output bench_static.json]
    python benchmarks/benchmark_static_space.py --site site          # an already built site

Builds the site (fer_hf.export.static_site, as scripts/build_static_space.py does) unless `--site` holds one, serves it with Python's
http.server on 127.0.0.1, opens it in headless Chromium with every request to anywhere else blocked
(and counted), and reports:
- first prediction: ms from navigation start (the page's time origin) until the first photo's result
  is on screen, the photo being handed over as soon as the page has loaded: wasm and models loaded,
  sessions created, decode, detection and classification included. Target: within 3 s.
- then ms per photo and per face (p50 over `--repeats` runs: decode, YuNet, crops, model, drawing) for a
  640x480 photo with one face and a 960x640 one with several, each as a JPEG (quality 90, how cameras and
  phones save photos) and as a PNG (screenshots). Target: under 50 ms a face.
- the site's size (target: under 25 MB) and the number of blocked outside requests (must be 0).
- fer_hf's own Python pipeline (EmotionRecognizer, onnxruntime + OpenCV, one thread) on the same photos and
  ONNX file, measured in the same run: on a shared machine it shows how busy the CPU was.
`--isolated` serves the cross-origin isolation headers (as the Space does), so that wasm may use threads.
Photos are generated (drawn faces from fer_hf/data/synthetic.py on a plain background); `--screenshot` saves
the page with a result, as in the README.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import json
import os
import statistics
import sys
import tempfile
import threading
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]

CHROMIUM = os.environ.get("FER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-extensions"]
LOOPBACK = {"127.0.0.1", "localhost"}
CLASSIFIER_IN = {"all": "vit.c (the page's own kernels)", "blocks": "stem in onnxruntime-web, blocks and head in vit.c",
                 "none": "onnxruntime-web"}


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript",  # noqa: RUF012
                      ".js": "text/javascript", ".wasm": "application/wasm", ".onnx": "application/octet-stream",
                      ".json": "application/json"}

    isolated = False

    def end_headers(self):
        if self.isolated:  # what the Space's `custom_headers` send: cross-origin isolation, so wasm may use threads
            for key, value in ISOLATION_HEADERS.items():
                self.send_header(key, value)
        super().end_headers()

    def log_message(self, *args):  # keep test and benchmark output readable
        pass


ISOLATION_HEADERS = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp",
                     "Cross-Origin-Resource-Policy": "cross-origin"}


@contextlib.contextmanager
def serve(site: str | Path, isolated: bool = False):
    """A plain static file server for `site` on 127.0.0.1 (a free port); yields its URL. `isolated` adds the
    cross-origin isolation headers (as the Space's README asks Hugging Face to send)."""
    handler = functools.partial(type("Handler", (QuietHandler,), {"isolated": isolated}), directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def browser_page(playwright, blocked: list[str], viewport=(1200, 900), args: tuple = ()):
    """A headless Chromium page whose requests to anything but loopback are aborted and listed in `blocked`."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + list(args))
    try:
        context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})

        def guard(route):
            url = urlparse(route.request.url)
            if url.scheme in ("data", "blob") or url.hostname in LOOPBACK:
                return route.continue_()
            blocked.append(route.request.url)
            return route.abort()

        context.route("**/*", guard)
        yield context.new_page()
    finally:
        browser.close()


def analyse(page, file: str | Path, timeout_ms: int = 60_000) -> dict:
    """Give the page one file through its file chooser; wait for its answer. {result, error, timings}."""
    runs = page.evaluate("window.ferTimings ? window.ferTimings.runs : 0")
    page.locator("#file").set_input_files(str(file))
    page.wait_for_function(f"window.ferTimings && window.ferTimings.runs > {runs}", timeout=timeout_ms)
    return page.evaluate("({result: window.ferResult, error: window.ferError, timings: window.ferTimings})")


def scene(faces: list[tuple[str, int, tuple[int, int]]], size=(640, 480), seed: int = 0):
    """Drawn faces (fer_hf/data/synthetic.py) pasted on a plain room: a generated photo, no real person."""
    import numpy as np
    from PIL import Image, ImageDraw

    from fer_hf.data.synthetic import draw_face

    rng = np.random.default_rng(seed)
    canvas = Image.new("RGB", size, (196, 206, 218))
    ImageDraw.Draw(canvas).rectangle([0, int(size[1] * 0.8), size[0], size[1]], fill=(120, 150, 100))
    for emotion, side, at in faces:
        canvas.paste(draw_face(emotion, rng, side, True), at)
    return canvas


ONE_FACE = [("happiness", 220, (210, 110))]
GROUP = [("surprise", 200, (40, 80)), ("sadness", 190, (370, 60)), ("anger", 180, (700, 100)),
         ("neutral", 150, (250, 360)), ("fear", 150, (560, 380))]


def measure(site: Path, photos: dict[str, Path], repeats: int, screenshot: str | None, isolated: bool = False,
            threads: int | None = None, kernels: str | None = None) -> dict:
    from playwright.sync_api import sync_playwright

    blocked, out = [], {}
    with serve(site, isolated) as url, sync_playwright() as p, browser_page(p, blocked) as page:
        query = "&".join(f"{k}={v}" for k, v in (("threads", threads), ("kernels", kernels)) if v)
        page.goto(url + (f"?{query}" if query else ""), wait_until="load")
        first = analyse(page, next(iter(photos.values())))  # handed over at the load event, models possibly still loading
        t = first["timings"]
        out["first_prediction_ms"] = t["first_result_ms"]
        out["models_ready_ms"] = t["models_ready_ms"]
        out["load"] = {k: t.get(k) for k in ("runtime_and_classifier_ms", "kernels_ms", "warmup_ms",
                                             "vit_kernels", "kernels")}
        out["load_event_ms"] = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
        out["first_prediction_after_load_ms"] = out["first_prediction_ms"] - out["load_event_ms"]
        out["first_faces"] = len(first["result"]["faces"])
        out["threads"] = page.evaluate("window.ferTimings.threads")
        for name, photo in photos.items():
            runs = [analyse(page, photo)["timings"]["last"] for _ in range(repeats)]
            faces = runs[-1]["faces"]
            p50 = {k: statistics.median(r[k] for r in runs) for k in ("decode_ms", "detect_ms", "shrink_ms", "yunet_ms",
                                                                       "classify_ms", "render_ms", "total_ms")}
            out[name] = {"faces": faces, "size": [runs[-1]["width"], runs[-1]["height"]], **p50,
                         "ms_per_face": p50["total_ms"] / max(1, faces)}
        if screenshot:
            analyse(page, photos["group_png"])
            save_screenshot(page, screenshot)
    out["blocked_requests"] = blocked
    return out


def python_reference(site: Path, photos: dict[str, Path], repeats: int) -> dict:
    """The same ONNX file through fer_hf's EmotionRecognizer (onnxruntime and OpenCV, one thread), p50 ms a photo,
    measured in the same run: on a shared machine it says how busy the CPU was."""
    import time

    import cv2

    from fer_hf.export.static_site import yunet_source
    from fer_hf.inference.recognizer import EmotionRecognizer, load_image

    cv2.setNumThreads(1)
    rec = EmotionRecognizer.from_pretrained(str(site / "model.onnx"), detector="yunet",
                                            yunet_model=str(yunet_source()))
    out = {}
    for name, photo in photos.items():
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            faces = rec.recognize(load_image(photo))
            times.append((time.perf_counter() - start) * 1000)
        out[name] = {"faces": len(faces), "total_ms": statistics.median(times)}
    return out


def save_screenshot(page, path: str, max_bytes: int = 300_000) -> None:
    """A PNG of the page, palette-quantised if needed to stay under `max_bytes` (for the README)."""
    from PIL import Image

    page.screenshot(path=path, full_page=True)
    if os.path.getsize(path) > max_bytes:
        Image.open(path).convert("RGB").quantize(colors=128).save(path, optimize=True)


def site_size_mb(site: Path) -> float:
    return sum(p.stat().st_size for p in site.rglob("*") if p.is_file()) / 1e6


def build_site(model: str, site: Path, fp32: bool) -> None:
    """The site, card included, as scripts/build_static_space.py builds it (replacing one built before)."""
    from fer_hf.export.static_site import SiteOptions, make_site
    from fer_hf.hub.space_card import write_readme

    def card(folder, config, export):
        write_readme(folder, model, "Facial expression recognition", config, export, [])

    make_site(SiteOptions(model=model, fp32=fp32), site, overwrite=True, write_card=card)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="model folder or .onnx file to build the site from")
    p.add_argument("--site", default=None, help="the site folder (built here when --model is given)")
    p.add_argument("--fp32", action="store_true")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--output", default=None, help="JSON file for the figures")
    p.add_argument("--screenshot", default=None, help="PNG of the page with the group photo's result")
    p.add_argument("--isolated", action="store_true", help="serve with cross-origin isolation headers, so that "
                   "ONNX Runtime Web may use threads (slower on a busy 2-core machine: measured)")
    p.add_argument("--threads", type=int, default=None, help="wasm threads instead of the page's choice "
                   "(`?threads=N`; more than one needs --isolated)")
    p.add_argument("--kernels", choices=["simd"], default=None, help="the page's plain-SIMD kernels (kernels.wasm), "
                   "as browsers without relaxed SIMD get them (`?kernels=simd`)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not args.model and not args.site:
        raise SystemExit("give --model (to build a site) or --site (a built one)")
    if args.threads and args.threads > 1 and not args.isolated:
        raise SystemExit(f"--threads {args.threads} needs --isolated: without cross-origin isolation wasm has one thread")
    with tempfile.TemporaryDirectory(prefix="fer_static_bench_") as tmp:
        site = Path(args.site or Path(tmp) / "site")
        if args.model:
            build_site(args.model, site, args.fp32)
        photos = {}
        for name, image in (("one_face", scene(ONE_FACE)), ("group", scene(GROUP, size=(960, 640), seed=1))):
            for fmt, options in (("jpeg", {"quality": 90}), ("png", {})):
                photos[f"{name}_{fmt}"] = Path(tmp) / f"{name}.{fmt}"
                image.save(photos[f"{name}_{fmt}"], fmt.upper(), **options)
        result = {"site": str(site), "site_size_mb": round(site_size_mb(site), 2),
                  **measure(site, photos, args.repeats, args.screenshot, args.isolated, args.threads, args.kernels),
                  "python_reference": python_reference(site, photos, args.repeats)}
    result["targets"] = {"first_prediction_within_3s": result["first_prediction_ms"] <= 3000,
                         **{f"under_50ms_a_face_{fmt}": max(result[f"{n}_{fmt}"]["ms_per_face"] for n in ("one_face", "group")) < 50
                            for fmt in ("jpeg", "png")},
                         "site_under_25mb": result["site_size_mb"] < 25, "no_outside_requests": not result["blocked_requests"]}
    print(f"site: {result['site_size_mb']:.1f} MB (target < 25)")
    load = result["load"]
    print(f"first prediction: {result['first_prediction_ms']:.0f} ms after navigation start (models ready at "
          f"{result['models_ready_ms']:.0f} ms: classifier files and any onnxruntime-web session "
          f"{load['runtime_and_classifier_ms']:.0f}, "
          f"then YuNet and ViT kernels {load['kernels_ms']:.0f}, warm-up run {load['warmup_ms']:.0f}; target <= 3000), "
          f"{result['first_prediction_after_load_ms']:.0f} ms after the load event; {result['threads']} wasm thread(s); "
          f"classifier: {CLASSIFIER_IN[load['vit_kernels']]}"
          f"; own kernels: {load['kernels']}")
    for name in photos:
        r, ref = result[name], result["python_reference"][name]
        print(f"{name} {r['size'][0]}x{r['size'][1]}, {r['faces']} face(s): {r['total_ms']:.1f} ms a photo p50 "
              f"(decode {r['decode_ms']:.1f}, detect {r['detect_ms']:.1f} = shrink {r['shrink_ms']:.1f} + YuNet "
              f"{r['yunet_ms']:.1f} + NMS, crops + model {r['classify_ms']:.1f}, draw {r['render_ms']:.1f}), "
              f"{r['ms_per_face']:.1f} ms a face (target < 50); fer_hf in Python at the same time: {ref['total_ms']:.1f} ms")
    print(f"outside requests blocked: {len(result['blocked_requests'])}; targets: {result['targets']}")
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
