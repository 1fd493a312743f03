"""The pictures of the README and docs/, drawn from what results/ measured, in one command.

    python benchmarks/make_figures.py                                    # from results/*.json -> docs/figures/
    python benchmarks/make_figures.py --runs teacher=outputs/ferplus_teacher_cpu student=outputs/ferplus_vit_tiny_cpu \
        --screenshots --model outputs/ferplus_vit_tiny_cpu --site site  # also refresh the curves and screenshots

Figures (docs/figures/):
- `curves.png`: FER+ validation accuracy and macro-F1 after each epoch of the teacher and the student, and
  accuracy per training minute (results/curves.json; `--runs` rewrites it from the runs' trainer_state.json and
  all_results.json);
- `confusion.png`: the served model's row-normalised confusion matrices on FER+ validation and the two
  cross-domain dev sets (results/models.json, written by `evaluate.py --suite --record NAME`);
- `recall.png`: per-class recall on each set, the project's models beside the peers (results/peers.json);
- `speed.png`: ms a face in the browser and time to the first prediction, static page vs face-api.js in the same
  Chromium run (results/static_space_vs_faceapi.json);
- with `--screenshots`: `space.png` (the Gradio Space serving `--model`) and `static_page.png` (the static site
  `--site`), each on the group photo of benchmarks/photos.py (scikit-image's public-domain astronaut).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
FIGURES = ROOT / "docs" / "figures"
SET_TITLES = {"ferplus_val": "FER+ validation", "sfew_dev": "SFEW dev (film stills)", "ckplus_dev": "CK+ dev (posed)"}
SERVED = "student"  # the results/models.json entry the confusion matrices show


def read(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run the command that measures it (its docstring says which).")
    return json.loads(path.read_text())


def figure(size):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=100)
    FigureCanvasAgg(fig)
    return fig


def save(fig, path: Path) -> Path:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def curves_from_runs(runs: dict[str, str]) -> dict:
    """{label: {"points", "minutes_per_epoch", "epochs"}} from run folders: what results/curves.json holds."""
    from fer_hf.evaluation.curves import eval_points, minutes_per_epoch
    from fer_hf.utils.device import cpu_name

    out = {label: {"run": folder, "points": eval_points(folder), "minutes_per_epoch": minutes_per_epoch(folder)}
           for label, folder in runs.items()}
    return {"cpu": cpu_name(), "runs": out}


def plot_curves(curves: dict, path: Path) -> Path:
    from fer_hf.evaluation.curves import plot_curves as draw

    runs = {label: r["points"] for label, r in curves["runs"].items()}
    minutes = {label: r["minutes_per_epoch"] for label, r in curves["runs"].items() if r["minutes_per_epoch"]}
    draw(runs, str(path), minutes)
    return path


def plot_confusion(entry: dict, name: str, path: Path) -> Path:
    from fer_hf.data.labels import CLASSES

    sets = {k: v for k, v in entry["sets"].items() if "confusion" in v}
    if not sets:
        raise ValueError(f"results/models.json {name!r} holds no confusion matrix: rerun evaluate.py --suite --record.")
    fig = figure((5.2 * len(sets), 4.8))
    for i, (set_name, m) in enumerate(sets.items()):
        cm = np.asarray(m["confusion"], dtype=float)
        rows = cm.sum(axis=1, keepdims=True)
        share = np.divide(cm, rows, out=np.full(cm.shape, np.nan), where=rows > 0)
        ax = fig.add_subplot(1, len(sets), i + 1)
        ax.imshow(np.nan_to_num(share), cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(len(CLASSES)), [c[:5] for c in CLASSES], rotation=45, ha="right")
        ax.set_yticks(range(len(CLASSES)), [f"{c[:5]} ({int(r)})" for c, r in zip(CLASSES, rows[:, 0])])
        ax.set(xlabel="predicted", ylabel="true (images)" if i == 0 else None,
               title=f"{SET_TITLES.get(set_name, set_name)}: {100 * m['accuracy']:.1f}%")
        for r in range(len(CLASSES)):
            for c in range(len(CLASSES)):
                if rows[r, 0]:
                    ax.text(c, r, f"{share[r, c]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if share[r, c] > 0.5 else "black")
    fig.suptitle(f"{name} ({entry['training']['architecture'] if entry.get('training') else entry['model']}): "
                 "share of each true class, single view")
    return save(fig, path)


def plot_recall(models: dict, peers: dict, path: Path) -> Path:
    """Grouped bars: per-class recall on each set, one bar per model (ours first, then the peers)."""
    from fer_hf.data.labels import CLASSES

    rows = {**{k: v["sets"] for k, v in models.items()},
            **{k: peers[k] for k in peers.get("versions", {})}}  # the peers' entries (beside "sets", "command")
    fig = figure((15, 3.8))
    width = 0.8 / len(rows)
    for i, set_name in enumerate(SET_TITLES):
        ax = fig.add_subplot(1, len(SET_TITLES), i + 1)
        classes = [c for c in CLASSES if any(c in r.get(set_name, {}).get("recall", {}) for r in rows.values())]
        for j, (label, sets) in enumerate(rows.items()):
            m = sets.get(set_name)
            if not m:
                continue
            ax.bar(np.arange(len(classes)) + (j - (len(rows) - 1) / 2) * width,
                   [100 * m["recall"].get(c, 0) for c in classes], width,
                   label=f"{label} {100 * m['accuracy']:.1f}%")
        ax.set_xticks(range(len(classes)), [c[:5] for c in classes])
        ax.set(title=SET_TITLES[set_name], ylim=(0, 100), ylabel="recall %" if i == 0 else None)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, title="model, accuracy", title_fontsize=7)
    return save(fig, path)


def plot_speed(comparison: dict, path: Path) -> Path:
    """ms a face per photo, and ms to the first prediction: the static page beside face-api.js (one bar pair each)."""
    detector = "tiny" if "tiny" in comparison["side_by_side"] else next(iter(comparison["side_by_side"]))
    rows = comparison["side_by_side"][detector]
    photos = [k for k, v in rows.items() if isinstance(v, dict) and "ms_per_face" in v]
    fig = figure((11, 3.6))
    ax = fig.add_subplot(1, 2, 1)
    x = np.arange(len(photos))
    for k, (who, label) in enumerate((("static_page", "fer-hf static page"), ("faceapi", f"face-api.js ({detector})"))):
        values = [rows[p]["ms_per_face"][who] or np.nan for p in photos]
        ax.bar(x + (k - 0.5) * 0.38, values, 0.38, label=label)
    ax.set_xticks(x, [p.replace("_", " ") for p in photos])
    ax.set(ylabel="ms a face (p50)", title="per face, same Chromium, one wasm thread")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    ax = fig.add_subplot(1, 2, 2)
    keys = ("first_prediction_ms", "first_prediction_after_load_ms")
    for k, who in enumerate(("static_page", "faceapi")):
        ax.bar(np.arange(len(keys)) + (k - 0.5) * 0.38, [rows[key][who] for key in keys], 0.38,
               label="fer-hf static page" if who == "static_page" else f"face-api.js ({detector})")
    ax.legend(fontsize=8)
    ax.set_xticks(range(len(keys)), ["first prediction\n(from navigation)", "first prediction\n(after load event)"])
    ax.set(ylabel="ms", title=f"first prediction; download {rows['fetched_mb']['static_page']} vs "
                              f"{rows['fetched_mb']['faceapi']} MB")
    ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{comparison['machine']['cpu']}, {comparison['machine']['cores']} cores"
                 + (" (shared with other work: read the ratios)" if comparison["machine"].get("shared") else ""),
                 fontsize=9)
    return save(fig, path)


def space_screenshot(model: str, photo: Path, path: Path) -> Path:
    """The Gradio Space serving `model`, after analysing `photo`: the viewport, as a user sees it."""
    import importlib.util

    import benchmark_static_space as bench
    from load_test import free_port
    from playwright.sync_api import expect, sync_playwright

    from fer_hf.inference.recognizer import EmotionRecognizer

    spec = importlib.util.spec_from_file_location("space_app", ROOT / "space" / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    demo = app.build_demo(EmotionRecognizer.from_pretrained(model))
    port = free_port()
    demo.queue(default_concurrency_limit=1).launch(server_name="127.0.0.1", server_port=port,
                                                   prevent_thread_lock=True, quiet=True)
    with contextlib.ExitStack() as stack:
        stack.callback(demo.close)
        p = stack.enter_context(sync_playwright())
        browser = p.chromium.launch(executable_path=bench.CHROMIUM, args=bench.CHROMIUM_ARGS)
        stack.callback(browser.close)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"http://127.0.0.1:{port}/")
        page.locator("input[type=file]").first.set_input_files(str(photo))
        page.get_by_role("button", name="Analyse").click()
        expect(page.locator("#message")).to_contain_text("found", timeout=60_000)
        bench.save_screenshot(page, str(path), full_page=False)  # the viewport, as a user sees it
    return path


def static_page_screenshot(site: Path, photo: Path, path: Path) -> Path:
    """The static page (a built site) after analysing `photo`."""
    import benchmark_static_space as bench
    from playwright.sync_api import sync_playwright

    blocked = []
    with bench.serve(site) as url, sync_playwright() as p, bench.browser_page(p, blocked) as page:
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(url, wait_until="load")
        out = bench.analyse(page, photo)
        if out["error"]:
            raise RuntimeError(f"the static page on {photo}: {out['error']}")
        bench.save_screenshot(page, str(path))
    return path


def main(argv: list[str] | None = None) -> list[Path]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default=str(RESULTS), help="Folder of the measured JSON files.")
    p.add_argument("--output_dir", default=str(FIGURES))
    p.add_argument("--runs", nargs="+", default=None, metavar="LABEL=FOLDER",
                   help="Training run folders whose curves replace results/curves.json.")
    p.add_argument("--served", default=SERVED, help="The results/models.json entry whose confusion matrices are drawn.")
    p.add_argument("--screenshots", action="store_true", help="Also the Space and the static page on the group photo.")
    p.add_argument("--model", default=None, help="With --screenshots: the model folder the Space serves.")
    p.add_argument("--site", default=None, help="With --screenshots: a built static site (build_static_space.py).")
    args = p.parse_args(argv)
    results, out = Path(args.results), Path(args.output_dir)
    if args.screenshots and not (args.model and args.site):
        p.error("--screenshots needs --model (a model folder) and --site (a built static site)")
    if args.runs:
        runs = dict(r.split("=", 1) for r in args.runs)
        (results / "curves.json").write_text(json.dumps(curves_from_runs(runs), indent=1) + "\n")
    models, peers = read(results / "models.json"), read(results / "peers.json")
    if args.served not in models:
        p.error(f"--served {args.served!r}: results/models.json holds {sorted(models)}")
    written = [plot_curves(read(results / "curves.json"), out / "curves.png"),
               plot_confusion(models[args.served], args.served, out / "confusion.png"),
               plot_recall(models, peers, out / "recall.png"),
               plot_speed(read(results / "static_space_vs_faceapi.json"), out / "speed.png")]
    if args.screenshots:
        import photos

        with tempfile.TemporaryDirectory() as tmp:
            group = Path(tmp) / "group.jpg"
            photos.astronaut_group().save(group, quality=90)
            written += [space_screenshot(args.model, group, out / "space.png"),
                        static_page_screenshot(Path(args.site), group, out / "static_page.png")]
    for path in written:
        print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")
    return written


if __name__ == "__main__":
    main()
