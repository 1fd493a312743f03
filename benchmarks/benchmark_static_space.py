"""Speed of the static Space in headless Chromium, measured by the page itself with performance.now().

    python benchmarks/benchmark_static_space.py --model outputs/quickstart [--site site] [--output bench_static.json]
    python benchmarks/benchmark_static_space.py --site site          # an already built site

Builds the site (fer_hf.export.static_site, as scripts/build_static_space.py does) unless `--site` holds one, serves
it with Python's http.server on 127.0.0.1, opens it in headless Chromium with every request to anywhere else blocked
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

`--faceapi` also measures face-api.js (benchmarks/peers/faceapi_page.html: @vladmandic/face-api's browser build on
the tfjs wasm backend, one thread, its own detector + withFaceExpressions(), installed by benchmarks/peers/compare.py's
`install_faceapi`) in the same browser on the same photos, the repeats interleaved with the static page's, and
writes the figures side by side, with face-api / static page ratios, to `--faceapi_output`:

    python benchmarks/benchmark_static_space.py --site /tmp/site_vit --faceapi --faceapi_detector ssd tiny \
        --repeats 5 --shared
The photos are real faces with no licence to worry about (benchmarks/photos.py: scikit-image's public-domain
astronaut, alone and composited into a group of five); `--drawn` uses drawn faces (fer_hf/data/synthetic.py)
instead. `--screenshot` saves the page with a result.
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
CLASSIFIER_IN = {"all": "vit.c (the page's own kernels)",
                 "blocks": "stem in onnxruntime-web, blocks and head in vit.c", "none": "onnxruntime-web"}


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript",  # noqa: RUF012
                      ".js": "text/javascript", ".wasm": "application/wasm", ".onnx": "application/octet-stream",
                      ".json": "application/json"}

    isolated = False
    served = None  # a list to append (path, bytes) to for each file sent, or None

    def copyfile(self, source, outputfile):
        # counted at the server: the bytes a page really downloaded (a fresh browser context has an empty cache)
        start = source.tell()
        super().copyfile(source, outputfile)
        if self.served is not None:
            self.served.append((self.path, source.tell() - start))

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
def serve(site: str | Path, isolated: bool = False, served: list | None = None):
    """A plain static file server for `site` on 127.0.0.1 (a free port); yields its URL. `isolated` adds the
    cross-origin isolation headers (as the Space's README asks Hugging Face to send); `served`, a list, gets a
    (path, bytes) pair for each file sent."""
    handler = functools.partial(type("Handler", (QuietHandler,), {"isolated": isolated, "served": served}),
                                directory=str(site))
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
        with guarded_page(browser, blocked, viewport) as page:
            yield page
    finally:
        browser.close()


@contextlib.contextmanager
def guarded_page(browser, blocked: list[str], viewport=(1200, 900)):
    """A page in a fresh context of `browser` (its own empty cache, so a first load downloads everything), whose
    requests to anything but loopback are aborted and listed in `blocked`."""
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})

    def guard(route):
        url = urlparse(route.request.url)
        if url.scheme in ("data", "blob") or url.hostname in LOOPBACK:
            return route.continue_()
        blocked.append(route.request.url)
        return route.abort()

    try:
        context.route("**/*", guard)
        yield context.new_page()
    finally:
        context.close()


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


def photo_scenes(drawn: bool = False) -> list[tuple[str, object]]:
    """(name, image) of the two benchmark photos: the public-domain astronaut alone (640x480) and composited into a
    group of five (960x640, benchmarks/photos.py), or with `drawn` the drawn faces of `scene`."""
    if drawn:
        return [("one_face", scene(ONE_FACE)), ("group", scene(GROUP, size=(960, 640), seed=1))]
    import photos

    return [("one_face", photos.astronaut()), ("group", photos.astronaut_group())]


STATIC_KEYS = ("decode_ms", "detect_ms", "shrink_ms", "yunet_ms", "classify_ms", "render_ms", "total_ms")
FACEAPI_KEYS = ("decode_ms", "detect_expressions_ms", "total_ms")


def p50_summary(runs: list[dict], keys) -> dict:
    """p50 of each timing in `keys` over a photo's runs (each a page's `ferTimings.last`), with its face count and
    ms a face (None when no face was found: a time per face would then be meaningless)."""
    last = runs[-1]
    p50 = {k: statistics.median(r[k] for r in runs) for k in keys}
    return {"faces": last["faces"], "size": [last["width"], last["height"]], **p50,
            "ms_per_face": p50["total_ms"] / last["faces"] if last["faces"] else None}


def first_load(page, url: str, photo: Path, served: list) -> dict:
    """Open `url` (a fresh context: nothing cached) and hand it `photo` at the load event; the figures of that first
    prediction, common to the static page and the face-api page."""
    page.goto(url, wait_until="load")
    first = analyse(page, photo)  # handed over at the load event, models possibly still loading
    if first["error"]:
        raise RuntimeError(f"{url}: the first photo failed: {first['error']}")
    t = first["timings"]
    load_event = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
    return {"first_prediction_ms": t["first_result_ms"], "models_ready_ms": t["models_ready_ms"],
            "load_event_ms": load_event, "first_prediction_after_load_ms": t["first_result_ms"] - load_event,
            "first_faces": len(first["result"]["faces"]),
            "fetched_until_first_prediction_bytes": sum(n for _, n in served)}


def measure(site: Path, photos: dict[str, Path], repeats: int, screenshot: str | None, isolated: bool = False,
            threads: int | None = None, kernels: str | None = None, faceapi: dict[str, Path] | None = None) -> dict:
    """The static page's figures; with `faceapi` ({detector: face-api site folder}) also those of each face-api page,
    in the same browser (one context each, so each first load starts with an empty cache). The repeats are
    interleaved photo by photo across the pages, so that a change in the machine's load hits all of them alike."""
    from playwright.sync_api import sync_playwright

    blocked, served, out = [], [], {}
    first_photo = next(iter(photos.values()))
    with contextlib.ExitStack() as stack:
        p = stack.enter_context(sync_playwright())
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        stack.callback(browser.close)
        url = stack.enter_context(serve(site, isolated, served))
        page = stack.enter_context(guarded_page(browser, blocked))
        query = "&".join(f"{k}={v}" for k, v in (("threads", threads), ("kernels", kernels)) if v)
        out.update(first_load(page, url + (f"?{query}" if query else ""), first_photo, served))
        t = page.evaluate("window.ferTimings")
        out["load"] = {k: t.get(k) for k in ("runtime_and_classifier_ms", "kernels_ms", "warmup_ms",
                                             "vit_kernels", "kernels")}
        out["threads"] = t["threads"]

        peers = {}
        for detector, folder in (faceapi or {}).items():
            peer = peers[detector] = {"served": [], "blocked": [], "console": []}
            furl = stack.enter_context(serve(folder, False, peer["served"]))  # never isolated: one wasm thread
            peer["page"] = stack.enter_context(guarded_page(browser, peer["blocked"]))
            # console errors say why, should tfjs's wasm backend refuse to start
            peer["page"].on("console", lambda m, log=peer["console"]: m.type == "error" and log.append(m.text))
            peer["page"].on("pageerror", lambda e, log=peer["console"]: log.append(str(e)))
            try:
                peer["figures"] = first_load(peer["page"], f"{furl}?detector={detector}", first_photo,
                                             peer["served"])
            except Exception as err:
                raise RuntimeError(f"face-api.js ({detector}): {err}; console: {peer['console']}") from err
            t = peer["page"].evaluate("window.ferTimings")
            peer["figures"].update({k: t.get(k) for k in ("backend_ready_ms", "backend", "simd", "threads",
                                                          "versions")})

        runs = {name: {"static": [], **{d: [] for d in peers}} for name in photos}
        for _ in range(repeats):
            for name, photo in photos.items():
                runs[name]["static"].append(analyse(page, photo)["timings"]["last"])
                for detector, peer in peers.items():
                    answer = analyse(peer["page"], photo)
                    if answer["error"]:
                        raise RuntimeError(f"face-api.js ({detector}) on {name}: {answer['error']}")
                    runs[name][detector].append(answer["timings"]["last"])
        for name in photos:
            out[name] = p50_summary(runs[name]["static"], STATIC_KEYS)
        if screenshot:
            analyse(page, photos["group_png"])
            save_screenshot(page, screenshot)
        out["fetched_bytes"] = sum(n for _, n in served)
        if peers:
            out["faceapi"] = {}
            for detector, peer in peers.items():
                out["faceapi"][detector] = {
                    **peer["figures"], **{name: p50_summary(runs[name][detector], FACEAPI_KEYS) for name in photos},
                    "fetched_bytes": sum(n for _, n in peer["served"]), "fetched": peer["served"],
                    "site_size_mb": round(site_size_mb(faceapi[detector]), 2), "blocked_requests": peer["blocked"]}
    out["blocked_requests"] = blocked
    return out


# ---------------------------------------------------------------- face-api.js, the peer page

PEERS = ROOT / "benchmarks" / "peers"
FACEAPI_CACHE = Path("~/.cache/fer_hf/peers").expanduser()  # compare.py's DEFAULT_CACHE
FACEAPI_MODELS = {"ssd": "ssd_mobilenetv1_model", "tiny": "tiny_face_detector_model"}
FACEAPI_DETECTORS = {"ssd": "SSD MobileNet V1 (face-api's default detector; its tutorial's withFaceExpressions() "
                            "examples use it)",
                     "tiny": "TinyFaceDetector (default options, inputSize 416)"}


def install_faceapi(cache: Path = FACEAPI_CACHE) -> Path:
    """The node_modules folder that benchmarks/peers/compare.py installs (`npm ci` of its pinned lock file),
    through compare.py's own function, loaded from its path (benchmarks/ is no package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("fer_peers_compare", PEERS / "compare.py")
    compare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare)
    return compare.install_faceapi(Path(cache)) / "node_modules"


def faceapi_site(node_modules: Path, dest: Path, detector: str = "ssd") -> dict[str, str]:
    """A folder a web developer would deploy for benchmarks/peers/faceapi_page.html: the page as index.html, its
    module, face-api's browser ES module build (it bundles tfjs, wasm backend included), the wasm binaries of the
    installed @tensorflow/tfjs-backend-wasm and, from face-api's model/ folder, the detector's and the expression
    net's weights only. Returns the versions of the two packages."""
    import shutil

    faceapi, wasm = node_modules / "@vladmandic" / "face-api", node_modules / "@tensorflow" / "tfjs-backend-wasm"
    (dest / "wasm").mkdir(parents=True)
    (dest / "model").mkdir()
    shutil.copyfile(PEERS / "faceapi_page.html", dest / "index.html")
    shutil.copyfile(PEERS / "faceapi_page.mjs", dest / "faceapi_page.mjs")
    shutil.copyfile(faceapi / "dist" / "face-api.esm.js", dest / "face-api.esm.js")
    for binary in sorted((wasm / "dist").glob("*.wasm")):  # tfjs picks one (SIMD or not, threaded or not) at run time
        shutil.copyfile(binary, dest / "wasm" / binary.name)
    for net in (FACEAPI_MODELS[detector], "face_expression_model"):
        for path in sorted((faceapi / "model").glob(f"{net}*")):
            shutil.copyfile(path, dest / "model" / path.name)
    return {name: json.loads((folder / "package.json").read_text())["version"]
            for name, folder in (("@vladmandic/face-api", faceapi), ("@tensorflow/tfjs-backend-wasm", wasm))}


def ratio(peer: float | None, ours: float | None) -> float | None:
    """peer / ours (>= 1.0: the static page is faster or smaller), None when either is missing or ours is 0."""
    return round(peer / ours, 2) if peer is not None and ours else None


def side_by_side(static: dict, peer: dict, photos) -> dict:
    """The static page's figures beside one face-api page's, with face-api / static page ratios."""

    def row(ours, theirs):
        return {"static_page": ours, "faceapi": theirs, "ratio": ratio(theirs, ours)}

    rows = {name: {"faces": {"static_page": static[name]["faces"], "faceapi": peer[name]["faces"]},
                   "ms_per_photo_p50": row(static[name]["total_ms"], peer[name]["total_ms"]),
                   "ms_per_face": row(static[name]["ms_per_face"], peer[name]["ms_per_face"])} for name in photos}
    for key in ("first_prediction_ms", "first_prediction_after_load_ms"):
        rows[key] = row(static[key], peer[key])
    rows["fetched_mb"] = row(round(static["fetched_bytes"] / 1e6, 2), round(peer["fetched_bytes"] / 1e6, 2))
    return rows


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


def save_screenshot(page, path: str, max_bytes: int = 300_000, full_page: bool = True) -> None:
    """A PNG of the page (or its viewport), palette-quantised if needed to stay under `max_bytes` (for the README)."""
    from PIL import Image

    page.screenshot(path=path, full_page=full_page)
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
    p.add_argument("--drawn", action="store_true", help="drawn faces (fer_hf/data/synthetic.py) instead of the "
                   "astronaut photos, e.g. for a model trained on the synthetic faces")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--output", default=None, help="JSON file for the figures")
    p.add_argument("--screenshot", default=None, help="PNG of the page with the group photo's result")
    p.add_argument("--isolated", action="store_true", help="serve with cross-origin isolation headers, so that "
                   "ONNX Runtime Web may use threads (slower on a busy 2-core machine: measured)")
    p.add_argument("--threads", type=int, default=None, help="wasm threads instead of the page's choice "
                   "(`?threads=N`; more than one needs --isolated)")
    p.add_argument("--kernels", choices=["simd"], default=None, help="the page's plain-SIMD kernels (kernels.wasm), "
                   "as browsers without relaxed SIMD get them (`?kernels=simd`)")
    p.add_argument("--faceapi", action="store_true", help="also measure face-api.js "
                   "(benchmarks/peers/faceapi_page.html, tfjs wasm backend, one thread) in the same browser on the "
                   "same photos, side by side")
    p.add_argument("--faceapi_detector", nargs="+", choices=sorted(FACEAPI_MODELS), default=["ssd"],
                   help="face-api's detector(s): ssd (SSD MobileNet V1, its default) and/or tiny (TinyFaceDetector)")
    p.add_argument("--faceapi_cache", default=str(FACEAPI_CACHE), help="where compare.py installs face-api.js")
    p.add_argument("--faceapi_output", default=str(ROOT / "results" / "static_space_vs_faceapi.json"),
                   help="JSON file for the side-by-side figures (with --faceapi)")
    p.add_argument("--shared", action="store_true", help="say in the JSON that the CPU was shared with other work "
                   "during the run (the load averages before and after are recorded anyway)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not args.model and not args.site:
        raise SystemExit("give --model (to build a site) or --site (a built one)")
    if args.threads and args.threads > 1 and not args.isolated:
        raise SystemExit(f"--threads {args.threads} needs --isolated: without cross-origin isolation wasm has one "
                         "thread")
    argv = sys.argv[1:] if argv is None else argv
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="fer_static_bench_") as tmp:
        site = Path(args.site or Path(tmp) / "site")
        if args.model:
            build_site(args.model, site, args.fp32)
        faceapi, versions = {}, {}
        if args.faceapi:
            node_modules = install_faceapi(Path(args.faceapi_cache).expanduser())
            for detector in args.faceapi_detector:
                faceapi[detector] = Path(tmp) / f"faceapi_{detector}"
                versions = faceapi_site(node_modules, faceapi[detector], detector)
        photos = {}
        for name, image in photo_scenes(args.drawn):
            for fmt, options in (("jpeg", {"quality": 90}), ("png", {})):
                photos[f"{name}_{fmt}"] = Path(tmp) / f"{name}.{fmt}"
                image.save(photos[f"{name}_{fmt}"], fmt.upper(), **options)
        result = {"site": str(site), "site_size_mb": round(site_size_mb(site), 2),
                  **measure(site, photos, args.repeats, args.screenshot, args.isolated, args.threads, args.kernels,
                            faceapi),
                  "python_reference": python_reference(site, photos, args.repeats)}
    result["targets"] = {"first_prediction_within_3s": result["first_prediction_ms"] <= 3000,
                         **{f"under_50ms_a_face_{fmt}": max(result[f"{n}_{fmt}"]["ms_per_face"] or float("inf")
                                                            for n in ("one_face", "group")) < 50
                            for fmt in ("jpeg", "png")},
                         "site_under_25mb": result["site_size_mb"] < 25,
                         "no_outside_requests": not result["blocked_requests"]}
    print(f"site: {result['site_size_mb']:.1f} MB (target < 25)")
    load = result["load"]
    print(f"first prediction: {result['first_prediction_ms']:.0f} ms after navigation start (models ready at "
          f"{result['models_ready_ms']:.0f} ms: classifier files and any onnxruntime-web session "
          f"{load['runtime_and_classifier_ms']:.0f}, "
          f"then YuNet and ViT kernels {load['kernels_ms']:.0f}, warm-up run {load['warmup_ms']:.0f}; "
          f"target <= 3000), {result['first_prediction_after_load_ms']:.0f} ms after the load event; "
          f"{result['threads']} wasm thread(s); "
          f"classifier: {CLASSIFIER_IN[load['vit_kernels']]}"
          f"; own kernels: {load['kernels']}")
    for name in photos:
        r, ref = result[name], result["python_reference"][name]
        print(f"{name} {r['size'][0]}x{r['size'][1]}, {r['faces']} face(s): {r['total_ms']:.1f} ms a photo p50 "
              f"(decode {r['decode_ms']:.1f}, detect {r['detect_ms']:.1f} = shrink {r['shrink_ms']:.1f} + YuNet "
              f"{r['yunet_ms']:.1f} + NMS, crops + model {r['classify_ms']:.1f}, draw {r['render_ms']:.1f}), "
              f"{r['ms_per_face'] or float('nan'):.1f} ms a face (target < 50); fer_hf in Python at the same time: "
              f"{ref['total_ms']:.1f} ms")
    print(f"outside requests blocked: {len(result['blocked_requests'])}; targets: {result['targets']}")
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    if args.faceapi:
        write_comparison(args, argv, result, list(photos), versions, load_before)
    return result


def write_comparison(args, argv: list[str], result: dict, photos: list[str], versions: dict,
                     load_before: tuple) -> dict:
    """Print the static page beside each face-api page and write `--faceapi_output`."""
    from fer_hf.utils.device import cpu_name

    cores = os.cpu_count()
    load_after = os.getloadavg()
    comparison = {
        "command": "python benchmarks/benchmark_static_space.py " + " ".join(argv),
        "machine": {"cpu": cpu_name(), "cores": cores, "shared": args.shared,
                    "load_average_1min_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
                    "note": (f"measured while other work (e.g. a training run) used the same {cores} cores: "
                             "absolute figures are inflated and noisy, the ratios (same browser, interleaved "
                             "repeats) are the figures to read") if args.shared else "no other work reported"},
        "chromium": CHROMIUM, "repeats": args.repeats, "photos": {n: result[n]["size"] for n in photos},
        "static_page": {"site": result["site"], "site_size_mb": result["site_size_mb"], "threads": result["threads"],
                        "classifier": CLASSIFIER_IN.get(result["load"]["vit_kernels"]),
                        "timed": "decode, detection (YuNet), crops, classifier and drawing (ferTimings total_ms)"},
        "faceapi": {"versions": versions, "backend": "tfjs wasm, one thread (setWasmPaths to the installed "
                    "@tensorflow/tfjs-backend-wasm dist/ files, served from the same localhost server)",
                    "timed": "decode (img.decode) + detectAllFaces(img, options).withFaceExpressions(); no drawing",
                    "detectors": {d: FACEAPI_DETECTORS[d] for d in result["faceapi"]}},
        "ratio": "face-api.js / static page: >= 1.0 means the static page is faster (or downloads less)",
        "side_by_side": {d: side_by_side(result, peer, photos) for d, peer in result["faceapi"].items()},
        "raw": {"static_page": {k: v for k, v in result.items() if k != "faceapi"}, "faceapi": result["faceapi"]},
    }
    for detector, rows in comparison["side_by_side"].items():
        print(f"\nstatic page vs face-api.js ({FACEAPI_DETECTORS[detector]}); ratio = face-api / static page")
        print(f"{'':<34}{'static page':>14}{'face-api.js':>14}{'ratio':>8}")
        for name in photos:
            faces = rows[name]["faces"]
            for key, unit in (("ms_per_photo_p50", "ms a photo"), ("ms_per_face", "ms a face")):
                print(f"{name + ' ' + unit:<34}" + cells(rows[name][key]) + f"   faces {faces['static_page']} / "
                      f"{faces['faceapi']}" * (key == "ms_per_face"))
        for key, label in (("first_prediction_ms", "first prediction (from navigation)"),
                           ("first_prediction_after_load_ms", "first prediction after load"),
                           ("fetched_mb", "downloaded (MB)")):
            print(f"{label:<34}" + cells(rows[key]))
    path = Path(args.faceapi_output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(comparison, indent=2) + "\n")
    print(f"wrote {path}")
    return comparison


def cells(row: dict) -> str:
    def one(value, width):
        return f"{'-':>{width}}" if value is None else f"{value:>{width}.1f}"

    return one(row["static_page"], 14) + one(row["faceapi"], 14) + (
        f"{'-':>8}" if row["ratio"] is None else f"{row['ratio']:>8.2f}")


if __name__ == "__main__":
    main()
