"""Real photos with no licence to worry about, for the Space's examples, the screenshots and the browser benchmark.

`astronaut()` is scikit-image's public-domain portrait of Eileen Collins (NASA), framed 640x480 with one face;
`astronaut_group()` composites her head (benchmark_detection's feathered cut-out, each copy lit and mirrored
differently) five times onto a 960x640 studio backdrop: a group photo whose every face is real.
`write_examples(folder)` saves both as JPEGs (space/examples/ holds the committed copies).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

GROUP_WIDTHS = (96, 84, 110, 72, 90)  # face widths in px: what a group photo at 960x640 holds


def astronaut(size: tuple[int, int] = (640, 480)) -> Image.Image:
    """The astronaut portrait (512x512) scaled to the width of `size` and cut to its height from the top (her face
    sits in the upper third)."""
    from skimage import data

    photo = Image.fromarray(data.astronaut())
    photo = photo.resize((size[0], round(photo.height * size[0] / photo.width)), Image.LANCZOS)
    return photo.crop((0, 0, size[0], min(size[1], photo.height)))


def backdrop(size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """A studio backdrop: a soft vertical grey-blue gradient with a little sensor noise."""
    top, bottom = np.array([150, 160, 175]), np.array([70, 78, 92])
    t = np.linspace(0, 1, size[1])[:, None, None]
    arr = top * (1 - t) + bottom * t + rng.normal(0, 3, (size[1], size[0], 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def astronaut_group(size: tuple[int, int] = (960, 640), seed: int = 3) -> Image.Image:
    """Five copies of the astronaut's head, lit and mirrored differently, on a studio backdrop."""
    import benchmark_detection as det

    rng = np.random.default_rng(seed)
    canvas = backdrop(size, rng)
    det.place_faces(canvas, rng, list(GROUP_WIDTHS), max_tilt=10)
    return canvas


def write_examples(folder: str | Path) -> list[Path]:
    """astronaut.jpg and group.jpg in `folder` (quality 90, as cameras save photos)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "astronaut.jpg", folder / "group.jpg"]
    astronaut().save(paths[0], quality=90)
    astronaut_group().save(paths[1], quality=90)
    return paths
