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
# # 02 · The autoencoder: squeezing 28×28 into 4×7×7
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/fmnist-ldm/fmnist-ldm/blob/main/notebooks/02_vae.ipynb)
#
# *In Colab, pick a GPU first: Runtime → Change runtime type → GPU. The first cell then fetches the
# course and its shipped weights; on a GPU the notebooks train the `full` recipe, on a CPU the
# small `fast` one, and each says which before it trains.*
#
# Latent diffusion (Rombach et al. 2022) does not diffuse pixels. A variational autoencoder
# first learns to compress each image into a small latent (here 4 channels × 7 × 7 = 196
# numbers instead of 784) and to decode it back; the diffusion model then works in that
# latent space, which is 16× smaller per channel and much cheaper on a CPU.

# %%
# Setup: in Colab (or any Jupyter without the package) fetch the course, its code and shipped weights.
import importlib.util, os, subprocess, sys
if importlib.util.find_spec("fmnist_ldm") is None:
    repo = os.environ.get("FMNIST_LDM_REPO", "https://github.com/fmnist-ldm/fmnist-ldm")
    clone = [] if os.path.isdir("fmnist-ldm") else [["git", "clone", "--depth", "1", repo, "fmnist-ldm"]]
    for cmd in clone + [[sys.executable, "-m", "pip", "install", "-e", "fmnist-ldm"]]:
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"Setup failed: `{' '.join(cmd)}` said:\n{done.stderr[-1500:]}\nCheck the "
                               "internet connection (and FMNIST_LDM_REPO, if set), then run this cell again.")
    sys.path.insert(0, os.path.abspath("fmnist-ldm"))
    import torch
    if not torch.cuda.is_available():
        print("No GPU here: in Colab, Runtime -> Change runtime type -> GPU makes training minutes, not hours.")
if os.path.isdir("fmnist-ldm/notebooks"):      # Colab's /content, also after Runtime -> Restart session
    os.chdir("fmnist-ldm/notebooks")

# %%
import matplotlib.pyplot as plt
import torch
from fmnist_ldm.notebook import notebook_preset, say_estimate
from fmnist_ldm.data import CLASS_NAMES, load_fashion_mnist, to_model_range, to_uint8
from fmnist_ldm.metrics import reconstruction_metrics
from fmnist_ldm.train import encode, train_vae
from fmnist_ldm.viz import pca_basis, tile
from fmnist_ldm.weights import build_vae

cfg = notebook_preset()

# %% [markdown]
# ## Architecture and shapes
# Encoder: conv → residual blocks (GroupNorm, SiLU) with stride-2 convs 28 → 14 → 7, channel
# attention (squeeze-and-excitation), then a conv to 2C channels: the mean and log-variance
# of a Gaussian posterior q(z|x). The decoder mirrors it with nearest-neighbour upsampling.

# %%
vae = build_vae(cfg)
x = torch.zeros(2, 1, 28, 28)
for name, module in vae.encoder.net.named_children():
    x = module(x)
    print(f"encoder[{name:>2}] {type(module).__name__:17s} -> {tuple(x.shape)}")
print("parameters:", sum(p.numel() for p in vae.parameters()))

# %% [markdown]
# ## Training
# The loss is reconstruction (L1 + MSE) plus a small KL term
# $\mathrm{KL}(\mathcal N(\mu,\sigma^2)\,\|\,\mathcal N(0,1)) = \tfrac12\sum(\mu^2+\sigma^2-1-\log\sigma^2)$
# that keeps the latent space smooth. In fast mode this is one short epoch with a narrower
# network; the shipped weights (`model/vae.safetensors`) used the `full` preset.
# Checkpoints go to `runs/notebooks-<mode>/` and training resumes if interrupted.

# %%
say_estimate(cfg, ["vae"])     # times a few steps here, before the real run
train_x, train_y = load_fashion_mnist("train", cfg.data_dir)
test_x, test_y = load_fashion_mnist("test", cfg.data_dir)
vae, hist, _ = train_vae(cfg, to_model_range(train_x))
loss = torch.tensor(hist["loss"])
k = 25                                   # window of the moving average, drawn at the window's centre
plt.figure(figsize=(7, 3))
plt.plot(loss, alpha=0.3, label="per step")
plt.plot(torch.arange(k // 2, len(loss) - k // 2), torch.nn.functional.avg_pool1d(loss[None], k, 1)[0],
         label=f"moving average ({k} steps, centred)")
plt.yscale("log"); plt.xlabel("step"); plt.ylabel("loss"); plt.legend(); plt.title("VAE training loss")
plt.show()
print(f"trained in {hist['seconds']:.0f} s")

# %% [markdown]
# The same loss written out by hand for 8 test images, using the VAE trained above. The encoder gives
# $\mu$ and $\log\sigma^2$. The reparameterisation trick draws $z = \mu + \sigma\,\varepsilon$
# with $\varepsilon \sim \mathcal N(0, I)$, so gradients can flow back through $\mu$ and $\sigma$. The decoder
# reconstructs, and the KL is summed over each image's latent entries, then averaged over the images.
# With the same seed for $\varepsilon$, `vae.loss` (what training minimised) gives the same numbers.

# %%
x = to_model_range(test_x[:8])                          # 8 real test images in [-1, 1]
with torch.no_grad():
    mu, logvar = vae.encode(x)                          # each [8, C, 7, 7]: the encoder gives log sigma^2
    sigma = torch.exp(0.5 * logvar)
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(0))
    z = mu + sigma * eps                                # the reparameterisation trick
    recon = vae.decode(z)
    rec = (recon - x).abs().mean() + ((recon - x) ** 2).mean()               # L1 + MSE
    kl = (0.5 * (mu**2 + sigma**2 - 1 - logvar)).sum(dim=(1, 2, 3)).mean()   # per image, then the batch mean
    by_hand = rec + cfg.vae_kl_weight * kl
    library, parts = vae.loss(x, cfg.vae_kl_weight, torch.Generator().manual_seed(0))
print(f"by hand:  reconstruction {rec:.5f}, KL {kl:.3f}, loss {by_hand:.6f}")
print(f"vae.loss: reconstruction {parts['rec']:.5f}, KL {parts['kl']:.3f}, loss {library:.6f}")
torch.testing.assert_close(kl, parts["kl"])    # the KL term
torch.testing.assert_close(by_hand, library)                  # the whole loss

# %% [markdown]
# ## Reconstructions
# Top: real test images. Bottom: decode(encode(x)) through the posterior mean.

# %%
print(reconstruction_metrics(vae, test_x[:2000], cfg))
with torch.no_grad():
    rec = to_uint8(vae.decode(vae.encode(to_model_range(test_x[:12]))[0]))
plt.figure(figsize=(12, 2.4))
plt.imshow(tile(torch.cat([test_x[:12], rec]), ncol=12), cmap="gray"); plt.axis("off")
plt.title("real (top) and reconstructed (bottom)")
plt.show()

# %% [markdown]
# ## Sharpening the decoder with an adversary (the shipped weights)
# L1 + MSE reward the decoder for drawing the *average* of every garment a latent could stand
# for, and averages are blurry. Stable Diffusion's autoencoder adds an adversarial loss
# (Esser et al. 2021): a small "patch" discriminator $D$ outputs a 7×7 grid of real-or-decoded
# logits, and the decoder learns to fool it (hinge loss, $\hat x$ = decoded image, averaged over the grid):
# $$L_{\text{dec}} = |\hat x - x| + (\hat x - x)^2 - w\,D(\hat x),\qquad
#   L_D = \max(0, 1 - D(x)) + \max(0, 1 + D(\hat x)).$$
# Despite the name, the logits do not judge separate 7×7 patches. Through its convolutions
# (kernels 4, 4, 3, 3, strides 2, 2, 1, 1) each logit sees a 26×26 window of the 28×28 image
# (15×15 at the corners, where the rest is padding), and its GroupNorm layers normalise with
# statistics of the whole image, so every logit depends a little on every pixel: a gradient check
# in the next cell shows it. So $D$ gives 49 overlapping, nearly image-sized opinions.
#
# Only the decoder is fine-tuned (the encoder is frozen), so the latents, and any UNet trained
# on them, stay valid. `train --preset full` runs two epochs of it after the VAE
# (`fmnist_ldm.train.sharpen_decoder`); fast mode skips it.

# %%
from fmnist_ldm.vae import PatchDiscriminator
disc = PatchDiscriminator()              # untrained: what a logit can see is a property of the architecture
x = torch.randn(1, 1, 28, 28, requires_grad=True)

def pixels_seen(i, j):
    """Which pixels move logit (i, j) of the 7x7 grid: the non-zero entries of its gradient."""
    grad, = torch.autograd.grad(disc(x)[0, 0, i, j], x)
    return grad[0, 0] != 0

for i, j in ((3, 3), (0, 0)):
    print(f"logit ({i}, {j}): moved by {pixels_seen(i, j).sum().item()} of 784 pixels")
for k, layer in enumerate(disc.net):     # without the GroupNorms' image-wide statistics:
    if isinstance(layer, torch.nn.GroupNorm):
        disc.net[k] = torch.nn.Identity()
for i, j in ((3, 3), (0, 0)):
    seen = pixels_seen(i, j)
    rows, cols = seen.any(1).nonzero().flatten(), seen.any(0).nonzero().flatten()
    print(f"convolutions only, logit ({i}, {j}): rows {rows.min().item()}–{rows.max().item()}, "
          f"columns {cols.min().item()}–{cols.max().item()}")

# %% [markdown]
# Below, the VAE trained above against the shipped one, whose decoder went through this stage.
# The two differ in more than the adversary: in fast mode the VAE above is half as wide
# (16/32/64 channels instead of 32/64/128) and trained 1 epoch instead of 5, and only the shipped
# one had the 2 adversarial epochs. So this comparison does not isolate the adversary. The
# shipped VAE's decoder from before its adversarial stage is not kept, so this notebook cannot
# show that isolated comparison; `benchmarks/README.md` measured it on the same frozen encoder and
# latents: reconstructions' FID 3.24 for the first decoder, 3.14 after 2 more epochs of L1 + MSE
# alone, and 1.56 after 2 epochs with the adversary (pixel MSE 0.00211, 0.00205 and 0.00247: the
# sharper decoder is slightly *worse* by MSE; `benchmarks/README.md`, "What moved FID").

# %%
from fmnist_ldm.pipeline import MODEL_DIR
from fmnist_ldm.weights import load_model
shipped_vae, shipped_cfg = load_model(MODEL_DIR / "vae.safetensors", "vae")
print("shipped VAE:", reconstruction_metrics(shipped_vae, test_x[:2000], shipped_cfg))
with torch.no_grad():
    rec_shipped = to_uint8(shipped_vae.decode(shipped_vae.encode(to_model_range(test_x[:12]))[0]))
plt.figure(figsize=(12, 3.5))
plt.imshow(tile(torch.cat([test_x[:12], rec, rec_shipped]), ncol=12), cmap="gray")
plt.yticks([2 + 58 * r + 28 for r in range(3)], ["real", "VAE above", "shipped"]); plt.xticks([])
plt.title("reconstructions: the VAE trained above vs the shipped VAE (sharpened decoder)")
plt.show()

# %% [markdown]
# ## What a latent looks like
# From here on, the shipped VAE: its latents are the ones the shipped UNet (notebooks 03–06)
# learned to generate. Each latent channel (4 here) is a 7×7 map (all on one colour scale). They
# are not little pictures, but the garment's outline shows through.

# %%
with torch.no_grad():
    z = shipped_vae.encode(to_model_range(test_x[:3]))[0]
lim = z.abs().max().item()
channels = z.shape[1]                     # 4 for the shipped VAE
fig, axes = plt.subplots(3, 1 + channels, figsize=(1.8 * (1 + channels), 5))
for r in range(3):
    axes[r, 0].imshow(test_x[r], cmap="gray")
    for c in range(channels):
        im = axes[r, c + 1].imshow(z[r, c], cmap="RdBu_r", vmin=-lim, vmax=lim)
        axes[0, c + 1].set_title(f"channel {c}")
    for ax in axes[r]:
        ax.axis("off")
axes[0, 0].set_title("image")
fig.colorbar(im, ax=axes[:, 1:], shrink=0.8, label="latent value")
plt.show()

# %% [markdown]
# ## The latent space in 2-D
# Projecting 3,000 test latents of the shipped VAE on their first two principal components:
# classes form regions, shoes far from tops, and T-shirt/shirt/pullover/coat overlap — as in the pixels.

# %%
mean, std = encode(shipped_vae, to_model_range(test_x[:3000]), shipped_cfg)
m, comps = pca_basis(mean)
pts = (mean.flatten(1) - m) @ comps.T
plt.figure(figsize=(7, 6))
for c in range(cfg.num_classes):
    sel = test_y[:3000] == c
    plt.scatter(pts[sel, 0], pts[sel, 1], s=4, alpha=0.5, label=CLASS_NAMES[c], color=plt.cm.tab10(c))
plt.legend(markerscale=4, fontsize=8); plt.xlabel("PC 1"); plt.ylabel("PC 2")
plt.title("test latents of the shipped VAE, PCA")
plt.show()

# %% [markdown]
# ## Walking between two garments
# Decoding (shipped VAE) points on the straight line between the latents of a sneaker and a dress.

# %%
a, b = mean[(test_y[:3000] == 7).nonzero()[0, 0]], mean[(test_y[:3000] == 3).nonzero()[0, 0]]
steps = torch.linspace(0, 1, 10)
with torch.no_grad():
    walk = to_uint8(shipped_vae.decode(torch.stack([(1 - s) * a + s * b for s in steps])))
plt.figure(figsize=(12, 1.6)); plt.imshow(tile(walk, ncol=10), cmap="gray"); plt.axis("off")
plt.title("latent interpolation: sneaker → dress"); plt.show()

# %% [markdown]
# ## Why the latent is rescaled
# The diffusion model assumes data of roughly unit variance (its noise is N(0, I)). The KL
# weight sets the latent's scale arbitrarily, so we measure the standard deviation of the
# training latents and multiply by `vae.scale` = 1/std before diffusion (and divide after),
# as Stable Diffusion does with its 0.18215.

# %%
scale = shipped_vae.scale.item()          # measured on the 60,000 training latents when the VAE was trained
print(f"latent std {mean.std():.3f}  ->  scale {scale:.3f}  ->  scaled std {(mean * scale).std():.3f} "
      "(3,000 test latents)")

# %% [markdown]
# ## Your turn
# Write each function below where it says so, then run its cell: the checker compares it with
# the library's own implementation on a few inputs and says what is wrong if it is. The
# solution is in the hidden cell under each exercise (click to show it); it runs, and is checked, too.

# %% [markdown]
# **Exercise 1: The reparameterisation trick.** The encoder gives a mean $\mu$ and a log-variance $\log\sigma^2$ per latent entry. Sampling
# $z \sim \mathcal N(\mu, \sigma^2)$ directly would block the gradient; instead draw
# $\varepsilon \sim \mathcal N(0, I)$ and compute $z = \mu + \sigma\,\varepsilon$ with $\sigma = e^{\frac12 \log\sigma^2}$,
# which is differentiable in $\mu$ and $\sigma$.

# %%
from fmnist_ldm.exercises import check_reparameterize

def my_reparameterize(mean, logvar, eps):
    """z = mu + sigma * eps, all [B, C, 7, 7]."""
    raise NotImplementedError   # your code here

check_reparameterize(my_reparameterize)

# %% tags=["solution"] cellView="form" jupyter={"source_hidden": true}
#@title Solution (hidden in Jupyter and Colab: click to show)
def reparameterize(mean, logvar, eps):
    """z = mu + sigma * eps, all [B, C, 7, 7]."""
    return mean + torch.exp(0.5 * logvar) * eps


assert check_reparameterize(reparameterize)

# %% [markdown]
# **Exercise 2: The KL term.** The VAE's loss pulls each latent distribution towards $\mathcal N(0, I)$ with
# $\mathrm{KL} = \tfrac12 \sum (\mu^2 + \sigma^2 - 1 - \log\sigma^2)$, summed over the latent entries of an
# image and averaged over the batch (`VAE.kl`).

# %%
from fmnist_ldm.exercises import check_kl

def my_kl(mean, logvar):
    """KL(N(mean, exp(logvar)) || N(0, I)): summed per image, averaged over the batch."""
    raise NotImplementedError   # your code here

check_kl(my_kl)

# %% tags=["solution"] cellView="form" jupyter={"source_hidden": true}
#@title Solution (hidden in Jupyter and Colab: click to show)
def kl(mean, logvar):
    """KL(N(mean, exp(logvar)) || N(0, I)): summed per image, averaged over the batch."""
    return (0.5 * (mean**2 + logvar.exp() - 1 - logvar)).sum(dim=(1, 2, 3)).mean()


assert check_kl(kl)

# %% [markdown]
# ## What we learned
# - A VAE squeezes each 28×28 image into 4×7×7 = 196 numbers and decodes it back; the KL term keeps
#   that latent space smooth enough to sample and to walk in.
# - Pixel losses alone make the decoder draw blurry averages; an adversary sharpens it (FID of the
#   reconstructions 3.24 → 1.56 in `benchmarks/README.md`) at a small cost in pixel MSE, with the encoder
#   frozen so the latents do not move.
# - The "patch" discriminator's 7×7 logits each see a 26×26 window, and through GroupNorm the whole
#   image: check a receptive field by gradient rather than by name.
# - In latent space the classes form regions, with the four upper-body garments overlapping.
# - The latents are rescaled to unit variance, because the diffusion model's noise is N(0, I).
#
# ## Check your understanding
# 1. Why does an L1 + MSE decoder blur, and why does the adversary's sharper guess score a worse MSE?
# 2. The adversarial stage fine-tunes only the decoder. What would have to be retrained if it
#    fine-tuned the encoder too?
# 3. Without the rescaling, the shipped latents would have a standard deviation of about the value
#    printed above. What would that do to the forward process $q(z_t \mid z_0)$ of notebook 04 at a
#    given t?
