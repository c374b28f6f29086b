"""The course's map: the whole pipeline as one picture, the part a notebook teaches highlighted.

Two rows. Training (top): an image is encoded to a 4×7×7 latent, noised to a random step t, and
the UNet learns to tell what was added. Generation (bottom): start from pure noise, let the UNet
remove a little at each step, decode the latent back to pixels, and judge the result.
"""
from __future__ import annotations

# (key, x, y, label, the notebooks that teach it)
BOXES = [
    ("image", 0.0, 1, "image $x$\n1×28×28", ("01",)),
    ("encoder", 1.6, 1, "VAE encoder", ("02",)),
    ("z0", 3.2, 1, "latent $z_0$\n4×7×7", ("02",)),
    ("noise", 4.8, 1, "add noise\nto step $t$", ("04",)),
    ("unet_train", 6.4, 1, "UNet$(z_t, t, y)$\nguesses the noise", ("03", "04")),
    ("loss", 8.0, 1, "loss: guess\nvs. truth", ("04",)),
    ("zT", 0.0, 0, "pure noise $z_T$\n4×7×7", ("04", "05")),
    ("steps", 1.95, 0, "UNet removes noise,\nstep by step\n(+ class prompt $y$)", ("04", "05", "07")),
    ("z0_gen", 3.85, 0, "latent $z_0$", ("05",)),
    ("decoder", 5.3, 0, "VAE decoder", ("02", "05")),
    ("sample", 6.8, 0, "new image", ("05",)),
    ("judge", 8.3, 0, "judge: FID,\nclass accuracy", ("06",)),
]
ARROWS = [("image", "encoder"), ("encoder", "z0"), ("z0", "noise"), ("noise", "unet_train"),
          ("unet_train", "loss"), ("zT", "steps"), ("steps", "z0_gen"), ("z0_gen", "decoder"),
          ("decoder", "sample"), ("sample", "judge")]
TITLES = {"01": "the data", "02": "the autoencoder", "03": "the denoiser (UNet)",
          "04": "diffusion: noising, training, sampling", "05": "using the model",
          "06": "measuring it", "07": "fewer steps (distillation)"}


def pipeline_diagram(highlight: str | None = None, ax=None):
    """Draw the pipeline; highlight = a notebook number ("01".."07") colours the boxes it teaches
    and greys the rest (None: all in colour). Returns the matplotlib Axes."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch
    if highlight is not None and highlight not in TITLES:
        raise ValueError(f"highlight={highlight!r}: use a notebook number, one of {sorted(TITLES)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(13, 3.4))
    h = 0.62
    where, width = {}, {}
    for key, x, y, label, notebooks in BOXES:
        w = width[key] = 1.62 if key == "steps" else 1.25
        lit = highlight is None or highlight in notebooks
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.04",
                                    facecolor="#ffd58a" if lit else "#f1f1f1",
                                    edgecolor="#b36b00" if lit else "#bbbbbb", lw=1.6 if lit else 1))
        ax.text(x, y, label, ha="center", va="center", fontsize=8.5, color="black" if lit else "#999999")
        ax.text(x - w / 2, y + h / 2 + 0.05, "notebook " + ", ".join(notebooks), ha="left", va="bottom", fontsize=7,
                color="#b36b00" if lit else "#bbbbbb")
        where[key] = (x, y)
    for a, b in ARROWS:
        (xa, ya), (xb, yb) = where[a], where[b]
        ax.annotate("", (xb - width[b] / 2 - 0.04, yb), (xa + width[a] / 2 + 0.04, ya),
                    arrowprops=dict(arrowstyle="->", color="#555555", lw=1.2))
    ax.text(-0.75, 1, "train", rotation=90, ha="center", va="center", fontsize=10, weight="bold")
    ax.text(-0.75, 0, "generate", rotation=90, ha="center", va="center", fontsize=10, weight="bold")
    ax.set_xlim(-0.95, 9.05)
    ax.set_ylim(-0.45, 1.5)
    ax.axis("off")
    title = "The whole pipeline" + (f": notebook {highlight}, {TITLES[highlight]}, highlighted"
                                     if highlight else "")
    ax.set_title(title, fontsize=11)
    return ax
