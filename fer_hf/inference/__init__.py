"""Serving: photo in, faces and their emotions out (scripts/predict.py, the Gradio Space).

- `faces`: detection (YuNet, Haar fallback) and the crop's framing; `recognizer`: `EmotionRecognizer` on either
  backend (PyTorch, `onnx_backend`: onnxruntime); `explain`: attention rollout; `model_info`: which trained model
  to serve and what to say about it.

May import: data (labels, transforms), models, utils. Never training.
"""

# `from fer_hf.inference import EmotionRecognizer`: the public entry point, imported on first use (torch and
# transformers are heavy, and `fer_hf.inference.faces` alone needs neither)
_LAZY = {"EmotionRecognizer": "recognizer", "Face": "recognizer", "load_image": "recognizer"}


def __getattr__(name):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
