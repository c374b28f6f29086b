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
from fmnist_ldm.course.notebook import notebook_preset, say_estimate
from fmnist_ldm.data import CLASS_NAMES, load_fashion_mnist, to_model_range, to_uint8
from fmnist_ldm.metrics import reconstruction_metrics
from fmnist_ldm.pipeline import MODEL_DIR
from fmnist_ldm.train import train_vae
from fmnist_ldm.vae import posteriors
from fmnist_ldm.course.figures import pca_basis, tile
from fmnist_ldm.weights import build_vae, load_model

cfg = notebook_preset()

# %% [markdown]
# ## Where this notebook sits
# The whole course on one picture; the boxes this notebook teaches are in colour.

# %%
from fmnist_ldm.course.diagram import pipeline_diagram
pipeline_diagram("02"); plt.show()

# %% [markdown]
# This notebook teaches four ideas:
# 1. **The shapes**: an encoder squeezes a 1×28×28 image into a 4×7×7 latent, and a decoder draws
#    the image back from it.
# 2. **The VAE loss**: reconstruction plus a KL term, and the reparameterisation trick that lets
#    gradients pass through a random sample.
# 3. **How good a reconstruction is**: MSE, PSNR and SSIM, why pixel losses blur, and how the
#    shipped decoder was sharpened by an adversary.
# 4. **The latent space**: what a latent looks like, classes in 2-D, walking between two
#    garments, and why the latents are rescaled before diffusion.

# %% [markdown]
# ## Architecture and shapes
# Encoder: conv → residual blocks (GroupNorm, SiLU) with stride-2 convs 28 → 14 → 7, channel
# attention (squeeze-and-excitation), then a conv to 2C channels: the mean and log-variance
# of a Gaussian posterior q(z|x), the distribution of latents the encoder thinks could stand for
# this image. The decoder mirrors it with nearest-neighbour upsampling.

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
# that pulls every posterior towards the standard normal and so keeps the latent space smooth.
# The cell below first times a few steps to say how long training will take here, then trains;
# the last line says what this run trained and what the shipped weights (`model/vae.safetensors`)
# did. Checkpoints go to `runs/notebooks-<mode>/` and training resumes if interrupted.

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
shipped_vae, shipped_cfg = load_model(MODEL_DIR / "vae.safetensors", "vae")
print(f"This run trained {cfg.vae_epochs} epoch(s) at widths {cfg.vae_channels} (KL weight "
      f"{cfg.vae_kl_weight:g}) in {hist['seconds']:.0f} s; the shipped VAE trained {shipped_cfg.vae_epochs} "
      f"epochs at widths {shipped_cfg.vae_channels} (KL weight {shipped_cfg.vae_kl_weight:g}).")

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
# Top: real test images. Bottom: decode(encode(x)) through the posterior mean. Three numbers say
# how close they are, each computed on pixels in [0, 1]:
# - **MSE**, the mean squared error per pixel: lower is better.
# - **PSNR**, the peak signal-to-noise ratio, is the MSE on a log scale in decibels,
#   $\mathrm{PSNR} = 10 \log_{10}(1 / \mathrm{MSE})$ (1 is the largest pixel value): higher is better,
#   and +10 dB means a 10× smaller MSE.
# - **SSIM**, the structural similarity, compares small windows of the two images by their
#   brightness, contrast and correlation: 1 means identical, and it follows edges and texture
#   more than MSE does.

# %%
n_eval = 2000
def say_metrics(who, m):
    print(f"{who:22s} MSE {m['mse']:.5f} per pixel, PSNR {m['psnr']:.1f} dB, SSIM {m['ssim']:.3f} "
          f"(on {n_eval:,} test images)")

ours = reconstruction_metrics(vae, test_x[:n_eval], cfg)
say_metrics("The VAE trained above:", ours)
with torch.no_grad():
    rec = to_uint8(vae.decode(vae.encode(to_model_range(test_x[:12])).mean))
plt.figure(figsize=(12, 2.4))
plt.imshow(tile(torch.cat([test_x[:12], rec]), ncol=12), cmap="gray"); plt.axis("off")
plt.title("real (top) and reconstructed (bottom)")
plt.show()

# %% [markdown]
# ## Sharpening the decoder with an adversary (the shipped weights)
# L1 + MSE reward the decoder for drawing the *average* of every garment a latent could stand
# for, and averages are blurry. Stable Diffusion's autoencoder adds an adversarial loss
# (Esser et al. 2021): a small discriminator $D$, trained at the same time to tell real images
# from decoded ones, outputs a 7×7 grid of real-or-decoded logits, and the decoder learns to fool
# it (hinge loss, $\hat x$ = decoded image, averaged over the grid):
# $$L_{\text{dec}} = |\hat x - x| + (\hat x - x)^2 - w\,D(\hat x),\qquad
#   L_D = \max(0, 1 - D(x)) + \max(0, 1 + D(\hat x)).$$
# (What each of the 49 logits actually looks at is in "Going further" at the end.)
#
# Only the decoder is fine-tuned (the encoder is frozen), so the latents, and any UNet trained
# on them, stay valid. `train --preset full` runs this stage after the VAE
# (`fmnist_ldm.train.sharpen_decoder`); this notebook does not run it.
#
# Below, the VAE trained above against the shipped one, whose decoder went through this stage.
# The two differ in more than the adversary (the cell prints how), so this comparison does not
# isolate it. `benchmarks/README.md` ("What moved FID") measured the adversary alone, on the same
# frozen encoder, with FID, a distance between the features of real and decoded images (FID:
# notebook 06); there the sharper decoder also scored a slightly *worse* pixel MSE. Look at the
# edges and the prints on the garments rather than at the MSE.

# %%
shipped = reconstruction_metrics(shipped_vae, test_x[:n_eval], shipped_cfg)
say_metrics("The shipped VAE:", shipped)
print(f"The VAE above: {cfg.vae_epochs} epoch(s) at widths {cfg.vae_channels}, no adversarial stage. "
      f"The shipped one: {shipped_cfg.vae_epochs} epochs at widths {shipped_cfg.vae_channels}, then "
      f"{shipped_cfg.vae_gan_epochs} epochs of its decoder against the adversary (weight w = {shipped_cfg.vae_gan_weight:g}).")
gap = shipped["psnr"] - ours["psnr"]
print(f"So the shipped VAE's PSNR is {abs(gap):.1f} dB {'higher' if gap > 0 else 'lower'} and its SSIM "
      f"{'higher' if shipped['ssim'] > ours['ssim'] else 'lower'}: a wider, longer-trained VAE and the adversary together.")
with torch.no_grad():
    rec_shipped = to_uint8(shipped_vae.decode(shipped_vae.encode(to_model_range(test_x[:12])).mean))
plt.figure(figsize=(12, 3.5))
plt.imshow(tile(torch.cat([test_x[:12], rec, rec_shipped]), ncol=12), cmap="gray")
plt.yticks([2 + 58 * r + 28 for r in range(3)], ["real", "VAE above", "shipped"]); plt.xticks([])
plt.title("reconstructions: the VAE trained above vs the shipped VAE (sharpened decoder)")
plt.show()

# %% [markdown]
# ## What a latent looks like
# From here on, the shipped VAE: its latents are the ones the shipped UNet (notebooks 03–06)
# learned to generate. Each latent channel (4 here) is a 7×7 map (all on one colour scale). They
# are not little pictures, but look for the garment's outline showing through.

# %%
with torch.no_grad():
    z = shipped_vae.encode(to_model_range(test_x[:3])).mean
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
# Projecting 3,000 test latents of the shipped VAE (their posterior means) on their first two
# principal components, the two directions along which they spread most. Look for which classes
# get a region of their own and which overlap; the cell then prints, from the class centres in
# this picture, which classes lie closest together and which farthest apart.

# %%
n_latents = 3000
shipped_posterior = posteriors(shipped_vae, to_model_range(test_x[:n_latents]), bf16=shipped_cfg.bf16)
mean, std = shipped_posterior.mean, shipped_posterior.std
labels = test_y[:n_latents]
m, comps = pca_basis(mean)
pts = (mean.flatten(1) - m) @ comps.T
plt.figure(figsize=(7, 6))
for c in range(cfg.num_classes):
    sel = labels == c
    plt.scatter(pts[sel, 0], pts[sel, 1], s=4, alpha=0.5, label=CLASS_NAMES[c], color=plt.cm.tab10(c))
plt.legend(markerscale=4, fontsize=8); plt.xlabel("PC 1"); plt.ylabel("PC 2")
plt.title("test latents of the shipped VAE, PCA")
plt.show()
centres = torch.stack([pts[labels == c].mean(0) for c in range(cfg.num_classes)])
dist = torch.cdist(centres, centres)
pairs = sorted((dist[a, b].item(), a, b) for a in range(cfg.num_classes) for b in range(a + 1, cfg.num_classes))
say = lambda ps: "; ".join(f"{CLASS_NAMES[a]} – {CLASS_NAMES[b]}" for _, a, b in ps)
print("closest class centres in this projection:", say(pairs[:3]))
print("farthest apart:", say(pairs[-3:][::-1]))

# %% [markdown]
# ## Walking between two garments
# Decoding (shipped VAE) points on the straight line between the latents of two test garments
# of different classes.

# %%
first, last = 7, 3                                      # class numbers (CLASS_NAMES lists them)
a, b = mean[(labels == first).nonzero()[0, 0]], mean[(labels == last).nonzero()[0, 0]]
steps = torch.linspace(0, 1, 10)
with torch.no_grad():
    walk = to_uint8(shipped_vae.decode(torch.stack([(1 - s) * a + s * b for s in steps])))
plt.figure(figsize=(12, 1.6)); plt.imshow(tile(walk, ncol=10), cmap="gray"); plt.axis("off")
plt.title(f"latent interpolation: {CLASS_NAMES[first]} → {CLASS_NAMES[last]}"); plt.show()

# %% [markdown]
# ## Why the latent is rescaled
# The diffusion model (notebook 04) mixes its data with noise drawn from N(0, I), and its
# schedule assumes the data has about the same spread, a standard deviation near 1. How spread
# out the latents are is an accident of training (the KL weight sets it), so every VAE stores one
# number, `vae.scale`, measured once after training: the latents are multiplied by it before
# diffusion and divided by it before decoding, as Stable Diffusion does with its 0.18215.
# Exercise 3 asks you to compute it.

# %%
print(f"The shipped VAE's scale is {shipped_vae.scale.item():.4f}. The {n_latents:,} test latents "
      f"(posterior means) have a standard deviation of {mean.std():.3f}, times the scale {(mean * shipped_vae.scale).std():.3f}.")

# %% [markdown]
# ## Your turn
# Write each function below where it says so, then run its cell: the checker compares it with
# the library's own implementation on a few inputs and says what is wrong if it is. The
# solution is in the hidden cell under each exercise (click to show it); it runs, and is checked, too.
# The checkers feed your functions small made-up tensors of shape [5, 3, 6, 7] (images,
# channels, rows, columns), so write them for any [N, C, H, W].

# %% [markdown]
# **Exercise 1: PSNR, one per image.** `reconstruction_metrics` gives one PSNR for a whole test
# set. Write the PSNR of *each* image, from the definition in "Reconstructions" (pixels in
# [0, 1], the MSE over that image's pixels). Mind the range: the model's images, which you get
# here, are in [-1, 1].

# %% tags=["nbval-check-output"]
from fmnist_ldm.course.exercises import check_psnr

def my_psnr(images, reconstructions):
    """images, reconstructions: [N, C, H, W] in [-1, 1] -> [N]: each image's PSNR in dB."""
    raise NotImplementedError   # your code here

check_psnr(my_psnr)

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution", "nbval-check-output"]
#@title Solution (hidden in Jupyter and Colab: click to show)
def psnr_per_image(images, reconstructions):
    """images, reconstructions: [N, C, H, W] in [-1, 1] -> [N]: each image's PSNR in dB."""
    a, b = (images + 1) / 2, (reconstructions + 1) / 2          # to [0, 1]
    mse = ((a - b) ** 2).mean(dim=(1, 2, 3))                   # one MSE per image
    return 10 * torch.log10(1 / mse)


assert check_psnr(psnr_per_image)

# %% [markdown]
# With one PSNR per image you can ask which garments the shipped VAE reconstructs worst. The
# cell uses the solution's `psnr_per_image` (run the hidden cell above first). Look at what the
# worst twelve have in common, and what the decoder drew in place of it.

# %%
x = to_model_range(test_x[:n_eval])
with torch.no_grad():
    rec_all = shipped_vae.decode(shipped_vae.encode(x).mean).clamp(-1, 1)
psnrs = psnr_per_image(x, rec_all)
per_class = torch.stack([psnrs[test_y[:n_eval] == c].median() for c in range(cfg.num_classes)])
order = per_class.argsort()
print("median PSNR per class, worst first: " + ", ".join(f"{CLASS_NAMES[c]} {per_class[c]:.1f} dB" for c in order))
worst = psnrs.argsort()[:12]
plt.figure(figsize=(12, 2.6))
plt.imshow(tile(torch.cat([test_x[worst], to_uint8(rec_all[worst])]), ncol=12), cmap="gray")
plt.xticks([2 + 58 * i + 28 for i in range(12)], [f"{psnrs[i]:.1f}" for i in worst], fontsize=8)
plt.yticks([2 + 58 * r + 28 for r in range(2)], ["real", "shipped"])
plt.title(f"the 12 worst reconstructions of {n_eval:,} test images (PSNR in dB below each)")
plt.show()

# %% [markdown]
# **Exercise 2: Which latent channels carry information?** The KL term is a sum over every
# latent entry. Summed over one channel's 7×7 entries instead, and averaged over the images, it
# says how far that channel's posteriors are from N(0, 1), in nats, about how much information
# the channel carries per image: a channel the encoder leaves at $\mu = 0$, $\sigma = 1$ scores 0
# and carries nothing. Return one number per channel.

# %% tags=["nbval-check-output"]
from fmnist_ldm.course.exercises import check_kl_per_channel

def my_kl_per_channel(mean, logvar):
    """mean, logvar: [N, C, H, W] posteriors -> [C]: each channel's KL to N(0, 1)."""
    raise NotImplementedError   # your code here

check_kl_per_channel(my_kl_per_channel)

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution", "nbval-check-output"]
#@title Solution (hidden in Jupyter and Colab: click to show)
def kl_per_channel(mean, logvar):
    """mean, logvar: [N, C, H, W] posteriors -> [C]: each channel's KL to N(0, 1)."""
    per_entry = 0.5 * (mean**2 + logvar.exp() - 1 - logvar)
    return per_entry.sum(dim=(2, 3)).mean(dim=0)               # sum over a channel's 7x7, mean over images


assert check_kl_per_channel(kl_per_channel)

# %% [markdown]
# The library's `fmnist_ldm.vae.kl_per_channel` on the test latents of both VAEs: does either
# leave a channel unused, and does one channel carry more than the others?

# %%
from fmnist_ldm.vae import kl_per_channel as library_kl_per_channel
ours = posteriors(vae, to_model_range(test_x[:n_latents]), bf16=cfg.bf16)
for who, posterior in (("the VAE trained above", ours), ("the shipped VAE", shipped_posterior)):
    per_channel = library_kl_per_channel(posterior.mean, posterior.logvar)
    share = per_channel / per_channel.sum()
    print(f"{who}: KL per channel " + ", ".join(f"{v:.0f}" for v in per_channel.tolist())
          + f" nats per image; the most in channel {share.argmax().item()} ({share.max():.0%} of the total), "
          f"the least in channel {share.argmin().item()} ({share.min():.0%})")

# %% [markdown]
# **Exercise 3: The scale factor.** Write the one number $s$ that "Why the latent is rescaled"
# is about: $s$ times the latents must have standard deviation 1. Which latents? The UNet does
# not train on the posterior means but on samples $z = \mu + \sigma\,\varepsilon$, a fresh one each
# time. You get the posterior `mean`, its `std` ($\sigma$, not the log-variance) and one draw `eps`.

# %% tags=["nbval-check-output"]
from fmnist_ldm.course.exercises import check_latent_scale

def my_latent_scale(mean, std, eps):
    """mean, std, eps: [N, C, H, W] -> one number s: s * z has standard deviation 1."""
    raise NotImplementedError   # your code here

check_latent_scale(my_latent_scale)

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution", "nbval-check-output"]
#@title Solution (hidden in Jupyter and Colab: click to show)
def latent_scale(mean, std, eps):
    """mean, std, eps: [N, C, H, W] -> one number s: s * z has standard deviation 1."""
    z = mean + std * eps                     # the latents the UNet sees: samples, not means
    return 1 / z.std()


assert check_latent_scale(latent_scale)

# %% [markdown]
# The solution's `latent_scale` on the shipped VAE's test latents, beside the scale stored in the
# VAE (measured the same way on the 60,000 training latents when it was trained), and what the
# means alone would give.

# %%
eps = torch.randn(mean.shape, generator=torch.Generator().manual_seed(0))
from_samples, from_means = latent_scale(mean, std, eps).item(), 1 / mean.std().item()
print(f"{n_latents:,} test latents, samples: s = {from_samples:.4f}; means alone: {from_means:.4f} "
      f"({from_means / from_samples - 1:+.1%}); stored in the shipped VAE: {shipped_vae.scale.item():.4f}.")
print(f"The posterior std sigma averages {std.mean():.3f}, against a spread of {mean.std():.3f} of the means: "
      "the smaller sigma is beside that spread, the less the samples' scale differs from the means'.")

# %% [markdown]
# ## Going further: what the "patch" discriminator sees
# The discriminator of the adversarial stage is called a *patch* discriminator (PatchGAN,
# Isola et al. 2017) because it gives a 7×7 grid of logits rather than one. Despite the name, the
# logits do not judge separate 7×7 patches. Through its convolutions (kernels 4, 4, 3, 3, strides
# 2, 2, 1, 1) each logit sees a 26×26 window of the 28×28 image (15×15 at the corners, where the
# rest is padding), and its GroupNorm layers normalise with statistics of the whole image, so
# every logit depends a little on every pixel. The cell checks this by gradient: the pixels that
# move a logit are those where its gradient is not zero, first with the GroupNorms, then without.
# So $D$ gives 49 overlapping, nearly image-sized opinions: check a receptive field by gradient
# rather than by name.

# %% tags=["nbval-check-output"]
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
# ## What we learned
# - A VAE squeezes each 28×28 image into 4×7×7 = 196 numbers and decodes it back; the KL term keeps
#   that latent space smooth enough to sample and to walk in, and the reparameterisation trick
#   lets the gradient pass through the sampling.
# - MSE, PSNR (the MSE in decibels) and SSIM (local structure) say how close a reconstruction is;
#   one PSNR per image shows which garments are hardest.
# - Pixel losses alone make the decoder draw blurry averages; an adversary sharpens the shipped
#   decoder, with the encoder frozen so the latents do not move.
# - The KL per channel says how much each latent channel carries.
# - In latent space the classes form regions, some of them overlapping.
# - The latents are rescaled to unit variance, measured on the samples the UNet sees, because the
#   diffusion model's noise is N(0, I).
#
# ## Check your understanding
# 1. Why does an L1 + MSE decoder blur, and why can the adversary's sharper guess score a worse MSE?
# 2. The adversarial stage fine-tunes only the decoder. What would have to be retrained, and what
#    measured again, if it fine-tuned the encoder too?
# 3. Without the rescaling, the shipped latents would have about the standard deviation printed
#    in "Why the latent is rescaled". What would that do to the forward process
#    $q(z_t \mid z_0)$ of notebook 04 at a given t?

# %%
from fmnist_ldm.course.notebook import say_elapsed
say_elapsed()
