"""Pictures: labelled sample grids (more figures live here as the notebooks need them)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .data import CLASS_NAMES


def tile(images: torch.Tensor, ncol: int, pad: int = 2, scale: int = 2) -> np.ndarray:
    """uint8 [N,28,28] -> one uint8 image, ncol per row, white padding, each image `scale`x."""
    imgs = np.asarray(images, dtype=np.uint8)
    n, h, w = imgs.shape
    nrow = -(-n // ncol)
    h, w = h * scale, w * scale
    out = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad), 255, np.uint8)
    for i, im in enumerate(imgs):
        r, c = divmod(i, ncol)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = \
            np.kron(im, np.ones((scale, scale), np.uint8))
    return out


def save_class_grid(images, labels, path, ncol: int, scale: int = 2) -> None:
    """Rows of `ncol` images, each row labelled with its class (the CLI's .png output).
    Images come grouped by class, as `sample` makes them."""
    images, labels = torch.as_tensor(images), torch.as_tensor(labels)
    grid = tile(images, ncol, scale=scale)
    margin, step = 110, 28 * scale + 2
    canvas = Image.new("L", (grid.shape[1] + margin, grid.shape[0]), 255)
    canvas.paste(Image.fromarray(grid), (margin, 0))
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default(size=14)
    for r in range(-(-len(labels) // ncol)):
        y = int(labels[r * ncol])
        name = CLASS_NAMES[y] if y < len(CLASS_NAMES) else "unconditional"
        draw.text((6, 2 + r * step + step // 2 - 8), name, fill=0, font=font)
    canvas.save(Path(path))
