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
    ("unet_train", 6.4, 1, "UNet$(z_t, t, y)$\nguesses the noise\n(as $v$: notebook 04)", ("03", "04")),
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


def _box_label(r: dict) -> str:
    """What a layer of unet.layer_shapes does, in a box's few words."""
    shape = lambda s: "×".join(map(str, s))
    if r["kind"] == "level":
        return "ResBlock" + "\n+ self-attn" * ("attn" in r["parts"]) + "\n+ cross-attn" * ("xattn" in r["parts"])
    if r["kind"] == "upsample":
        return f"upsample ×2\nto {shape(r['uncropped'][1:])}" + (
            f",\ncrop to {shape(r['out'][1:])}" if r["uncropped"] != r["out"] else "")
    if r["kind"] == "downsample":
        return "conv 3×3,\nstride 2"
    return "conv 3×3" if r["path"] == "in" else "GN, SiLU,\nconv 3×3"


def _draw_layers(ax, rows, xy, w, h):
    """One box per layer with its name, what it does and its output's shape; arrows between them."""
    from matplotlib.patches import FancyBboxPatch
    colours = {"conv": "#e4e4e4", "level": "#cfe3f7", "downsample": "#d7efd2", "upsample": "#d7efd2"}
    shape = lambda s: "×".join(map(str, s))
    for r, (x, y) in zip(rows, xy):
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02",
                                    facecolor=colours[r["kind"]], edgecolor="#555555", lw=1))
        ax.text(x, y + h / 2 - 0.07, r["name"], ha="center", va="top", fontsize=6.5, color="#666666")
        ax.text(x, y + 0.03, _box_label(r), ha="center", va="center", fontsize=6.8, linespacing=1.1)
        ax.text(x, y - h / 2 + 0.06, shape(r["out"]), ha="center", va="bottom", fontsize=7.5, weight="bold")
    for (xa, ya), (xb, yb) in zip(xy, xy[1:]):              # the main path, layer to layer
        ax.annotate("", (xb - w / 2, yb), (xa + w / 2, ya), arrowprops=dict(arrowstyle="->", color="#333333", lw=1))
    (x0, y0), (x1, y1) = xy[0], xy[-1]
    ax.annotate("", (x0 - w / 2, y0), (x0 - w / 2 - 0.45, y0), arrowprops=dict(arrowstyle="->", lw=1))
    ax.text(x0 - w / 2 - 0.5, y0, f"noisy\nlatent $z_t$\n{shape(rows[0]['inp'])}", ha="right", va="center", fontsize=7.5)
    ax.annotate("", (x1 + w / 2 + 0.45, y1), (x1 + w / 2, y1), arrowprops=dict(arrowstyle="->", lw=1))
    ax.text(x1 + w / 2 + 0.5, y1, f"output\n{shape(rows[-1]['out'])}", ha="left", va="center", fontsize=7.5)


def _draw_skips(ax, rows, xy, h) -> int:
    """The skip connections as brackets over the boxes (one nested inside another drawn lower);
    returns how many."""
    col = {r["name"]: i for i, r in enumerate(rows)}
    skips = [(col[r["skip"]], i) for i, r in enumerate(rows) if "skip" in r]
    for a, b in skips:
        depth = sum(a < a2 and b2 < b and xy[a2][1] == xy[a][1] for a2, b2 in skips)
        top = max(xy[a][1], xy[b][1]) + h / 2 + 0.1 + 0.09 * depth
        ax.plot([xy[a][0], xy[a][0], xy[b][0]], [xy[a][1] + h / 2, top, top], color="#888888", lw=1)
        ax.annotate("", (xy[b][0], xy[b][1] + h / 2), (xy[b][0], top),
                    arrowprops=dict(arrowstyle="->", color="#888888", lw=1))
    return len(skips)


def _draw_embeddings(ax, unet, rows, xy, w, h, bottom):
    """The time (+ class) embedding and the class tokens: lines under everything, a branch up to
    each block that takes them, and a sentence under each."""
    x0 = xy[0][0]
    levels = [(i, r) for i, r in enumerate(rows) if r["kind"] == "level"]
    lanes = [(bottom - 0.3, "#d9730d", -0.22, lambda r: True,
              f"time $t$ → sin/cos embedding ({unet.base}) → MLP ({unet.time_mlp[-1].out_features})"
              + (" + class embedding of $y$" if hasattr(unet, "class_time_emb") else "")
              + ": added per channel inside every ResBlock")]
    if hasattr(unet, "class_emb"):
        lanes.append((bottom - 0.5, "#7b3fb0", 0.22, lambda r: "xattn" in r["parts"],
                      f"class $y$ → {unet.class_tokens} learned tokens of {unet.class_emb.embedding_dim // unet.class_tokens}"
                      " numbers: the keys and values of every cross-attention"))
    for k, (y_lane, colour, dx, takes, text) in enumerate(lanes):
        xs = [xy[i][0] + dx for i, r in levels if takes(r)]
        ax.plot([x0 - w / 2, max(xs)], [y_lane, y_lane], color=colour, lw=1.4)
        for (i, r) in levels:
            if takes(r):
                ax.annotate("", (xy[i][0] + dx, xy[i][1] - h / 2), (xy[i][0] + dx, y_lane),
                            arrowprops=dict(arrowstyle="->", color=colour, lw=1, linestyle=(0, (3, 2))))
        ax.text(x0 - w / 2, bottom - 0.7 - 0.25 * k, text, ha="left", va="top", fontsize=7.5, color=colour)


def unet_diagram(unet, sample_shape, ax=None):
    """Draw a UNet from the model itself (unet.layer_shapes traces one forward pass), so the
    picture cannot drift from the code: one box per layer in the order forward runs them, placed
    on the row of its output's resolution (the middle blocks one row lower), each with its output
    shape C×H×W; the skip connections as brackets from the layer whose output is kept to the level
    on the way up that concatenates it; the time embedding (plus the class's embedding, when the
    model has one) as an orange line to every residual block; the class tokens as a purple line
    to every cross-attention. Returns the matplotlib Axes."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from ..unet import layer_shapes
    rows = layer_shapes(unet, sample_shape)
    sizes = sorted({r["out"][1:] for r in rows if r["path"] != "mid"}, reverse=True)   # resolutions, fine to coarse
    row_of = lambda r: len(sizes) if r["path"] == "mid" else sizes.index(r["out"][1:])
    step_y, w, h = 1.45, 0.86, 0.95
    xy = [(i * 1.0, -row_of(r) * step_y) for i, r in enumerate(rows)]
    if ax is None:
        _, ax = plt.subplots(figsize=(max(9.0, 1.08 * len(rows) + 2), 2.2 + 1.45 * (len(sizes) + 1)))
    shape = lambda s: "×".join(map(str, s))
    _draw_layers(ax, rows, xy, w, h)
    n_skips = _draw_skips(ax, rows, xy, h)
    bottom = min(y for _, y in xy) - h / 2
    _draw_embeddings(ax, unet, rows, xy, w, h, bottom)
    x0, x1 = xy[0][0], xy[-1][0]
    for k, size in enumerate(sizes):
        ax.text(x0 - w / 2 - 1.55, -k * step_y, f"{shape(size)}", ha="center", va="center", fontsize=9, weight="bold")
    ax.text(x0 - w / 2 - 1.55, -len(sizes) * step_y, f"{shape(sizes[-1])}\n(middle)", ha="center", va="center", fontsize=9, weight="bold")
    ax.legend(handles=[Line2D([], [], color="#888888", lw=1, label="skip connection (concatenated on the way up)"),
                       Line2D([], [], color="#d9730d", lw=1.4, label="time (+ class) embedding"),
                       Line2D([], [], color="#7b3fb0", lw=1.4, label="class tokens")],
              loc="lower right", fontsize=7.5, frameon=False)
    ax.set_xlim(x0 - w / 2 - 2.1, x1 + w / 2 + 1.3)
    ax.set_ylim(bottom - 1.35, h / 2 + 0.2 + 0.09 * n_skips)
    ax.set_aspect("equal")
    ax.axis("off")
    n = sum(p.numel() for p in unet.parameters())
    ax.set_title(f"The UNet, drawn from the model: {len(rows)} layers, {n:,} parameters; "
                 "each box gives its output's shape, channels × height × width", fontsize=10)
    return ax
