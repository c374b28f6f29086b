# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown] slideshow={"slide_type": "skip"}
# The lecture that goes with the course: per notebook its key figures and equations, with speaker
# notes (press S in the browser). Every number on a slide is read from what the course recorded
# (the shipped weights' metadata, `benchmarks/`, the recorded notebooks' outputs) and every figure
# is drawn here by the package, taken from `assets/` and `benchmarks/`, or read from a recorded
# notebook, so the slides cannot drift from the notebooks. Build, from the repo root:
# `python -m fmnist_ldm.course.deck` (it runs this notebook and writes `presentation/deck.slides.html`,
# one file with every picture inside); `python -m fmnist_ldm.course.deck --check` says whether the
# committed HTML is fresh.

# %% slideshow={"slide_type": "skip"}
import json
import re
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import torch
from IPython.display import HTML, Markdown, display

from fmnist_ldm.course.deck import html_table, markdown_table, png_of, recorded_output, slide_figure
from fmnist_ldm.course.diagram import pipeline_diagram, unet_diagram
from fmnist_ldm.course.figures import tile
from fmnist_ldm.data import CLASS_NAMES, load_fashion_mnist, to_model_range
from fmnist_ldm.diffusion import noising_path
from fmnist_ldm.pipeline import DEFAULTS, Pipeline
from fmnist_ldm.weights import read_weights

ROOT = Path.cwd().parent if Path.cwd().name == "presentation" else Path.cwd()
pipe = Pipeline.from_pretrained(device="cpu")
_, vae_cfg, vae_meta = read_weights(ROOT / "model/vae.safetensors", "vae")
_, unet_cfg, unet_meta = read_weights(ROOT / "model/unet.safetensors", "unet")
distill = json.loads((ROOT / "benchmarks/distill.json").read_text())
train_x, _ = load_fashion_mnist("train")
test_x, test_y = load_fashion_mnist("test")
plt.rcParams.update({"font.size": 13})


def minutes(seconds) -> str:
    return f"{float(seconds) / 60:.1f} min"


def params(module) -> str:
    return f"{sum(p.numel() for p in module.parameters()) / 1e6:.2f} M"


def shape(s) -> str:
    return "×".join(map(str, s))


def from_run(meta) -> str:
    return f"recorded run ({meta.get('mode')} mode, {meta.get('machine')})"


def uint8(x):
    return x[:, 0].add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)


# %% [markdown] slideshow={"slide_type": "slide"}
# # Stable Diffusion in miniature
# A latent diffusion model that draws Fashion-MNIST garments, from pure noise or from a class
# prompt, trained on a laptop CPU. Seven notebooks, one idea each:

# %%
pipeline_diagram()
plt.show()

# %% [markdown] slideshow={"slide_type": "notes"}
# The whole course on one picture. An image is squeezed by the VAE's encoder into a small latent;
# the diffusion model (a UNet) learns to remove noise from latents, told the step and the class;
# sampling starts from pure noise, denoises step by step, and the decoder turns the clean latent
# back into pixels. Each box is one notebook: point at them as you name 01 to 07.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 01 · The data
# Grey garments, each of one class. The models see pixels scaled to $[-1, 1]$:
# $x = \text{pixel}/127.5 - 1$.

# %%
rows = torch.cat([test_x[test_y == c][:12] for c in range(len(CLASS_NAMES))])
fig = plt.figure(figsize=(7, 5.6))
plt.imshow(tile(rows, ncol=12, scale=1), cmap="gray")
plt.yticks([2 + 30 * c + 14 for c in range(len(CLASS_NAMES))], CLASS_NAMES)
plt.xticks([])
h, w = train_x.shape[-2:]
display(slide_figure(png_of(fig), 470, side=(
    f"<p>{len(train_x) + len(test_x):,} images, {h}×{w} pixels, {len(CLASS_NAMES)} classes:</p>"
    f"<p>{len(train_x):,} to train on, {len(test_x):,} to test.</p>"
    "<p>One row per class, from the test set.</p>")))

# %% [markdown] slideshow={"slide_type": "notes"}
# Ask the room which classes a model will confuse (shirt, T-shirt, pullover, coat): the same pairs
# come back in 05 and 06. Notebook 01 also draws the class averages and a nearest-mean classifier,
# a baseline every later figure can be held against.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 02 · The autoencoder: pixels → a small latent
# Encode to a Gaussian, sample it, decode; the loss trades reconstruction against staying close to
# $\mathcal N(0, I)$:
# $$z = \mu + \sigma\,\varepsilon,\qquad \mathcal L = \lVert x - D(z)\rVert_1 + \beta\,\mathrm{KL}\big(\mathcal N(\mu,\sigma^2)\,\Vert\,\mathcal N(0, I)\big)$$

# %%
x = to_model_range(test_x[:10])
rec = pipe.decode(pipe.encode(x))
fig = plt.figure(figsize=(9, 2.2))
plt.imshow(tile(torch.cat([uint8(x), uint8(rec)]), ncol=10, scale=1), cmap="gray")
plt.axis("off")
plt.title(f"test images (top) and their reconstructions through the {shape(pipe.shape)} latent (bottom)")
display(slide_figure(png_of(fig), 230))
pixels, latent = h * w, torch.Size(pipe.shape).numel()
display(Markdown(f"Diffusion on the {latent} latent numbers costs {pixels / latent:.0f}× less than on the "
                 f"{pixels} pixels. The shipped VAE: {params(pipe.vae)} parameters, {vae_cfg.vae_epochs} epochs "
                 f"({minutes(vae_meta['seconds'])}), then its decoder sharpened against a discriminator "
                 f"for {vae_cfg.vae_gan_epochs} epochs ({minutes(vae_meta['decoder_gan_seconds'])})."))

# %% [markdown] slideshow={"slide_type": "notes"}
# Two ideas: the reparameterisation trick (sampling written as mean plus sigma times noise, so the
# gradient flows through), and the KL term that keeps the latents near a standard Gaussian, which
# is where the diffusion model's noise lives. The reconstructions are slightly soft: that is the
# ceiling on every sample in the course, and 06 measures it (VAE reconstructions' FID).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 03 · The denoiser: a small UNet
# In: a noisy latent $z_t$, the step $t$, the class $y$; out: a tensor of the latent's shape.

# %%
unet_diagram(pipe.unet, pipe.shape)
display(slide_figure(png_of(plt.gcf(), dpi=130), 480))
display(Markdown(f"The shipped UNet: {params(pipe.unet)} parameters, channels {unet_cfg.unet_channels}, "
                 f"{unet_cfg.unet_epochs} epochs ({minutes(unet_meta['unet_seconds'])} on a CPU)."))

# %% [markdown] slideshow={"slide_type": "notes"}
# Follow one latent through the drawing: down the left (resolution halves, channels grow), across
# the bottom, up the right where each level also receives its skip connection. The time embedding
# is added inside every residual block; the class enters by cross-attention. Notebook 03 counts the
# parameters level by level: most sit at the lowest resolution.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 04 · Diffusion: add noise, learn to remove it
# The forward process has a closed form, so training draws any step $t$ directly:
# $$z_t = \sqrt{\bar\alpha_t}\,z_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon,\qquad
# v = \sqrt{\bar\alpha_t}\,\varepsilon - \sqrt{1-\bar\alpha_t}\,z_0,\qquad
# \mathcal L = \big\lVert v_\theta(z_t, t, y) - v\big\rVert^2$$

# %%
z0 = pipe.encode(to_model_range(test_x[test_y == 7][:1]))
T = pipe.schedule.T
keep = [round(i * (T - 1) / 7) for i in range(8)]
path = noising_path(pipe.schedule, z0, keep, torch.Generator().manual_seed(0))
frames = uint8(torch.cat([pipe.decode(z) for z in [z0] + path]))
fig = plt.figure(figsize=(10, 1.9))
plt.imshow(tile(frames, ncol=len(frames), scale=2), cmap="gray")
plt.xticks([2 + 58 * i + 28 for i in range(len(frames))], ["$z_0$"] + [f"t={t}" for t in keep])
plt.yticks([])
plt.title(f"one sneaker's latent noised step by step (each decoded), of T = {T} steps")
display(slide_figure(png_of(fig), 200))
display(Markdown("Sampling runs it backwards: from pure noise, each step replaces the noise the network sees."))

# %% [markdown] slideshow={"slide_type": "notes"}
# The one equation to write on the board: the noisy latent is a weighted mix of the clean one and
# noise, weights from the schedule. The network predicts v, a mix of both (notebook 04 shows why v
# behaves better than predicting the noise at both ends). Notebook 04 does one training step by
# hand and checks it against the library's: do it live if time allows.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 04 · The way back
# One reverse run, decoded at every step (top), and the same run in the plane of the first two
# principal components of real latents (bottom): from noise into the sneakers' cloud.

# %%
display(slide_figure((ROOT / "assets/denoising_path_sneaker.png").read_bytes(), 500, alt="one reverse run"))

# %% [markdown] slideshow={"slide_type": "notes"}
# The bottom panel is the picture to leave them with: the run starts far from every garment (pure
# noise), and each step moves it into the region where real sneakers' latents lie. The path is not
# straight: that curvature is why samplers need several steps, and what 07's student learns to skip.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 05 · Classifier-free guidance, and too much of it
# $$\hat v = v_\theta(z_t, t, \varnothing) + w\,\big(v_\theta(z_t, t, y) - v_\theta(z_t, t, \varnothing)\big)$$

# %%
png, text, meta = recorded_output("05_application.ipynb", "## Classifier-free guidance, and too much of it")
lines = text.splitlines()
verdicts = next(ln for ln in lines if ln.startswith("judged Shirt"))
trend = next(ln for ln in lines if ln.startswith("from w = 1 to"))
guidance = markdown_table(ROOT / "benchmarks/guidance.md")
best = min(guidance, key=lambda r: float(r["FID"]))
display(slide_figure(png, 500, alt="the w grid", side=(
    f"<p>One network, trained without the class on {unet_cfg.p_uncond:.0%} of its images, gives both guesses.</p>"
    f"<p>'Shirt', guided at every step: one row per w, the same noises in every column. {verdicts}.</p>"
    f"<p>{trend}: variety is what it costs.</p>"
    f"<p>The defaults: w = {DEFAULTS['guidance']:g} only for t in {list(DEFAULTS['guidance_interval'])} "
    f"(best FID in <code>benchmarks/guidance.md</code>: w = {best['guidance']}, t in {best['interval (t)']}).</p>"
    f"<p style='font-size:16px'>From notebook 05's {from_run(meta)}.</p>")))

# %% [markdown] slideshow={"slide_type": "notes"}
# Read the grid column by column: the same starting noise under stronger guidance. Low w: some
# shirts come out as coats or T-shirts. High w: every one is a shirt, but checks and prints fade,
# highlights burn out and the columns grow alike. The judge cannot see that loss (it asks "is this
# a shirt?"); 06 measures it with precision and recall. Guiding only the middle of the run, as the
# defaults do, buys the accuracy with less of the damage.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 05 · What the model guesses at the first step
# Trained by mean squared error, the network's guess of the clean latent is the posterior mean
# $\mathbb E[z_0 \mid z_t, y]$. At the first step the state is pure noise, so the guess is the
# average garment of the class, whatever the noise.

# %%
png, text, meta = recorded_output("05_application.ipynb", "## What the model guesses at t = 999")
display(slide_figure(png, 300, alt="first guesses"))
display(Markdown(text.strip().replace("; ", ";  \n") + f"  \n<small>From notebook 05's {from_run(meta)}.</small>"))

# %% [markdown] slideshow={"slide_type": "notes"}
# The most instructive picture of the slider in notebook 05. Two different noises give nearly the
# same first guess, close to the real class average (bottom row): at the start the noise says
# almost nothing, so the best guess is the mean. As t falls the state pins down one garment and the
# guess sharpens into it: the two runs end far apart (the printed distances).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 05 · Samplers and what a step costs
# What a step costs is network passes: images × UNet calls. A guided step is one call on a doubled
# batch (with and without the class): two passes per image.

# %%
png, text, meta = recorded_output("05_application.ipynb", "## Samplers and step counts")
counts = re.findall(r"^(\S.*?)\s*:\s*(\d+) UNet calls,\s*(\d+) of them on a doubled batch:\s*([\d.]+) passes per image",
                    text, flags=re.M)
display(slide_figure(png, 430, alt="samplers", side=html_table(
    ["sampler, steps", "UNet calls", "doubled", "passes per image"], counts)
    + f"<p style='font-size:16px'>Counted by a hook on the UNet in notebook 05's {from_run(meta)}; "
    "one column per class, the same starting noise in every row.</p>"))

# %% [markdown] slideshow={"slide_type": "notes"}
# Ancestral DDPM walks every timestep; DDIM and DPM-Solver++ take big deterministic steps and land
# on nearly the same garment with a fraction of the passes. The passes column is the bill: only
# the guided interval doubles the batch. The last rows are 07's distilled student, guidance built
# in, one pass per step: keep it for the end of the lecture.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 05 · Clean → noise → a new clean garment
# The forward frames, then a real reverse run from where they ended: a new garment of the class.

# %%
display(HTML('<div style="display:flex;gap:60px;justify-content:center">' + "".join(
    slide_figure((ROOT / f"assets/diffusion_{name}.gif").read_bytes(), 440, mime="image/gif",
                 alt=f"a {name}: noised, then denoised into a new one").data for name in ("dress", "sneaker")) + "</div>"))

# %% [markdown] slideshow={"slide_type": "notes"}
# Let it loop once in silence. The way out adds fresh noise at every step; the way back is a real
# sampling run from the end state, so it lands on a different garment of the same class. The noisy
# frames are decoded latents, not pixel noise: the decoder only knows how to draw clothes.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 06 · Measuring it: FID depends on n
# A Fashion-MNIST classifier (the *judge*) gives features. FID compares Gaussians fitted to the
# features of real and generated images:
# $$\mathrm{FID} = \lVert\mu_r-\mu_g\rVert^2 + \operatorname{Tr}\big(\Sigma_r+\Sigma_g-2(\Sigma_r\Sigma_g)^{1/2}\big)$$

# %%
fid = markdown_table(ROOT / "benchmarks/fid_vs_n.md")
ns = [int(k.split("=")[1].replace(",", "")) for k in fid[0] if k.startswith("n =")]
row = lambda name: next(r for r in fid if r["set"] == name)
num = lambda r: [float(r[k]) for k in r if k.startswith("n =")]
fig, ax = plt.subplots(1, 2, figsize=(11, 3.6))
for name, label, color in (("samples (defaults): FID", "samples (defaults)", "C0"),
                           ("VAE reconstructions: FID", "VAE reconstructions", "C1"),
                           ("real train (baseline): FID", "real train vs real test", "C2")):
    ax[0].plot(ns, num(row(name)), "o-", color=color, label=label)
for name, label, color in (("samples (defaults): FID − real-vs-real", "samples (defaults)", "C0"),
                           ("VAE reconstructions: FID − real-vs-real", "VAE reconstructions", "C1")):
    ax[1].plot(ns, num(row(name)), "s-", color=color, label=label)
for a, title in zip(ax, ("FID falls with n, even for two real sets", "FID − real-vs-real FID: steadier")):
    a.set(xscale="log", xlabel="n (images per set)", title=title)
    a.set_xticks(ns, [f"{n:,}" for n in ns]); a.minorticks_off(); a.legend(fontsize=11)
ax[0].set_ylabel("FID")
source = (ROOT / "benchmarks/fid_vs_n.md").read_text().split("\n")[0]
display(slide_figure(png_of(fig), 330))
display(Markdown("So every FID here is read beside the real-vs-real FID **at the same n**. "
                 f"<small>`benchmarks/fid_vs_n.md`: {source.split(' with ')[0]}.</small>"))

# %% [markdown] slideshow={"slide_type": "notes"}
# The trap this slide exists for: FID is biased by the number of images (noisy covariance
# estimates add to the distance), so two real sets score well above zero at small n. A ratio to
# the real-vs-real FID grows without bound as n grows; the difference moves much less. Compare
# models by the difference at one fixed n, or by FID extrapolated to infinite n (notebook 06 fits it).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 06 · What guidance costs: precision and recall
# **Precision**: the share of samples near real images (do they look real?). **Recall**: the share
# of real images near samples (is every kind made?). Near: in the judge's features.

# %%
png, text, meta = recorded_output("06_evaluation.ipynb", "## What guidance costs: variety, measured")
header, *body = [ln for ln in text.splitlines() if ln.strip()]
cols = header.split()
rows = [[m.group(1).strip(), *m.group(2).split()] for ln in body if (m := re.match(r"^(.*?)\s+([\d.]+(?:\s+[\d.]+)+)\s*$", ln))]
display(slide_figure(png, 220, alt="precision and recall"))
display(HTML(f"<div class='small-table' style='display:flex;gap:30px;align-items:flex-end'>{html_table(['set', *cols], rows)}"
             f"<p style='font-size:16px'>From notebook 06's {from_run(meta)}.</p></div>"))

# %% [markdown] slideshow={"slide_type": "notes"}
# FID folds "do they look real?" and "is everything covered?" into one number; these two keep
# them apart. Point at the row "w = 5 every step": precision goes up (samples crowd into the most
# typical regions), recall and coverage fall (whole kinds of real garments have no sample near
# them). That is the over-guidance grid of 05, measured. Blurred real images are the opposite
# failure: low precision.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 07 · Four steps instead of twenty: distillation
# A copy of the UNet, the student $f_\theta$, learns where the teacher's guided runs end, from any
# state along them (1); it samples by guessing, noising the guess back a little, and guessing again (2):
# $$\mathcal L = \mathbb E_{\text{run},\,k}\,\big\|\, f_\theta(z_{t_k}, t_k, y) - z_0^{\text{run}} \,\big\|^2 \qquad (1)$$
# $$z_{t} = \sqrt{\bar\alpha_{t}}\,\hat z_0 + \sqrt{1-\bar\alpha_{t}}\,\varepsilon,\quad \hat z_0 = f_\theta(z_{t}, t, y) \qquad (2)$$

# %%
rows = distill["rows"]
fig, ax = plt.subplots(figsize=(9, 4.2))
for model, marker in (("teacher", "o-"), ("student", "s-")):
    rs = [r for r in rows if r["model"] == model]
    ax.plot([r["images_per_s"] for r in rs], [r["fid_minus_real"] for r in rs], marker,
            label=f"{model} ({rs[0]['sampler']})")
    for r in rs:
        ax.annotate(f"{r['steps']} step{'s' if r['steps'] > 1 else ''}", (r["images_per_s"], r["fid_minus_real"]),
                    xytext=(5, 5), textcoords="offset points", fontsize=11)
ax.set(xscale="log", yscale="log", xlabel="images per second (higher: faster)",
       ylabel="FID − real-vs-real (lower: better)", title="speed against quality")
for axis in (ax.xaxis, ax.yaxis):
    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
ax.set_yticks([1, 2, 5, 10, 20, 50]); ax.set_xticks([50, 100, 200, 300])  # where the ticks go, not data
ax.legend()
display(slide_figure(png_of(fig), 300, side=(
    f"<p>{rows[0]['n']:,} images each, measured side by side on {distill['machine_info']['machine']} "
    "(<code>benchmarks/distill.json</code>; the table: next slide).</p>")))

# %% [markdown] slideshow={"slide_type": "notes"}
# The student never sees real data: it imitates the teacher's whole guided run in one jump, which
# is why it needs no guidance at sampling time. Read the plot as a menu: the teacher's curve falls
# steeply from one step to a few, the student's starts far lower at one step. Ask where on the
# curve you would ship for a phone, and where for a benchmark.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 07 · Teacher and student, from the same noise

# %%
table = html_table(["model, sampler", "steps", "passes", "images/s", "accuracy", "FID − real"],
                   [[f"{r['model']}, {r['sampler']}", r["steps"], r["unet_passes"], f"{r['images_per_s']:.0f}",
                     f"{r['accuracy']:.1%}", f"{r['fid_minus_real']:.2f}"] for r in rows])
display(slide_figure((ROOT / "assets/distilled_vs_teacher.png").read_bytes(), 250, alt="teacher and student"))
display(HTML(f"<div class='small-table' style='display:flex;justify-content:center'>{table}</div>"))

# %% [markdown] slideshow={"slide_type": "notes"}
# Same starting noise, same classes: the student's few-step garments against the teacher's full
# run. They are close but not the same garments: the student learned where runs end on average,
# and small differences in where it starts its jumps show.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## What to try next
# - Negative prompts, inpainting, interpolation, DDIM inversion: notebook 05.
# - Does it copy its training set? Nearest neighbours in the judge's features: notebook 06.
# - Train the `full` recipe on a GPU (Colab): every notebook picks it when a GPU is there.

# %% [markdown] slideshow={"slide_type": "notes"}
# Leave the last minutes for the exercises: each notebook ends with a few, graded by a checker
# that names the usual mistakes, with a hidden solution under each.
