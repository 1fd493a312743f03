"""Evaluation: batched predictions (with flip TTA), calibration, per-source metrics and figures.

- `predict_logits` runs a model over an undecoded, harmonised dataset in batches, without gradients,
  with the same decoding and normalisation as training (`FerTransform`, `FerCollator.normalise`);
  unreadable images are skipped and counted, and the rows kept are returned so nothing misaligns.
- Calibration follows Guo et al., "On Calibration of Modern Neural Networks" (ICML 2017,
  https://arxiv.org/abs/1706.04599): expected calibration error over 15 equal-width confidence bins,
  and temperature scaling, one scalar T fitted by minimising the NLL of `softmax(logits / T)`.
- Figures are drawn on `matplotlib.figure.Figure` with the Agg canvas, never through pyplot, so
  importing this module changes no global backend (notebooks keep theirs) and needs no display.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.labels import CLASSES
from ..data.transforms import BadImageError, FerCollator, FerTransform, open_image
from ..models.modeling import TEMPERATURE_KEY, preprocessing_config, read_temperature, write_temperature  # noqa: F401
from .metrics import classification_metrics

ECE_BINS = 15
T_BOUNDS = (0.05, 20.0)  # a wider fit only happens on degenerate data (all right or all wrong)


@dataclass
class Predictions:
    """Raw model outputs for the readable rows of a dataset."""

    logits: np.ndarray  # (n_kept, 7) float32
    flip_logits: np.ndarray | None  # the same for the horizontally mirrored images (TTA), else None
    kept: np.ndarray  # dataset row index of each logits row
    paths: list  # file path of every dataset row, None where unknown
    n_skipped: int


def preprocessing_of(model) -> dict:
    """Image size, mean, std and grey input of a PyTorch model (its config) or of an ONNX classifier (its `pipeline`, read from
    the file's metadata by fer_hf.inference.onnx_backend)."""
    if isinstance(model, torch.nn.Module):
        return preprocessing_config(model.config)
    pipe = model.pipeline
    return {"image_size": pipe.image_size, "mean": list(pipe.mean), "std": list(pipe.std), "grayscale": pipe.grayscale}


def predict_logits(model, dataset, batch_size: int = 128, tta: str | None = None, bf16: bool = False,
                   desc: str = "evaluating") -> Predictions:
    """Logits for every readable image of `dataset` (columns `image`, optionally `label`, `source`); `model` is a
    PyTorch image classifier or an ONNX one (`OnnxClassifier`: pixel_values -> logits)."""
    if tta not in (None, "none", "flip"):
        raise ValueError(f"tta={tta!r}: expected None or 'flip'.")
    pre = preprocessing_of(model)
    transform = FerTransform(pre["image_size"], train=False)
    normalise = FerCollator(pre["mean"], pre["std"], pre["image_size"], pre["grayscale"]).normalise
    raw = dataset.with_format(None)  # drop any transform the caller set; we decode ourselves
    torch_model = isinstance(model, torch.nn.Module)
    device = next(model.parameters()).device if torch_model else torch.device("cpu")
    if torch_model:
        model.eval()
    run = (lambda x: model(pixel_values=x).logits) if torch_model else model  # an ONNX classifier returns logits
    logits, flips, kept, paths = [], [], [], []
    for start in tqdm(range(0, len(raw), batch_size), desc=desc, unit="batch"):
        images = raw[start:start + batch_size]["image"]
        paths += [v.get("path") if isinstance(v, dict) else None for v in images]
        pixels = [transform.one(v) for v in images]
        good = [i for i, p in enumerate(pixels) if p is not None]
        if not good:
            continue
        kept += [start + i for i in good]
        x = normalise(torch.stack([pixels[i] for i in good])).to(device)
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits.append(run(x).float().cpu())
            if tta == "flip":  # dim -1 is width: a horizontal mirror, as faces are left-right symmetric
                flips.append(run(x.flip(-1)).float().cpu())
    empty = np.zeros((0, len(CLASSES)), dtype=np.float32)
    stack = lambda parts: torch.cat(parts).numpy() if parts else empty
    return Predictions(stack(logits), stack(flips) if tta == "flip" else None,
                       np.asarray(kept, dtype=np.int64), paths, len(raw) - len(kept))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of `logits / temperature`, in float64 for stable NLL and ECE."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class."""
    if len(labels) == 0:
        return 0.0
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None))))


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, n_bins: int = ECE_BINS):
    """Per equal-width bin of (0, 1]: mean confidence, accuracy, count (NaN where a bin is empty)."""
    idx = np.clip(np.ceil(np.asarray(confidence) * n_bins).astype(int) - 1, 0, n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(idx, weights=confidence, minlength=n_bins) / counts
        acc = np.bincount(idx, weights=np.asarray(correct, dtype=float), minlength=n_bins) / counts
    return conf, acc, counts


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """ECE: the count-weighted mean gap |accuracy - confidence| over confidence bins."""
    if len(labels) == 0:
        return 0.0
    conf, acc, counts = reliability_bins(probs.max(axis=1), probs.argmax(axis=1) == labels, n_bins)
    full = counts > 0
    return float(np.sum(counts[full] * np.abs(acc[full] - conf[full])) / counts.sum())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The scalar T in `T_BOUNDS` minimising the NLL of `softmax(logits / T)`: deterministic 1-D search.

    The NLL is convex in 1/T, hence unimodal in log T, so bounded Brent search finds the optimum.
    """
    from scipy.optimize import minimize_scalar

    labels = np.asarray(labels)
    if len(labels) == 0:
        raise ValueError("cannot fit a temperature on zero images.")
    res = minimize_scalar(lambda log_t: nll(softmax(logits, np.exp(log_t)), labels),
                          bounds=tuple(np.log(T_BOUNDS)), method="bounded", options={"xatol": 1e-5})
    return float(np.exp(res.x))


def summarise(labels: np.ndarray, probs: np.ndarray) -> dict:
    """`classification_metrics` of the argmax plus calibration (ECE, NLL) and the image count."""
    labels = np.asarray(labels)
    out = classification_metrics(labels, probs.argmax(axis=1))
    out.update(ece=expected_calibration_error(probs, labels), nll=nll(probs, labels), n_images=len(labels))
    return out


def per_source_metrics(labels: np.ndarray, probs: np.ndarray, sources) -> dict[str, dict]:
    """`{source: summarise(...)}` over the rows of each source, sources in sorted order."""
    sources = np.asarray(sources)
    return {str(s): summarise(labels[sources == s], probs[sources == s]) for s in sorted(set(sources.tolist()))}


def _agg_figure(size):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=110)
    FigureCanvasAgg(fig)
    return fig


def figure_to_array(fig) -> np.ndarray:
    """HxWx3 uint8 pixels of a figure (for TensorBoard's add_image)."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def plot_confusion_matrix(cm: np.ndarray, path: str | None = None, title: str = "Confusion matrix"):
    """Row-normalised 7x7 heatmap, each cell showing its share and its count; saved to `path` if given."""
    cm = np.asarray(cm)
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)  # absent class: 0s
    fig = _agg_figure((7.5, 6.5))
    ax = fig.add_subplot()
    im = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    names = list(CLASSES)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), [f"{n} ({int(r)})" for n, r in zip(names, rows[:, 0])])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (images)")
    ax.set_title(title)
    for i in range(len(names)):
        for j in range(len(names)):
            colour = "white" if share[i, j] > 0.5 else "black"
            ax.text(j, i, f"{share[i, j]:.2f}\n{cm[i, j]}", ha="center", va="center", fontsize=7.5, color=colour)
    fig.tight_layout()
    if path:
        fig.savefig(path)
    return fig


def plot_reliability(probs: np.ndarray, labels: np.ndarray, path: str | None = None, title: str = "Reliability",
                     before: np.ndarray | None = None, n_bins: int = ECE_BINS):
    """Accuracy per confidence bin against the diagonal; `before` adds the uncalibrated curve."""
    fig = _agg_figure((6, 6))
    ax = fig.add_subplot()
    centres = (np.arange(n_bins) + 0.5) / n_bins
    conf, acc, counts = reliability_bins(probs.max(axis=1), probs.argmax(axis=1) == labels, n_bins)
    ece = expected_calibration_error(probs, labels, n_bins)
    ax.bar(centres, np.nan_to_num(acc), width=1 / n_bins, edgecolor="black", alpha=0.7,
           label=f"accuracy (ECE {ece:.3f})")
    full = counts > 0
    ax.plot(conf[full], acc[full], "o", color="tab:blue", markersize=4, label="bins (mean confidence, accuracy)")
    if before is not None:
        b_conf, b_acc, b_counts = reliability_bins(before.max(axis=1), before.argmax(axis=1) == labels, n_bins)
        ece_b = expected_calibration_error(before, labels, n_bins)
        ax.plot(b_conf[b_counts > 0], b_acc[b_counts > 0], "s--", color="tab:red", markersize=4,
                label=f"before temperature (ECE {ece_b:.3f})")
    ax.plot([0, 1], [0, 1], "k:", label="perfect calibration")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", title=title)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    if path:
        fig.savefig(path)
    return fig


def pixel_hashes(dataset, desc: str = "hashing pixels") -> list[bytes | None]:
    """A digest of each image's decoded pixels (None if unreadable): equal digests = pixel-identical images,
    whatever the file format or encoder (FER2013's PublicTest repeats ~280 Training faces this way)."""
    out = []
    for value in tqdm(dataset.with_format(None)["image"], desc=desc, unit="img"):
        try:
            img = open_image(value)
        except BadImageError:
            out.append(None)
            continue
        out.append(hashlib.blake2b(img.tobytes() + str(img.size).encode(), digest_size=16).digest())
    return out


def drop_duplicates_of(dataset, reference) -> tuple:
    """(rows of `dataset` whose pixels appear nowhere in `reference`, how many were dropped)."""
    seen = set(pixel_hashes(reference, "hashing reference")) - {None}
    keep = [i for i, h in enumerate(pixel_hashes(dataset)) if h is None or h not in seen]
    return dataset.select(keep), len(dataset) - len(keep)
