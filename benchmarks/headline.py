"""The README's headline table, rendered from results/ so that it says exactly what was measured.

    python benchmarks/headline.py            # rewrite the table between the README's headline markers
    python benchmarks/headline.py --check    # exit 1 if the README's table differs from results/

Rows: the project's models (results/models.json, `evaluate.py --suite --record NAME`) and the peers
(results/peers.json, benchmarks/peers/compare.py); accuracy / macro-F1 on FER+ validation and the two cross-domain dev
sets; ms a face on the group photo, in Python (results/python_speed.json, benchmarks/python_speed.py: one thread,
photo to scores) or in Chromium (results/static_space_vs_faceapi.json, benchmarks/benchmark_static_space.py
--faceapi: one wasm thread); and what a user downloads (the weights, the static site, face-api's page, fer's model).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
README = ROOT / "README.md"
START, END = "<!-- headline table: benchmarks/headline.py -->", "<!-- end of headline table -->"
SETS = ("ferplus_val", "sfew_dev", "ckplus_dev")
PHOTO = "group"  # the five-face photo of benchmarks/photos.py
FACEAPI_DETECTOR = "ssd"  # face-api.js's default detector
# (results key, row label, where its speed was measured)
ROWS = (
    ("teacher", "teacher: resnet18 from scratch, 64 px, {epochs} epochs (`ferplus_teacher_cpu`)", "python"),
    ("student", "**student**: R+ViT-Ti from scratch, 48 px, distilled, {epochs} epochs (`ferplus_vit_tiny_cpu`)", "python"),
    ("student_int8", "student, int8 ONNX: what the static page runs", "browser"),
    ("face-api.js", "peer: face-api.js (FaceExpressionNet, npm)", "browser"),
    ("fer", "peer: pip `fer` (mini-Xception, FER2013)", "python"),
)
HEADER = ("| model | FER+ validation acc. / macro-F1 | SFEW dev (film stills) | CK+ dev (posed) | ms a face | download |\n"
          "|---|---|---|---|---|---|")


def load(results: Path, name: str) -> dict:
    path = results / name
    return json.loads(path.read_text()) if path.is_file() else {}


def accuracy_cells(sets: dict) -> list[str]:
    return [f"{100 * sets[s]['accuracy']:.1f}% / {sets[s]['macro_f1']:.3f}" if s in sets else "not measured"
            for s in SETS]


def render(results: Path = RESULTS) -> str:
    models, peers = load(results, "models.json"), load(results, "peers.json")
    python, browser = load(results, "python_speed.json"), load(results, "static_space_vs_faceapi.json")
    side = browser.get("side_by_side", {}).get(FACEAPI_DETECTOR, {})
    lines = [HEADER]
    for key, label, where in ROWS:
        entry = models.get(key) or ({"sets": peers[key]} if key in peers else None)
        if entry is None:
            continue
        facts = entry.get("training") or {}
        label = label.format(epochs=f"{facts['epochs']:.1f}" if facts.get("epochs") else "?")
        if where == "python":  # photo to scores in Python; the download is the weights (fer: its tflite file)
            ms = python.get("figures", {}).get(PHOTO, {}).get(key, {}).get("ms_per_face")
            if key == "fer":
                size = f"{python['fer_model_kb']:.0f} kB model" if python.get("fer_model_kb") else None
            else:
                size = f"{facts['weights_mb']:.0f} MB weights" if facts.get("weights_mb") else None
        else:  # a page in Chromium; the download is what the page fetched
            who = "faceapi" if key == "face-api.js" else "static_page"
            ms = side.get(f"{PHOTO}_jpeg", {}).get("ms_per_face", {}).get(who)
            size = f"{side['fetched_mb'][who]:.1f} MB page" if "fetched_mb" in side else None
        speed = f"{ms:.1f} ({'Python' if where == 'python' else 'browser'})" if ms else "not measured"
        lines.append(f"| {label} | " + " | ".join(accuracy_cells(entry["sets"]) + [speed, size or "—"]) + " |")
    return "\n".join(lines)


def readme_table(text: str) -> str:
    if START not in text or END not in text:
        raise ValueError(f"README.md has no headline markers ({START} ... {END}).")
    return text.split(START, 1)[1].split(END, 1)[0].strip()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="Only compare; exit 1 when the README's table differs.")
    p.add_argument("--results", default=str(RESULTS))
    p.add_argument("--readme", default=str(README))
    args = p.parse_args(argv)
    readme = Path(args.readme)
    text, table = readme.read_text(), render(Path(args.results))
    if readme_table(text) == table:
        print("README headline table matches results/.")
        return 0
    if args.check:
        print(f"README headline table differs from results/; run python benchmarks/headline.py. Expected:\n{table}")
        return 1
    before, rest = text.split(START, 1)
    readme.write_text(f"{before}{START}\n{table}\n{END}{rest.split(END, 1)[1]}")
    print(f"rewrote the headline table in {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
