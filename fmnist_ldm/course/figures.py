"""Pictures: labelled sample grids (the CLI's .png), GIFs and figures of the notebooks and assets/."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..data import CLASS_NAMES
from ..diffusion import noising_path


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


def show_grid(images, ncol: int, title: str, row_labels=None) -> None:
    """Notebooks: a matplotlib figure of uint8 images, ncol per row, each row labelled on the left."""
    import matplotlib.pyplot as plt
    nrow = -(-len(images) // ncol)
    plt.figure(figsize=(ncol * 0.9 + (1.6 if row_labels else 0), nrow * 0.95 + 0.4))
    plt.imshow(tile(images, ncol=ncol), cmap="gray"); plt.xticks([]); plt.title(title)
    plt.yticks([2 + 58 * r + 28 for r in range(nrow)], row_labels or [""] * nrow)
    plt.gca().tick_params(left=False)
    for spine in plt.gca().spines.values():
        spine.set_visible(False)
    plt.show()


def save_class_grid(images, labels, path, ncol: int, scale: int = 2) -> None:
    """Rows of `ncol` images, each row labelled with its class (the CLI's .png output).
    Images come grouped by class, as `sample` makes them."""
    labels = torch.as_tensor(labels)
    names = [CLASS_NAMES[y] if y < len(CLASS_NAMES) else "unconditional"
             for y in labels[::ncol].tolist()]
    save_labelled_rows(images, names, path, ncol, scale)


def save_labelled_rows(images, row_labels, path, ncol: int, scale: int = 2) -> None:
    """Rows of `ncol` uint8 images with a text label left of each row, as a .png."""
    grid = tile(torch.as_tensor(images), ncol, scale=scale)
    font, step = ImageFont.load_default(size=14), 28 * scale + 2
    margin = max(110, 12 + int(max(font.getlength(name) for name in row_labels)))
    canvas = Image.new("L", (grid.shape[1] + margin, grid.shape[0]), 255)
    canvas.paste(Image.fromarray(grid), (margin, 0))
    draw = ImageDraw.Draw(canvas)
    for r, name in enumerate(row_labels):
        draw.text((6, 2 + r * step + step // 2 - 8), name, fill=0, font=font)
    canvas.save(Path(path))


def student_figure(pipe, path, seed: int = 0) -> None:
    """The teacher sampler at 20 and 4 steps and the distilled student at 4 and 1, one column per
    class, the same starting noise in every row."""
    from ..pipeline import DEFAULTS
    classes = list(range(len(CLASS_NAMES)))
    rows = [("teacher, 20 steps", DEFAULTS["sampler"], 20), ("teacher, 4 steps", DEFAULTS["sampler"], 4),
            ("student, 4 steps", "distilled", 4), ("student, 1 step", "distilled", 1)]
    images = torch.cat([pipe.generate(classes, sampler=sampler, steps=n, seed=seed).images for _, sampler, n in rows])
    save_labelled_rows(images, [name for name, _, _ in rows], path, ncol=len(classes))


def forward_reverse_frames(pipe, label: int, seed: int = 0, steps: int = 20, frames_each_way: int = 20):
    """Frames of clean -> noise -> clean for one class, with a caption (direction and t) for each.

    The first garment is sampled. The forward leg is one true noising trajectory, step by step
    (diffusion.noising_path: z_t = sqrt(1 - beta_t) z_{t-1} + sqrt(beta_t) eps_t, fresh noise at
    every t), shown at `frames_each_way` - 1 of its timesteps after the clean frame. The return
    leg is a real reverse run (DPM-Solver++, `steps` steps) from where the forward leg ended, so
    it ends in a new garment. Every frame is a latent decoded by the VAE: the noisy frames are
    what the decoder draws from a noisy latent (it only knows how to draw garments, so they look
    like fragments of clothing), not the noise itself.
    Returns (uint8 [frames_each_way + steps, 28, 28], list of captions)."""
    first = pipe.generate([label], steps=steps, seed=seed, return_trajectory=True)
    z0 = first.trajectory["x"][-1]
    shown = torch.linspace(0, pipe.schedule.T - 1, frames_each_way)[1:].round().long().tolist()
    fwd = noising_path(pipe.schedule, z0, shown, torch.Generator().manual_seed(seed + 1))
    captions = ["clean"] + [f"noising  t = {t}" for t in shown]
    back = pipe.generate([label], steps=steps, seed=seed, x_start=fwd[-1], return_trajectory=True)
    captions += [f"denoising  t = {t}" if t >= 0 else "new garment" for t in back.trajectory["t"][1:]]
    states = torch.cat([z0, *fwd, back.trajectory["x"][1:, 0]])
    from ..data import to_uint8
    return to_uint8(pipe.decode(states)), captions


def save_gif(frames_uint8, path, fps: int = 10, scale: int = 6, hold: int = 8, captions=None) -> None:
    """Write frames as a looping GIF (imageio), each frame enlarged `scale`x, the end frames held
    longer; with `captions` (one string per frame) each frame gets its caption below it."""
    import imageio.v3 as iio
    frames = [np.kron(f, np.ones((scale, scale), np.uint8)) for f in np.asarray(frames_uint8)]
    if captions is not None:
        font = ImageFont.load_default(size=max(10, 2 * scale + 2))
        strip = 2 * scale + 10
        captioned = []
        for f, text in zip(frames, captions, strict=True):
            canvas = Image.new("L", (f.shape[1], f.shape[0] + strip), 255)
            canvas.paste(Image.fromarray(f), (0, 0))
            ImageDraw.Draw(canvas).text((4, f.shape[0] + 3), text, fill=0, font=font)
            captioned.append(np.asarray(canvas))
        frames = captioned
    frames = [frames[0]] * hold + frames + [frames[-1]] * hold
    iio.imwrite(Path(path), np.stack(frames), duration=1000 / fps, loop=0)


class GIF:
    """A GIF file for a notebook to show, its bytes inside the output: an HTML <img> with a data
    URI, which Jupyter, Colab, GitHub and nbconvert's HTML (nbviewer) all render, and a line of
    text for text-only viewers. (IPython's Image gives the GIF as image/gif, which nbconvert's HTML
    and GitHub do not render: they show its text, "<IPython.core.display.Image object>".)"""

    def __init__(self, path, alt: str = "an animation", width: int | None = None):
        import base64
        self.path, self.alt, self.width = Path(path), alt, width
        self.b64 = base64.b64encode(self.path.read_bytes()).decode()

    def _repr_mimebundle_(self, include=None, exclude=None):
        import html
        width = f' width="{self.width}"' if self.width else ""
        return {"text/html": f'<img src="data:image/gif;base64,{self.b64}" alt="{html.escape(self.alt)}"{width}/>',
                "text/plain": f"[{self.alt} (the animated GIF {self.path.name})]"}


def pca_basis(latents: torch.Tensor, k: int = 2):
    """(mean, components [k, D]) of flattened latents, by SVD."""
    flat = latents.flatten(1).float()
    mean = flat.mean(0)
    _, _, vh = torch.linalg.svd(flat - mean, full_matrices=False)
    return mean, vh[:k]


def denoising_path_figure(pipe, label: int, real_latents, real_labels, path, seed: int = 0,
                          steps: int = 20, columns: int = 8):
    """Top: the decoded states x_t of ONE reverse run at `columns` of its steps (noise -> garment).
    Bottom: the same run's states projected on the first two principal components of real test
    latents (dots, coloured by class), from the start (noise) to the end (the garment)."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from ..data import to_uint8
    run = pipe.generate([label], steps=steps, seed=seed, return_trajectory=True)
    states, ts = run.trajectory["x"][:, 0], run.trajectory["t"]
    pick = np.linspace(0, len(states) - 1, columns).round().astype(int)
    images = to_uint8(pipe.decode(states[pick]))
    mean, comps = pca_basis(real_latents)
    proj = lambda z: ((z.flatten(1).float() - mean) @ comps.T).numpy()
    fig = plt.figure(figsize=(1.3 * columns, 6.2))
    gs = fig.add_gridspec(2, columns, height_ratios=[1, 3.2])
    for i, (j, im) in enumerate(zip(pick, images)):
        ax = fig.add_subplot(gs[0, i])
        ax.imshow(im, cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"t={ts[j]}" if ts[j] >= 0 else "t=0 (end)", fontsize=8)
        ax.axis("off")
    ax = fig.add_subplot(gs[1, :])
    pts = proj(real_latents)
    for c in range(10):
        sel = np.asarray(real_labels) == c
        ax.scatter(pts[sel, 0], pts[sel, 1], s=3, alpha=0.3, color=plt.cm.tab10(c), label=CLASS_NAMES[c])
    path_pts = proj(states)
    ax.plot(path_pts[:, 0], path_pts[:, 1], "-o", color="black", ms=3, lw=1.2, label="this run")
    ax.annotate("start: noise", path_pts[0], xytext=(8, 8), textcoords="offset points", fontsize=9, weight="bold")
    ax.annotate(f"end: {CLASS_NAMES[label]}", path_pts[-1], xytext=(8, -14), textcoords="offset points",
                fontsize=9, weight="bold")
    ax.set(xlabel="PC 1 of real test latents", ylabel="PC 2")
    ax.legend(fontsize=7, markerscale=3, ncol=2, loc="best")
    fig.suptitle(f"One reverse diffusion run for '{CLASS_NAMES[label]}' ({steps} DPM-Solver++ steps)")
    fig.tight_layout()
    fig.savefig(Path(path), dpi=110)
    plt.close(fig)


def make_figures(pipe, out_dir, seed: int = 0) -> list[Path]:
    """Everything in assets/: generated_samples.png (10 classes x 10), a clean -> noise -> clean
    GIF per class (each frame captioned with its t), a denoising-path figure per class, and the
    distilled student beside its teacher (distilled_vs_teacher.png)."""
    from ..data import load_fashion_mnist, to_model_range
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    s = pipe.generate([c for c in range(10) for _ in range(10)], seed=seed)
    save_class_grid(s.images, s.labels, out / "generated_samples.png", ncol=10)
    test_x, test_y = load_fashion_mnist("test")
    latents = pipe.encode(to_model_range(test_x[:3000]))
    written = [out / "generated_samples.png"]
    for c, name in enumerate(CLASS_NAMES):
        slug = name.lower().replace("/", "-").replace(" ", "-")
        frames, captions = forward_reverse_frames(pipe, c, seed=seed + c)
        save_gif(frames, out / f"diffusion_{slug}.gif", captions=captions)
        denoising_path_figure(pipe, c, latents, test_y[:3000], out / f"denoising_path_{slug}.png", seed=seed + c)
        written += [out / f"diffusion_{slug}.gif", out / f"denoising_path_{slug}.png"]
    student_figure(pipe, out / "distilled_vs_teacher.png", seed)
    return written + [out / "distilled_vs_teacher.png"]
