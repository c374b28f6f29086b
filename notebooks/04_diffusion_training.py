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

# %% [markdown]
# # 04 · Diffusion: noising, the schedule, and training the denoiser
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/fmnist-ldm/fmnist-ldm/blob/main/notebooks/04_diffusion_training.ipynb)
#
# *In Colab, pick a GPU first: Runtime → Change runtime type → GPU. The first cell then fetches the
# course and its shipped weights; on a GPU the notebooks train the `full` recipe, on a CPU the
# small `fast` one, and each says which before it trains.*
#
# The forward process adds Gaussian noise in $T = 1000$ small steps. In closed form
# (Ho et al. 2020, eq. 4):
# $$q(z_t \mid z_0) = \mathcal N\big(\sqrt{\bar\alpha_t}\, z_0,\ (1-\bar\alpha_t) I\big),\qquad \bar\alpha_t = \textstyle\prod_{s\le t}(1-\beta_s).$$
# The network learns to undo it. All of it lives in `fmnist_ldm.diffusion`.

# %%
# Setup: in Colab (or any Jupyter without the package) fetch the course, its code and shipped weights.
import importlib.util, os, subprocess, sys
if importlib.util.find_spec("fmnist_ldm") is None:
    repo = os.environ.get("FMNIST_LDM_REPO", "https://github.com/fmnist-ldm/fmnist-ldm")
    if not os.path.isdir("fmnist-ldm"):
        subprocess.run(["git", "clone", "-q", "--depth", "1", repo, "fmnist-ldm"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "fmnist-ldm"], check=True)
    sys.path.insert(0, os.path.abspath("fmnist-ldm"))
    os.chdir("fmnist-ldm/notebooks")
    import torch
    if not torch.cuda.is_available():
        print("No GPU here: in Colab, Runtime -> Change runtime type -> GPU makes training minutes, not hours.")

# %%
import dataclasses
import matplotlib.pyplot as plt
import torch
from fmnist_ldm.notebook import notebook_preset, say_estimate
from fmnist_ldm.data import CLASS_NAMES, LatentDataset, load_fashion_mnist, to_model_range, to_uint8
from fmnist_ldm.diffusion import NoiseSchedule
from fmnist_ldm.pipeline import Pipeline
from fmnist_ldm.train import encode, train_unet
from fmnist_ldm.viz import tile

cfg = notebook_preset()
shipped = Pipeline.from_pretrained()   # its VAE turns images into latents for this notebook

# %% [markdown]
# ## One garment, noised
# Top: the latent's first channel at growing t. Bottom: what the VAE decodes from it. By
# t ≈ 800 the garment is gone from the decoded image. Both rows share one colour scale, so
# you see the noise grow (scaled latents have standard deviation ≈ 1; colours span ±3).

# %%
test_x, test_y = load_fashion_mnist("test", cfg.data_dir)
z0 = shipped.encode(to_model_range(test_x[:1]))         # the scaled latent of one test image
sched = NoiseSchedule("cosine")
ts = torch.tensor([0, 50, 100, 200, 300, 400, 500, 600, 800, 999])
noise = torch.randn(z0.shape, generator=torch.Generator().manual_seed(0))
zt = torch.cat([sched.q_sample(z0, t.view(1), noise) for t in ts])
fig, axes = plt.subplots(2, len(ts), figsize=(14, 3.2))
decoded = to_uint8(shipped.decode(zt))
for i, t in enumerate(ts):
    axes[0, i].imshow(zt[i, 0], cmap="RdBu_r", vmin=-3, vmax=3); axes[0, i].set_title(f"t={t}", fontsize=9)
    axes[1, i].imshow(decoded[i], cmap="gray", vmin=0, vmax=255)
    axes[0, i].axis("off"); axes[1, i].axis("off")
axes[0, 0].set_ylabel("latent"); fig.suptitle("forward process q(z_t | z_0): latent channel 0 (top), decoded (bottom)")
plt.show()

# %% [markdown]
# ## Linear vs cosine schedule
# The linear schedule (Ho et al.) destroys information early: $\bar\alpha_t$ is near 0 long
# before $t = T$. The cosine schedule (Nichol & Dhariwal 2021) spends more steps at useful
# noise levels. The signal-to-noise ratio $\bar\alpha_t/(1-\bar\alpha_t)$ shows it on a log scale.

# %%
fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.5))
for kind in ("linear", "cosine"):
    s = NoiseSchedule(kind)
    a1.plot(s.alphas_cumprod, label=kind)
    a2.plot(s.snr().log10(), label=kind)
a1.set(xlabel="t", ylabel=r"$\bar\alpha_t$", title="signal kept"); a1.legend()
a2.set(xlabel="t", ylabel="log10 SNR", title="signal-to-noise ratio"); a2.legend()
plt.tight_layout(); plt.show()

# %% [markdown]
# ## Training the denoiser
# Each step (Ho et al. Algorithm 1, with label dropout for guidance): pick latents $z_0$ and
# classes, a random $t$, noise $\epsilon$; with probability 10 % replace the class by the null
# class; train the UNet to predict $v = \sqrt{\bar\alpha_t}\,\epsilon - \sqrt{1-\bar\alpha_t}\,z_0$
# (Salimans & Ho 2022), which stays well-scaled at every $t$. Latents are encoded once.
# The loop keeps an EMA of the weights (`torch.optim.swa_utils.AveragedModel`), which we sample
# from, and writes an atomic checkpoint every few hundred steps to `runs/notebooks-<mode>/`
# (never to `model/`); run the cell again after an interruption and it resumes.

# %%
train_x, train_y = load_fashion_mnist("train", cfg.data_dir)
mean, std = encode(shipped.vae, to_model_range(train_x), shipped.cfg)
data = LatentDataset(mean, std, train_y, shipped.vae.scale.item())
ucfg = dataclasses.replace(cfg, vae_channels=shipped.cfg.vae_channels, latent_channels=shipped.cfg.latent_channels)
say_estimate(ucfg, ["unet"])   # times a few steps here, before the real run
unet, hist = train_unet(ucfg, data)
loss = torch.tensor(hist["loss"])
plt.figure(figsize=(7, 3))
plt.plot(loss, alpha=0.3, label="per step")
plt.plot(torch.nn.functional.avg_pool1d(loss[None], 25, 1)[0], label="moving average")
plt.xlabel("step"); plt.ylabel("v-prediction MSE"); plt.legend(); plt.title(f"UNet training ({hist['seconds']:.0f} s)")
plt.show()

# %% [markdown]
# ## What it learned
# Samples from the EMA weights just trained, with the library's defaults (20 DPM-Solver++
# steps, guidance 5 for t in [300, 700]). In fast
# mode they are rough; the shipped weights (notebook 05) trained ~30 epochs.

# %%
mine = Pipeline(unet, ucfg, shipped.vae)
s = mine.generate([c for c in range(ucfg.num_classes) for _ in range(8)])
plt.figure(figsize=(8, 9)); plt.imshow(tile(s.images, ncol=8), cmap="gray")
plt.yticks([2 + 58 * c + 28 for c in range(ucfg.num_classes)], CLASS_NAMES); plt.xticks([])
plt.title("samples from the UNet trained above"); plt.show()

# %% [markdown]
# ## Pixel space vs latent space
# The same code diffuses pixels (`space="pixel"`, 1×28×28). `benchmarks/ablations.py pixel`
# trains both for the same minutes and compares them; its table is in the README. Here we
# time one training step of each on the CPU to see why latents are cheaper.

# %%
import time
from fmnist_ldm.device import autocast
from fmnist_ldm.diffusion import training_loss
from fmnist_ldm.weights import build_unet
for space, channels, attn in (("latent", ucfg.unet_channels, ucfg.unet_attention), ("pixel", (32, 64, 96), (False, False, True))):
    c = dataclasses.replace(ucfg, space=space, unet_channels=channels, unet_attention=attn)
    net = build_unet(c)
    x0 = torch.randn(128, *c.sample_shape)             # (4, 7, 7) latents or (1, 28, 28) pixels
    y = torch.randint(0, c.num_classes, (128,))
    for i in range(4):
        if i == 1:
            t0 = time.perf_counter()
        with autocast(torch.device("cpu"), c.bf16):
            l = training_loss(net, sched, x0, y, "v", 0.1, c.num_classes)
        l.backward()
    print(f"{space:6s}: input {tuple(x0.shape[1:])}, {sum(p.numel() for p in net.parameters()):,} params, "
          f"{(time.perf_counter() - t0) / 3 * 1000:.0f} ms per training step of 128")
