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
# The lecture that goes with the course: one or two slides per notebook, each with its key figure
# and equation. Every number is read from what the course and its benchmarks recorded (the shipped
# weights' metadata, `benchmarks/distill.json`) and every figure is drawn by the package or taken
# from `assets/`, so the slides cannot drift from the notebooks. Build (from the repo root):
# `jupyter nbconvert --to slides --no-input --execute presentation/deck.ipynb`
# (about a minute on a CPU), then open `presentation/deck.slides.html`.

# %% slideshow={"slide_type": "skip"}
import json
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from IPython.display import Image, Markdown, display

from fmnist_ldm.data import CLASS_NAMES, load_fashion_mnist, to_model_range
from fmnist_ldm.course.diagram import pipeline_diagram, unet_diagram
from fmnist_ldm.diffusion import noising_path
from fmnist_ldm.pipeline import Pipeline
from fmnist_ldm.course.figures import tile
from fmnist_ldm.weights import read_weights

ROOT = Path.cwd().parent if Path.cwd().name == "presentation" else Path.cwd()
pipe = Pipeline.from_pretrained(device="cpu")
_, vae_cfg, vae_meta = read_weights(ROOT / "model/vae.safetensors", "vae")
_, unet_cfg, unet_meta = read_weights(ROOT / "model/unet.safetensors", "unet")
distill = json.loads((ROOT / "benchmarks/distill.json").read_text())
test_x, test_y = load_fashion_mnist("test")


def minutes(seconds) -> str:
    return f"{float(seconds) / 60:.1f} min"


def params(module) -> str:
    return f"{sum(p.numel() for p in module.parameters()) / 1e6:.2f} M"


# %% [markdown] slideshow={"slide_type": "slide"}
# # Stable Diffusion in miniature
# A latent diffusion model that draws Fashion-MNIST garments, from pure noise or from a class
# prompt, trained on a laptop CPU. Seven notebooks, one idea each:

# %%
pipeline_diagram()
plt.show()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 01 · The data
# 70,000 grey 28×28 garments in 10 classes. The models see pixels scaled to $[-1, 1]$:
# $x = \text{pixel}/127.5 - 1$.

# %%
rows = torch.cat([test_x[test_y == c][:12] for c in range(10)])
plt.figure(figsize=(7, 6))
plt.imshow(tile(rows, ncol=12, scale=1), cmap="gray")
plt.yticks([2 + 30 * c + 14 for c in range(10)], CLASS_NAMES)
plt.xticks([])
plt.show()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 02 · The autoencoder: 28×28 → 4×7×7
# Encode to a Gaussian, sample it, decode; the loss trades reconstruction against staying close to
# $\mathcal N(0, I)$:
# $$z = \mu + \sigma\,\varepsilon,\qquad \mathcal L = \lVert x - D(z)\rVert_1 + \beta\,\mathrm{KL}\big(\mathcal N(\mu,\sigma^2)\,\Vert\,\mathcal N(0, I)\big)$$
# A diffusion model on the 196 latent numbers is 4× cheaper than on the 784 pixels.

# %%
x = to_model_range(test_x[:10])
rec = pipe.decode(pipe.encode(x))
both = torch.cat([x, rec])[:, 0].add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)
plt.figure(figsize=(9, 2.2))
plt.imshow(tile(both, ncol=10, scale=1), cmap="gray")
plt.axis("off")
plt.title("test images (top) and their reconstructions through the 4×7×7 latent (bottom)")
plt.show()
display(Markdown(f"The shipped VAE: {params(pipe.vae)} parameters, {vae_cfg.vae_epochs} epochs "
                 f"({minutes(vae_meta['seconds'])}), then its decoder sharpened against a discriminator "
                 f"for {vae_cfg.vae_gan_epochs} epochs ({minutes(vae_meta['decoder_gan_seconds'])}, "
                 f"{vae_meta['decoder_gan_machine']})."))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 03 · The denoiser: a small UNet
# Input: a noisy latent $z_t$, the step $t$ (as sinusoidal features) and the class $y$ (as tokens
# that the image attends to); output: a tensor of the latent's shape. Down to 4×4 and back, with
# skip connections carrying detail across.

# %%
unet_diagram(pipe.unet, pipe.shape)
plt.show()
display(Markdown(f"The shipped UNet: {params(pipe.unet)} parameters, channels {unet_cfg.unet_channels}, "
                 f"{unet_cfg.unet_epochs} epochs ({minutes(unet_meta['unet_seconds'])}, {unet_meta['unet_machine']})."))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 04 · Diffusion: add noise, learn to remove it
# The forward process has a closed form, so training draws any step $t$ directly:
# $$z_t = \sqrt{\bar\alpha_t}\,z_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon,\qquad
# v = \sqrt{\bar\alpha_t}\,\varepsilon - \sqrt{1-\bar\alpha_t}\,z_0,\qquad
# \mathcal L = \big\lVert v_\theta(z_t, t, y) - v\big\rVert^2$$
# Sampling runs it backwards: from pure noise, each step replaces the noise the network sees.

# %%
z0 = pipe.encode(to_model_range(test_x[test_y == 7][:1]))
keep = [0, 100, 250, 400, 550, 700, 850, 999]
path = noising_path(pipe.schedule, z0, keep, torch.Generator().manual_seed(0))
frames = torch.cat([pipe.decode(z) for z in [z0] + path])[:, 0].add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)
plt.figure(figsize=(9, 1.8))
plt.imshow(tile(frames, ncol=len(frames), scale=2), cmap="gray")
plt.xticks([2 + 58 * i + 28 for i in range(len(frames))], ["$z_0$"] + [f"t={t}" for t in keep])
plt.yticks([])
plt.title("one sneaker's latent noised step by step (each decoded)")
plt.show()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 04 · The way back
# One reverse run, decoded at every step (top), and the same run in the plane of the first two
# principal components of real latents (bottom): from noise into the sneakers' cloud.
#
# ![one reverse run](../assets/denoising_path_sneaker.png)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 05 · Using the model: classifier-free guidance
# One network, trained with the class sometimes dropped, gives both guesses; guidance
# extrapolates from the unconditional towards the conditional one:
# $$\hat v = v_\theta(z_t, t, \varnothing) + w\,\big(v_\theta(z_t, t, y) - v_\theta(z_t, t, \varnothing)\big)$$

# %%
display(Markdown(f"(The shipped UNet saw no class on {unet_cfg.p_uncond:.0%} of its training images.)"))
display(Image(filename=str(ROOT / "assets/generated_samples.png"), width=520))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 05 · Clean → noise → a new clean garment
# The forward frames, then a real reverse run from where they ended: a new garment of the class.
#
# ![dress](../assets/diffusion_dress.gif) ![sneaker](../assets/diffusion_sneaker.gif) ![bag](../assets/diffusion_bag.gif)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 06 · Measuring it: FID beside the real-vs-real FID, and class accuracy
# A Fashion-MNIST classifier (the *judge*) gives features and labels. FID compares Gaussians fitted
# to the features of real and generated images; it is biased by the number of images, so it is
# always read beside two real sets' FID at the same $n$:
# $$\mathrm{FID} = \lVert\mu_r-\mu_g\rVert^2 + \operatorname{Tr}\big(\Sigma_r+\Sigma_g-2(\Sigma_r\Sigma_g)^{1/2}\big)$$

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 07 · Four steps instead of twenty: distillation
# A copy of the UNet learns where the teacher's guided runs end, from any state along them.

# %%
rows = distill["rows"]
table = ["| model, sampler | steps | UNet passes | images/s | class accuracy | FID − real-vs-real |",
         "|---|---:|---:|---:|---:|---:|"]
table += [f"| {r['model']}, {r['sampler']} | {r['steps']} | {r['unet_passes']} | {r['images_per_s']:.0f} | "
          f"{r['accuracy']:.1%} | {r['fid_minus_real']:.2f} |" for r in rows]
display(Markdown("\n".join(table) + f"\n\n{rows[0]['n']:,} images each, measured side by side on "
                 f"{distill['machine_info']['machine']} (`benchmarks/benchmark.py distill`)."))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 07 · Teacher and student, from the same noise
# ![teacher and student](../assets/distilled_vs_teacher.png)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## What to try next
# - Negative prompts, inpainting, interpolation, DDIM inversion: notebook 05.
# - Does it copy its training set? Nearest neighbours in the judge's features: notebook 06.
# - Train the `full` recipe on a GPU (Colab, T4): every notebook picks it when a GPU is there.
