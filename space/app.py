"""Gradio Space: find the faces in a photo and say which of seven emotions each one shows.

    python space/app.py                                   # http://127.0.0.1:7860 (GRADIO_SERVER_PORT)
    FER_MODEL=outputs/quickstart python space/app.py      # a chosen model

The model comes from FER_MODEL (a local folder, a Hub id, or an ONNX export from scripts/export_onnx.py,
which serves faster on a CPU: docs/decisions.md, "Serving int8 ONNX on a CPU"); without it, the best trained model folder
under outputs/ (fer_hf.inference.model_info: the FER+ recipe's, then FER2013's, then the quickstart's; logged).
The page says above the result which model it serves, what it was trained on and its validation
accuracy, with a warning for a model trained only on synthetic faces. The `predict` API endpoint returns
`{"emotion", "confidence"}` for the main (largest) face plus `"faces": [...]` and `"model"` (the same
facts); the page draws a box and an "emotion confidence" label per face (kept inside the photo; the
runner-up is added when the network is unsure), the main face's seven scores, and optionally where the
ViT looked (attention rollout). Uploads over 20 MB or 40 megapixels, and anything that is not a usable image, get a
message instead of a result; the server keeps serving.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import cv2
import gradio as gr
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from fer_hf.data.synthetic import draw_face
from fer_hf.data.transforms import BadImageError
from fer_hf.inference import explain
from fer_hf.inference.model_info import describe, model_facts, resolve_model
from fer_hf.inference.options import ServeOptions
from fer_hf.inference.pipeline import MAX_BYTES, MAX_PIXELS
from fer_hf.inference.recognizer import EmotionRecognizer, load_image

torch.set_num_threads(1)  # a server shares its cores; one thread per request is the project's rule
cv2.setNumThreads(1)

NO_FACE = "No face found, so this is the prediction for the whole image (tick 'faces are already cropped' for crops)."


def upload_source(payload) -> tuple[str | bytes, str]:
    """The file (or data-URL bytes) behind an image payload, and a name for messages; size-checked."""
    if payload is None:
        raise gr.Error("Please upload an image, take a webcam snapshot or paste one first.")
    if isinstance(payload, dict) and payload.get("path"):
        name = payload.get("orig_name") or "the upload"
        size = os.path.getsize(payload["path"])
        if size > MAX_BYTES:
            raise gr.Error(f"{name} is {size / 2**20:.1f} MB; the limit is {MAX_BYTES // 2**20} MB.")
        return payload["path"], name
    url = payload.get("url") if isinstance(payload, dict) else payload
    if isinstance(url, str) and url.startswith("data:"):
        import base64

        data = base64.b64decode(url.split(",", 1)[1])
        if len(data) > MAX_BYTES:
            raise gr.Error(f"the image is {len(data) / 2**20:.1f} MB; the limit is {MAX_BYTES // 2**20} MB.")
        return data, "the image"
    raise gr.Error("The image did not arrive as a file; please upload it again.")


def recognizer_facts(recognizer: EmotionRecognizer) -> dict:
    """What the Space serves (fer_hf.inference.model_info.model_facts of the recognizer's folder or file)."""
    return model_facts(recognizer.name_or_path or "unnamed model", recognizer.backend)


def model_markdown(facts: dict) -> str:
    """The lines above the result: model name, architecture, training data, validation accuracy, warning."""
    text = f"**Model:** {describe(facts)}."
    if facts.get("warning"):
        text += f"\n\n> ⚠️ **Not a model for photos.** {facts['warning']}"
    return text


def analyse(recognizer: EmotionRecognizer, payload, cropped: bool, facts: dict | None = None) -> tuple[dict, dict]:
    """(API JSON, state for drawing) for one uploaded image; `facts` (default: read now) go under "model"."""
    source, name = upload_source(payload)
    try:
        image = load_image(source, max_pixels=MAX_PIXELS)
    except BadImageError as err:
        reason = str(err.__cause__ or err)
        if isinstance(source, str):  # the server's temporary path means nothing to the user
            reason = reason.replace(repr(source), name).replace(source, name)
        raise gr.Error(f"{name} cannot be used: {reason}") from err
    notes = []
    if isinstance(source, str):
        with Image.open(source) as probe:
            if getattr(probe, "n_frames", 1) > 1:
                notes.append(f"{name} is animated; its first frame was used.")
    faces = recognizer.recognize(image, detect=not cropped)
    if not faces:
        faces, whole = recognizer.recognize(image, detect=False), True
        notes.append(NO_FACE)
    else:
        whole = False
    main = faces[0]  # largest first
    result = {"emotion": main.emotion, "confidence": round(main.confidence, 4),
              "faces": [] if whole else [face.to_dict() for face in faces]}
    if whole:
        result["whole_image"] = main.to_dict()
    if notes:
        result["note"] = " ".join(notes)
    result["model"] = recognizer_facts(recognizer) if facts is None else facts
    return result, {"image": image, "faces": faces, "whole": whole, "notes": notes}


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def label_text(face, number: str = "") -> str:
    """'3: happiness 77%'; when the network is unsure (under 50%), the runner-up too: 'neutral 48% / happiness 41%'."""
    text = f"{number}{face.emotion} {face.confidence:.0%}"
    if face.confidence < 0.5 and len(face.scores) > 1:
        second = sorted(face.scores.items(), key=lambda kv: kv[1], reverse=True)[1]
        text += f" / {second[0]} {second[1]:.0%}"
    return text


def label_origin(box, text_size: tuple[int, int], image_size: tuple[int, int]) -> tuple[int, int]:
    """Top-left corner of a label box of `text_size` (w, h): above the face box, below it when there is no
    room above, inside it when there is none below either; always inside the image (clamped at every edge)."""
    x, y, _w, h = box
    tw, th = text_size
    width, height = image_size
    ty = y - th
    if ty < 0:
        ty = y + h if y + h + th <= height else y
    return max(0, min(x, width - tw)), max(0, min(ty, height - th))


def annotate(image: Image.Image, faces, whole: bool = False) -> Image.Image:
    """A copy of `image` with a box and an 'emotion 87%' label per face, every label inside the image."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    width = max(2, round(max(image.size) / 250))
    font = _font(max(12, round(max(image.size) / 35)))
    for i, face in enumerate(faces):
        x, y, w, h = face.box
        colour = (255, 170, 0) if whole else (40, 220, 90)
        if not whole:
            draw.rectangle([x, y, x + w - 1, y + h - 1], outline=colour, width=width)
        text = label_text(face, f"{i + 1}: " if len(faces) > 1 else "")  # the order of "faces" in the API result
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        size = (right - left + 2 * width, bottom - top + 2 * width)
        tx, ty = (0, 0) if whole else label_origin((x, y, w, h), size, image.size)
        draw.rectangle([tx, ty, tx + size[0] - 1, ty + size[1] - 1], fill=colour)
        draw.text((tx + width - left, ty + width - top), text, fill=(0, 0, 0), font=font)
    return out


def render(recognizer: EmotionRecognizer, state: dict | None, attention: bool):
    """Annotated image, main face's scores and a message, from `analyse`'s state."""
    if not state:
        return None, None, ""
    image, faces, notes = state["image"], state["faces"], list(state["notes"])
    if attention and recognizer.model is None:  # FER_MODEL=x.onnx: onnxruntime runs it, no torch network
        notes.append("No attention map: this Space serves an ONNX model; serve the model folder for the map.")
    elif attention:
        try:
            image = explain.overlay(image, faces, explain.face_maps(recognizer, faces))
        except TypeError:  # a CNN (e.g. the quickstart's resnet10t) has no attention to roll out
            notes.append(f"No attention map: {recognizer.model.config.architecture} is not a ViT.")
    n = len(faces)
    found = [] if state["whole"] else ["1 face found." if n == 1 else f"{n} faces found; the scores are for the largest."]
    message = " ".join(found + notes)
    return annotate(image, faces, state["whole"]), dict(faces[0].scores), message


def live(recognizer: EmotionRecognizer, frame, cropped: bool):
    """One webcam frame in, the annotated frame out (faces only; no message)."""
    if frame is None:
        return None
    image = load_image(frame)
    return annotate(image, recognizer.recognize(image, detect=not cropped))


EXAMPLES = {"one_face.png": [("happiness", 200, (220, 110))],
            "two_faces.png": [("surprise", 170, (60, 120)), ("sadness", 190, (390, 90))],
            "no_face.png": []}


def draw_scene(faces, seed: int) -> Image.Image:
    """Drawn (not photographed) faces on a plain room: no real people, no licences."""
    rng = np.random.default_rng(seed)
    canvas = Image.new("RGB", (640, 420), (196, 206, 218))
    ImageDraw.Draw(canvas).rectangle([0, 330, 640, 420], fill=(120, 150, 100))  # a floor, for the empty scene
    for emotion, size, at in faces:
        canvas.paste(draw_face(emotion, rng, size, True), at)
    return canvas


def make_examples(folder: str | Path, detect=None, tries: int = 30) -> list[str]:
    """The example images; with `detect`, the first seed whose cartoon faces the detector all finds
    (detectors miss some drawn faces, and an example should show what the app does)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for name, faces in EXAMPLES.items():
        for seed in range(tries):
            canvas = draw_scene(faces, seed)
            if detect is None or len(detect(canvas)) == len(faces):
                break
        canvas.save(folder / name)
        files.append(str(folder / name))
    return files


REAL_EXAMPLES = Path(__file__).resolve().parent / "examples"  # benchmarks/photos.py write_examples


def example_files(facts: dict, folder: str | Path, detect=None) -> list[str]:
    """Real photos (examples/: scikit-image's public-domain astronaut, alone and composited into a group) for a
    model trained on real faces; drawn faces for one trained only on drawn faces (the quickstart)."""
    real = sorted(REAL_EXAMPLES.glob("*.jpg"))
    if real and not facts.get("synthetic_only"):
        return [str(p) for p in real]
    return make_examples(folder, detect)


def build_demo(recognizer: EmotionRecognizer, examples_dir: str | Path | None = None, facts: dict | None = None) -> gr.Blocks:
    """The page; `facts` (default: read from the recognizer's model folder) are shown above the result."""
    facts = recognizer_facts(recognizer) if facts is None else facts
    detect = recognizer.detector.detect if recognizer.detector else None
    examples = example_files(facts, examples_dir or tempfile.mkdtemp(prefix="fer_space_examples_"), detect)
    with gr.Blocks(title="Facial expression recognition", analytics_enabled=False) as demo:
        gr.Markdown("# Facial expression recognition\nFaces are found with YuNet (or OpenCV's Haar cascade) and "
                    "each one is classified as anger, disgust, fear, happiness, neutral, sadness or surprise.")
        with gr.Tab("Photo"):
            with gr.Row():
                with gr.Column():
                    image = gr.Image(label="Photo", sources=["upload", "webcam", "clipboard"], type="filepath")
                    cropped = gr.Checkbox(label="Faces are already cropped (classify the whole image)")
                    attention = gr.Checkbox(label="Show where the model looked (attention rollout)")
                    submit = gr.Button("Analyse", variant="primary")
                with gr.Column():
                    gr.Markdown(model_markdown(facts), elem_id="model-info")
                    annotated = gr.Image(label="Faces", type="pil", interactive=False, elem_id="annotated")
                    message = gr.Markdown(elem_id="message")
                    label = gr.Label(label="Main face", num_top_classes=7, elem_id="main-face")
                    result = gr.JSON(label="API result (all faces)")
            gr.Examples(examples=[[f, False, False] for f in examples], inputs=[image, cropped, attention])
        with gr.Tab("Live webcam"):
            with gr.Row():
                cam = gr.Image(label="Webcam", sources=["webcam"], streaming=True, type="numpy")
                cam_out = gr.Image(label="Faces", type="pil", interactive=False)
            cam_cropped = gr.Checkbox(label="Faces are already cropped")
        state = gr.State()

        def predict(image, faces_cropped=False):
            """{"emotion", "confidence"} of the largest face, "faces": box, emotion and scores of each, and
            "model": the served model's name, training data and validation accuracy."""
            return analyse(recognizer, image, faces_cropped, facts)

        # preprocess=False: the upload reaches `analyse` undecoded, so size limits and bad files get our message.
        submit.click(predict, [image, cropped], [result, state], api_name="predict", preprocess=False).success(
            lambda st, att: render(recognizer, st, att), [state, attention], [annotated, label, message],
            api_visibility="private")
        image.change(lambda: (None, None, None, ""), None, [result, annotated, label, message],  # no stale result
                     api_visibility="private", queue=False)
        cam.stream(lambda frame, crop: live(recognizer, frame, crop), [cam, cam_cropped], [cam_out],
                   stream_every=0.5, time_limit=120, api_visibility="private")
    return demo


def main() -> None:
    import logging

    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
    env = ServeOptions.from_environ(os.environ)  # FER_MODEL, FER_DETECTOR, ... (fer_hf/inference/options.py)
    model = resolve_model(env.model, env.roots)  # else the best trained folder under outputs/, logged
    recognizer = EmotionRecognizer.from_pretrained(model, detector=None if env.detector == "none" else env.detector,
                                                   yunet_model=env.yunet_model, detection=env.detection)
    facts = recognizer_facts(recognizer)
    logging.getLogger("fer_hf.space").info("Model: %s.%s", describe(facts), f" {facts['warning']}" if facts["warning"] else "")
    demo = build_demo(recognizer, facts=facts)
    demo.queue(default_concurrency_limit=1, max_size=32).launch(max_file_size=MAX_BYTES)


if __name__ == "__main__":
    main()
