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
# # 04 · Diffusion: noising, denoising, training and sampling
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/fmnist-ldm/fmnist-ldm/blob/main/notebooks/04_diffusion_training.ipynb)
#
# *In Colab, pick a GPU first: Runtime → Change runtime type → GPU. The first cell then fetches the
# course and its shipped weights; on a GPU the notebooks train the `full` recipe, on a CPU the
# small `fast` one, and each says which before it trains.*
#
# A diffusion model makes images by removing noise. In training we take a clean latent (the 4×7×7
# code of a garment from notebook 02's VAE), bury it under a random amount of Gaussian noise, and
# ask the UNet of notebook 03 what it sees; to generate, we start from pure noise and let the UNet
# remove a little of it at a time until a garment is left. This notebook builds both directions by
# hand, each piece checked against the library (`fmnist_ldm.diffusion`, `fmnist_ldm.train`,
# `fmnist_ldm.samplers`, `fmnist_ldm.sampling`) that the command line and notebook 05 run.

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
import copy
import dataclasses
import math
import matplotlib.pyplot as plt
import torch
from torch.testing import assert_close
from fmnist_ldm.course.notebook import notebook_preset, say_estimate
from fmnist_ldm.data import CLASS_NAMES, LatentDataset, load_fashion_mnist, to_model_range, to_uint8
from fmnist_ldm.course.diagram import pipeline_diagram
from fmnist_ldm.diffusion import NoiseSchedule
from fmnist_ldm.samplers.ddim import ddim_step
from fmnist_ldm.samplers.ddpm import ddpm_step
from fmnist_ldm.pipeline import Pipeline
from fmnist_ldm.progress import progress
from fmnist_ldm.sampling import DEFAULTS, sample
from fmnist_ldm.train import EMA, train_step, train_unet, unet_loss
from fmnist_ldm.vae import posteriors
from fmnist_ldm.course.figures import tile
from fmnist_ldm.weights import build_unet

cfg = notebook_preset()
shipped = Pipeline.from_pretrained(device="cpu")   # its VAE makes the latents, its UNet denoises; on the CPU,
# like every tensor this notebook makes (the library moves what it trains to the GPU itself)
sched = shipped.schedule               # the noise schedule the shipped UNet was trained with

# %%
pipeline_diagram("04"); plt.show()

# %% [markdown]
# This notebook is the middle of both rows: *add noise to step t* and *loss* on top, *remove noise
# step by step* below (the map's "guesses the noise" is the short version: the UNet here outputs
# $v$, a mix of the noise and the clean latent, section "What the network predicts"). It teaches:
# 1. **The forward process**: how much noise step $t$ adds is set by a *noise schedule*, and any
#    step can be reached in one jump.
# 2. **The way back**: one reverse step is a Gaussian around the network's guess of the clean
#    latent, and what the network is asked to output, $v$.
# 3. **Training**: one training step written out by hand (label dropout, noising, target, loss,
#    optimiser, EMA), checked against the library's, then the library's loop.
# 4. **Sampling**: DDPM walks all the steps back; DDIM takes big ones.
#
# Indexing, as in the library: $t = 0, \dots, T-1$ with $T = 1000$ are the noisy steps, and
# $t = -1$ stands for the clean latent, so the last reverse step goes from $t = 0$ to clean.

# %% [markdown]
# ## The forward process: one garment, noised
# Step $t$ scales the latent down a little and adds a little Gaussian noise of variance $\beta_t$:
# $q(z_t \mid z_{t-1}) = \mathcal N(\sqrt{1-\beta_t}\, z_{t-1},\ \beta_t I)$. Chaining Gaussians gives
# a Gaussian, so step $t$ can be reached from the clean $z_0$ in one jump (Ho et al. 2020, eq. 4):
# $$z_t = \sqrt{\bar\alpha_t}\, z_0 + \sqrt{1-\bar\alpha_t}\,\epsilon,\quad \epsilon \sim \mathcal N(0, I),\qquad
#   \bar\alpha_t = \textstyle\prod_{s\le t}(1-\beta_s).$$
# $\bar\alpha_t$ is the share of the signal's variance left at step $t$; the library's
# `NoiseSchedule.q_sample(z0, t, eps)` is this line. Below, top: the latent's first channel at
# growing t, all panels on one colour scale (the latents are scaled to standard deviation 1; the
# colours span ±3). Bottom: what the VAE decodes from each. Each column's title gives its
# $\bar\alpha_t$: look for the column where the decoded image stops being a garment. Every column uses
# the same noise draw $\epsilon$, so this is one image sliding towards one noise image; a real forward
# run draws fresh noise at every step (`diffusion.noising_path`), with the same law at each t.

# %%
test_x, test_y = load_fashion_mnist("test", cfg.data_dir)
z0 = shipped.encode(to_model_range(test_x[:1]))         # the scaled latent of one test image
ts = torch.tensor([0, 50, 100, 200, 300, 400, 500, 600, 800, 999])
noise = torch.randn(z0.shape, generator=torch.Generator().manual_seed(0))
zt = torch.cat([sched.q_sample(z0, t.view(1), noise) for t in ts])
decoded = to_uint8(shipped.decode(zt))
fig, axes = plt.subplots(2, len(ts), figsize=(14, 3.6))
for i, t in enumerate(ts):
    im = axes[0, i].imshow(zt[i, 0], cmap="RdBu_r", vmin=-3, vmax=3)
    axes[1, i].imshow(decoded[i], cmap="gray", vmin=0, vmax=255)
    axes[0, i].set_title(f"t = {t}\n" + r"$\bar\alpha_t$" + f" = {sched.abar_at(int(t)):.2g}", fontsize=9)
for ax in axes.flat:                     # ticks off, axes kept: set_ylabel on an axis("off") panel is hidden
    ax.set_xticks([]), ax.set_yticks([])
axes[0, 0].set_ylabel("latent,\nchannel 0"); axes[1, 0].set_ylabel("decoded")
fig.colorbar(im, ax=axes, shrink=0.45, anchor=(0, 1), label="latent value (top row)")
fig.suptitle("forward process q(z_t | z_0)")
plt.show()

# %% [markdown]
# ## The noise schedule: linear vs cosine
# The schedule is the choice of $\beta_1, \dots, \beta_T$, or equivalently of the curve $\bar\alpha_t$. Ho et
# al. let $\beta_t$ grow linearly; Nichol & Dhariwal (2021) chose $\bar\alpha_t$ to follow a squared
# cosine, which keeps more of the signal for longer. The signal-to-noise ratio
# $\mathrm{SNR}_t = \bar\alpha_t/(1-\bar\alpha_t)$ shows the difference on a log scale. The shipped UNet was
# trained with the cosine schedule (`sched` above).

# %% tags=["nbval-check-output"]
fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.5))
for kind in ("linear", "cosine"):
    s = NoiseSchedule(kind)
    a1.plot(s.alphas_cumprod, label=kind)
    a2.plot(s.snr().log10(), label=kind)
    print(f"{kind:6s}: abar_t falls below 0.5 at t = {int((s.alphas_cumprod < 0.5).nonzero()[0])} "
          f"and below 0.01 at t = {int((s.alphas_cumprod < 0.01).nonzero()[0])} (of {s.T})")
a1.set(xlabel="t", ylabel=r"$\bar\alpha_t$", title="signal kept"); a1.legend()
a2.set(xlabel="t", ylabel="log10 SNR", title="signal-to-noise ratio"); a2.legend()
plt.tight_layout(); plt.show()

# %% [markdown]
# ## The way back, if we knew $z_0$: the posterior
# Undoing one step, $q(z_{t-1} \mid z_t)$, would need the whole data distribution. But given the
# clean latent too, Bayes' rule on Gaussians gives a Gaussian (Ho et al. eq. 6–7), with
# $\alpha_t = 1 - \beta_t$:
# $$q(z_{t-1} \mid z_t, z_0) = \mathcal N\big(\tilde\mu_t,\ \tilde\beta_t I\big),\quad
#   \tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}\, z_0 + \frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}\, z_t,\quad
#   \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t .$$
# The mean is a weighted average of where we are and where we are going; the variance is
# a little smaller than the $\beta_t$ the forward step added (the factor in front of $\beta_t$ is below 1).

# %% tags=["nbval-check-output"]
def posterior(z0, zt, t):
    """Mean and variance of q(z_{t-1} | z_t, z_0), Ho et al. eq. 7 (one common denominator)."""
    a, a_prev, beta = sched.abar_at(t), sched.abar_at(t - 1), float(sched.betas[t])
    mean = (math.sqrt(a_prev) * beta * z0 + math.sqrt(1 - beta) * (1 - a_prev) * zt) / (1 - a)
    var = beta * (1 - a_prev) / (1 - a)
    return mean, var

for t in (999, 500, 50, 1):
    print(f"t = {t:3d}: beta_t = {float(sched.betas[t]):.5f}, posterior variance = {posterior(0, 0, t)[1]:.5f}")

# %% [markdown]
# One step of the library's DDPM sampler, `ddpm_step`, samples exactly this Gaussian. Check: the
# same inputs and the same noise $w$ give the same $z_{t-1} = \tilde\mu_t + \sqrt{\tilde\beta_t}\, w$.

# %% tags=["nbval-check-output"]
pick = torch.stack([(test_y == c).nonzero()[0, 0] for c in (0, 3, 7, 9)])   # a T-shirt, dress, sneaker, boot
z0s = shipped.encode(to_model_range(test_x[pick]))     # four real latents
g = torch.Generator().manual_seed(1)
eps, w = torch.randn(z0s.shape, generator=g), torch.randn(z0s.shape, generator=g)
t = 500
zt = sched.q_sample(z0s, torch.full((4,), t), eps)
mean, var = posterior(z0s, zt, t)
assert_close(mean + math.sqrt(var) * w, ddpm_step(sched, zt, z0s, t, lambda like: w))
print("posterior sample == fmnist_ldm.samplers.ddpm.ddpm_step")

# %% [markdown]
# ## The reverse model: the network's guess in place of $z_0$
# At sampling time $z_0$ is what we are looking for. The reverse model uses the same Gaussian with
# a network's estimate $\hat z_0(z_t, t)$ in its place:
# $p_\theta(z_{t-1} \mid z_t) = q(z_{t-1} \mid z_t, \hat z_0)$. Since
# $z_t = \sqrt{\bar\alpha_t}\,\hat z_0 + \sqrt{1-\bar\alpha_t}\,\hat\epsilon$ ties a guess of $z_0$ to a guess of the
# noise, the network could just as well guess $\epsilon$; which of the two (or a mix) it is trained to
# output is the next section's subject.
#
# ## What the network predicts: $v$
# Three equivalent targets: the noise $\epsilon$, the clean $z_0$, or
# $v = \sqrt{\bar\alpha_t}\,\epsilon - \sqrt{1-\bar\alpha_t}\,z_0$ (Salimans & Ho 2022), which the shipped UNet
# predicts. $(z_t, v)$ is $(z_0, \epsilon)$ rotated by the angle whose cosine is $\sqrt{\bar\alpha_t}$, so
# turning a predicted $v$ back into both guesses is the inverse rotation:
# $$\hat z_0 = \sqrt{\bar\alpha_t}\, z_t - \sqrt{1-\bar\alpha_t}\,\hat v,\qquad
#   \hat\epsilon = \sqrt{1-\bar\alpha_t}\, z_t + \sqrt{\bar\alpha_t}\,\hat v .$$
# Checked against the library's `NoiseSchedule.target` (what the UNet is trained to output) and
# `NoiseSchedule.split` (how every sampler reads it):

# %% tags=["nbval-check-output"]
t = torch.full((4,), 700)
zt = sched.q_sample(z0s, t, eps)
a = sched.abar(t, zt)                                   # abar_t per latent, shaped [4, 1, 1, 1] to broadcast
v = a.sqrt() * eps - (1 - a).sqrt() * z0s               # the target
assert_close(v, sched.target(z0s, eps, t, "v"))
z0_from_v = a.sqrt() * zt - (1 - a).sqrt() * v          # the inverse rotation
eps_from_v = (1 - a).sqrt() * zt + a.sqrt() * v
assert_close((z0_from_v, eps_from_v), sched.split(v, zt, t, "v"))
assert_close((z0_from_v, eps_from_v), (z0s, eps))
print("v -> (z0, eps) matches NoiseSchedule.split and recovers both exactly")

# %% [markdown]
# `denoise` asks the shipped UNet for its $\hat v$ and turns it into the two guesses; the samplers
# below all call it. With $\hat\epsilon$ the reverse mean can also be written without $\hat z_0$
# (Ho et al. eq. 11), $\mu_\theta = \frac{1}{\sqrt{\alpha_t}}\big(z_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\hat\epsilon\big)$; both forms agree:

# %% tags=["nbval-check-output"]
labels = test_y[pick]

@torch.no_grad()
def denoise(z, t, y=labels):
    """The shipped UNet's guesses (z0_hat, eps_hat) for z at timestep t, class y, no guidance."""
    tt = torch.full((len(z),), t)
    out = shipped.unet(z, tt, y).float()                # v_hat
    return sched.split(out, z, tt, "v")

t = 500
zt = sched.q_sample(z0s, torch.full((4,), t), eps)
z0_hat, eps_hat = denoise(zt, t)
beta, a = float(sched.betas[t]), sched.abar_at(t)
assert_close(posterior(z0_hat, zt, t)[0], (zt - beta / math.sqrt(1 - a) * eps_hat) / math.sqrt(1 - beta))
print("mean from z0_hat == mean from eps_hat (eq. 11)")

# %% [markdown]
# **Why $v$ and not $\epsilon$.** The samplers need $\hat z_0$. From an $\epsilon$-prediction it is
# $\hat z_0 = (z_t - \sqrt{1-\bar\alpha_t}\,\hat\epsilon)/\sqrt{\bar\alpha_t}$: an error $\delta$ in $\hat\epsilon$ becomes an error
# $\delta/\sqrt{\mathrm{SNR}_t}$ in $\hat z_0$, huge near $t = T$ (printed below the plot). Predicting $z_0$
# directly has the mirror problem at small t, where $\hat\epsilon$ is
# $(z_t - \sqrt{\bar\alpha_t}\,\hat z_0)/\sqrt{1-\bar\alpha_t}$. With $v$ both factors, $\sqrt{1-\bar\alpha_t}$ and $\sqrt{\bar\alpha_t}$, are at most 1
# at every t: near $t = 0$, $v \approx \epsilon$; near $t = T$, $v \approx -z_0$. The target itself keeps unit
# scale too: for unit-variance latents $v$ has variance $\bar\alpha_t + (1-\bar\alpha_t) = 1$ at every t
# (also printed, on real latents).

# %%
abar = sched.alphas_cumprod
fig, a1 = plt.subplots(figsize=(7, 3.6))
a1.plot((1 - abar).sqrt() / abar.sqrt(), "C0", label=r"$\epsilon$-prediction: error in $\hat z_0$")
a1.plot(abar.sqrt() / (1 - abar).sqrt(), "C1", label=r"$z_0$-prediction: error in $\hat\epsilon$")
a1.plot((1 - abar).sqrt(), "C2", label=r"$v$-prediction: error in $\hat z_0$")
a1.plot(abar.sqrt(), "C2--", label=r"$v$-prediction: error in $\hat\epsilon$")
a1.set(yscale="log", xlabel="t", ylabel="factor", title="an error of 1 in the output becomes ...")
a1.legend(fontsize=8); plt.show()
print(f"At t = {sched.T - 1} (abar_t = {sched.abar_at(sched.T - 1):.2g}) an error in eps_hat is multiplied by "
      f"{float((1 - abar[-1]).sqrt() / abar[-1].sqrt()):,.0f} in z0_hat; with v-prediction by at most 1.")
train_x, train_y = load_fashion_mnist("train", cfg.data_dir)
zs = shipped.encode(to_model_range(train_x[:2000]))    # 2,000 scaled training latents
e = torch.randn(zs.shape, generator=torch.Generator().manual_seed(0))
print(f"std of z0: {zs.std():.3f}; std of the v target at t = 0, 250, 500, 750, 999:",
      ", ".join(f"{sched.target(zs, e, torch.full((len(zs),), t_), 'v').std():.3f}" for t_ in (0, 250, 500, 750, 999)))

# %% [markdown]
# ## What the loss is
# We will train the UNet by the plain mean squared error between its output and $v$. Is that the
# "right" loss? The log-likelihood of the data has a lower bound, the ELBO (Ho et al. eq. 5): a sum
# over steps of $\mathrm{KL}\big(q(z_{t-1}\mid z_t,z_0)\,\|\,p_\theta(z_{t-1}\mid z_t)\big)$, plus two terms with
# nothing to learn or only the last step's. Both Gaussians have the variance $\tilde\beta_t$ and means
# of the same formula, one with $z_0$ and one with $\hat z_0$, so each KL is a weighted squared error:
# $$\mathrm{KL}_t = \frac{\bar\alpha_{t-1}\beta_t^2}{2\tilde\beta_t(1-\bar\alpha_t)^2}\,\lVert z_0-\hat z_0\rVert^2
#   = \tfrac12\big(\mathrm{SNR}_{t-1} - \mathrm{SNR}_t\big)\,\lVert z_0-\hat z_0\rVert^2 .$$
# Ho et al. trained instead on the plain MSE of $\epsilon$, which in these terms is
# $\mathrm{SNR}_t\,\lVert z_0-\hat z_0\rVert^2$, and found the samples better; the MSE of $v$ is
# $(\mathrm{SNR}_t + 1)\,\lVert z_0-\hat z_0\rVert^2$. So the losses people train are *reweightings* of the
# ELBO over t, and we never compute a likelihood. At each t all of them are minimised by the same
# guess, the posterior mean $\hat z_0 = \mathbb E[z_0 \mid z_t]$; the weights only decide which noise
# levels an imperfect network spends its capacity on. (Exercise 3 chooses another weighting.)

# %% tags=["nbval-check-output"]
snr = lambda t: sched.abar_at(t) / (1 - sched.abar_at(t))
for t in (999, 500, 10):
    a, a_prev, beta = sched.abar_at(t), sched.abar_at(t - 1), float(sched.betas[t])
    kl_weight = a_prev * beta ** 2 / (2 * posterior(0, 0, t)[1] * (1 - a) ** 2)
    assert math.isclose(kl_weight, (snr(t - 1) - snr(t)) / 2, rel_tol=1e-9)
    print(f"t = {t:3d}: weight of |z0 - z0_hat|^2 in the ELBO {kl_weight:10.4g}, "
          f"in the eps-MSE {snr(t):10.4g}, in the v-MSE {snr(t) + 1:10.4g}")

# %% [markdown]
# ## Training the denoiser
# The training data are the latents of all training images, encoded once by the shipped VAE:
# `LatentDataset` keeps each image's posterior mean and standard deviation (notebook 02), and
# `data.batch(idx, generator)` draws one latent per image from them, scaled to unit variance.
# Encoding once, instead of at every step, is what makes UNet training cheap on a CPU.

# %%
train_posterior = posteriors(shipped.vae, to_model_range(train_x), bf16=shipped.cfg.bf16)   # (mean, logvar)
data = LatentDataset(train_posterior.mean, train_posterior.std, train_y, shipped.vae.scale.item())
ucfg = dataclasses.replace(cfg, vae_channels=shipped.cfg.vae_channels, latent_channels=shipped.cfg.latent_channels)
print(f"{len(data):,} latents of shape {tuple(train_posterior.mean.shape[1:])}, trained on in batches of {ucfg.batch_size}")

# %% [markdown]
# ### One training step, by hand
# One step (Ho et al. Algorithm 1, with label dropout) takes a batch of latents $z_0$ with their
# classes $y$ and:
# 1. **Label dropout**: replaces each class, with probability `p_uncond`, by the null class
#    (index 10, "no class"), so that the same network also learns to denoise without a class;
#    notebook 05 uses that for *guidance*, which pushes samples harder towards their class.
# 2. **Noising**: draws a timestep $t$ and noise $\epsilon$ per latent and jumps to $z_t$ (eq. 4 above).
# 3. **Target and loss**: the MSE between the UNet's output and $v$.
# 4. **Optimiser step**: AdamW, on the gradients of that loss.
# 5. **EMA update**: the library also keeps an *exponential moving average* (EMA) of the weights,
#    a second copy that after every step moves a small part $1-d$ of the way to the current
#    weights, $\theta_{\mathrm{EMA}} \leftarrow d\,\theta_{\mathrm{EMA}} + (1-d)\,\theta$. It averages
#    out the jitter of the last steps, and we always sample from it. Early on,
#    $d = \min\big(\text{decay}, \tfrac{1+n}{10+n}\big)$ after $n$ updates, so that a short run is not
#    dominated by the random initial weights; the first update ($n = 0$) just copies the weights.

# %%
def training_step(unet, ema_unet, opt, n_ema, idx, gen):
    """One UNet training step on the latents data[idx], every random draw from `gen`."""
    z0, y = data.batch(idx, gen)                        # one latent per image, from its VAE posterior
    b = len(idx)
    t = torch.randint(0, sched.T, (b,), generator=gen)   # 2. a random timestep per latent ...
    eps = torch.randn(z0.shape, generator=gen)           #    ... and the noise to add
    drop = torch.rand(b, generator=gen) < ucfg.p_uncond  # 1. label dropout: these latents ...
    y = torch.where(drop, ucfg.num_classes, y)           #    ... get the null class
    a = sched.abar(t, z0)                                # abar_t per latent, shape [b, 1, 1, 1]
    zt = a.sqrt() * z0 + (1 - a).sqrt() * eps            # 2. noised in one jump
    v = a.sqrt() * eps - (1 - a).sqrt() * z0             # 3. the target ...
    loss = (unet(zt, t, y) - v).square().mean()          #    ... and the MSE
    opt.zero_grad()                                      # 4. the optimiser step
    loss.backward()
    opt.step()
    d = 0.0 if n_ema == 0 else min(ucfg.ema_decay, (1 + n_ema) / (10 + n_ema))
    with torch.no_grad():                                # 5. the EMA update
        for p_ema, p in zip(ema_unet.parameters(), unet.parameters()):
            p_ema.copy_(d * p_ema + (1 - d) * p)
    return loss.detach()

# %% [markdown]
# The library's step is `train.train_step`: the body of the loop that trains every model of the
# course (`train_unet` calls it for each of its steps), with `unet_loss` doing steps 1–3 and the
# `EMA` class step 5. Two fresh, identical UNets, one stepped by hand and one by the library,
# with the same batches and the same random draws, twice (so the second EMA update is a real
# average): the losses, the weights and the EMA weights must agree. The loop also changes the
# learning rate after each step (a short warm-up, then a cosine decay) and uses mixed precision
# where the device is fast at it; both are left out here (`lr_schedule=None`, `bf16=False`).

# %%
torch.manual_seed(0)
unet_a = build_unet(ucfg)                            # stepped by hand
unet_b = copy.deepcopy(unet_a)                       # stepped by the library
ema_a, ema_b = copy.deepcopy(unet_a), EMA(unet_b, ucfg.ema_decay)
opt_a, opt_b = (torch.optim.AdamW(net.parameters(), lr=ucfg.lr, weight_decay=ucfg.weight_decay)
                for net in (unet_a, unet_b))
library_loss = unet_loss(ucfg, unet_b, data)         # steps 1-3, as train_unet runs them
for step in range(2):
    idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(step))[:ucfg.batch_size]
    by_hand = training_step(unet_a, ema_a, opt_a, step, idx, torch.Generator().manual_seed(100 + step))
    library = train_step(unet_b, library_loss, idx, torch.Generator().manual_seed(100 + step), opt_b,
                         ema=ema_b, bf16=False)
    assert_close(by_hand, library)
    print(f"step {step + 1}: loss {by_hand:.4f} by hand, {library:.4f} by train.train_step")
assert_close(list(unet_a.parameters()), list(unet_b.parameters()))
assert_close(list(ema_a.parameters()), list(ema_b.module.parameters()))
print("the same losses, updated weights and EMA weights: training_step by hand == fmnist_ldm.train.train_step")
print(f"(this mode's settings: p_uncond = {ucfg.p_uncond}, EMA decay {ucfg.ema_decay}, AdamW at lr {ucfg.lr})")

# %% [markdown]
# ### The whole run
# `train_unet` repeats that step over shuffled batches for `unet_epochs` passes over the data.
# It writes a checkpoint every `checkpoint_every` steps to `runs/notebooks-<mode>/` (never to
# `model/`), each written whole or not at all; run the cell again after an interruption and it
# resumes where it stopped. It first times a few steps here and says how long the run should take.

# %%
print(f"This run: {ucfg.unet_epochs} epochs at widths {ucfg.unet_channels}, a checkpoint every "
      f"{ucfg.checkpoint_every} steps; the shipped UNet: {shipped.cfg.unet_epochs} epochs at widths "
      f"{shipped.cfg.unet_channels}.")
say_estimate(ucfg, ["unet"])   # times a few steps here, before the real run
unet, hist = train_unet(ucfg, data)
loss = torch.tensor(hist["loss"])
k = 25                                                   # window of the moving average
plt.figure(figsize=(7, 3))
plt.plot(loss, alpha=0.3, label="per step")
plt.plot(torch.arange(k // 2, len(loss) - k // 2), torch.nn.functional.avg_pool1d(loss[None], k, 1)[0],
         label=f"moving average ({k} steps, drawn at its centre)")
plt.xlabel("step"); plt.ylabel("v-prediction MSE"); plt.legend(); plt.title(f"UNet training ({hist['seconds']:.0f} s)")
plt.show()
print(f"{len(loss)} steps; mean loss over the first 50 steps {loss[:50].mean():.3f}, over the last 50 {loss[-50:].mean():.3f}")

# %% [markdown]
# ## The loss at each t
# The curve above averages over random t. Split by t, for a few thousand training latents at
# evenly spread timesteps (no label dropout), for the UNet just trained and for the shipped one.
# Left: the v-MSE that is trained. Right: the same errors measured on $\hat z_0$,
# $\lVert z_0-\hat z_0\rVert^2 = (1-\bar\alpha_t)\,\lVert v-\hat v\rVert^2$ (per element). The dashed line is the
# variance of the latents *within* a class: from pure noise no network can know which garment it
# will be, only which class, so its best guess is the class's average latent and its error is
# the class's spread. The lines printed under the plot read the curves.

# %%
@torch.no_grad()
def loss_per_t(net, n=4000, batch=500):
    z, y = data.batch(torch.arange(n), torch.Generator().manual_seed(0))
    t = torch.arange(n) % sched.T                      # every timestep, n / T times
    e = torch.randn(z.shape, generator=torch.Generator().manual_seed(1))
    out = torch.cat([net(sched.q_sample(z[i:i + batch], t[i:i + batch], e[i:i + batch]), t[i:i + batch],
                         y[i:i + batch]).float() for i in range(0, n, batch)])
    return t, (out - sched.target(z, e, t, "v")).square().flatten(1).mean(1)

bins = torch.arange(0, sched.T + 1, 50)
centres = (bins[:-1] + bins[1:]) / 2
fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 3.6))
curves = {}
for name, net in (("shipped UNet", shipped.unet), ("UNet trained above", unet)):
    t, mse = loss_per_t(net)
    mse_z0 = (1 - sched.alphas_cumprod[t]).float() * mse      # the same error, on z0_hat
    for ax, err, key in ((a1, mse, "v"), (a2, mse_z0, "z0")):
        per_bin = torch.stack([err[(t >= lo) & (t < hi)].mean() for lo, hi in zip(bins[:-1], bins[1:])])
        curves[name, key] = per_bin
        ax.plot(centres, per_bin, "o-", ms=3, label=name)
z_all, y_all = data.batch(torch.arange(20000), torch.Generator().manual_seed(0))
within = torch.stack([z_all[y_all == c].var(0).mean() for c in range(10)]).mean()
a2.axhline(within, color="k", ls="--", lw=1, label=f"variance of latents within a class ({within:.2f})")
a1.set(xlabel="t (bins of 50)", ylabel=r"MSE of $v$", title="the trained loss, per t"); a1.legend()
a2.set(xlabel="t (bins of 50)", ylabel=r"MSE of $\hat z_0$", yscale="log", title="the same errors, on the clean guess")
a2.legend(fontsize=8)
plt.tight_layout(); plt.show()
v_ship, z0_ship, z0_mine = curves["shipped UNet", "v"], curves["shipped UNet", "z0"], curves["UNet trained above", "z0"]
print(f"shipped UNet: the v-MSE is largest in the bin around t = {centres[v_ship.argmax()]:.0f}; "
      f"its z0_hat error is smallest around t = {centres[z0_ship.argmin()]:.0f} and largest around "
      f"t = {centres[z0_ship.argmax()]:.0f}; in the last bin (t up to {sched.T - 1}) it is "
      f"{z0_ship[-1] / within:.2f} times the within-class variance")
gain = z0_mine - z0_ship
print(f"the shipped UNet's z0_hat error is below this run's in {int((gain > 0).sum())} of {len(gain)} bins; "
      f"the gap is widest around t = {centres[gain.argmax()]:.0f}")

# %% [markdown]
# At small t the noise is tiny, so $\hat z_0$ is nearly $z_t$ itself and its error is small, but
# there $v \approx \epsilon$, and the little noise that was added is nearly impossible to tell from the
# garment: the v-loss is hard exactly where the clean guess is easy. Towards $t = 999$ the clean
# guess can only be the class's average.
#
# ## Sampling: DDPM, by hand
# Ancestral sampling (Ho et al. Algorithm 2) runs the reverse model from pure noise at $t = 999$
# down to clean: at each step, guess $\hat z_0$, then draw $z_{t-1}$ from the posterior around it (no
# noise on the last step). Here with the shipped UNet, no guidance, four images, all 1000 steps.

# %%
def ddpm(z, t_start, generator):
    for t in progress(range(t_start, -1, -1), desc="DDPM", mininterval=2):
        z0_hat, _ = denoise(z, t)
        mean, var = posterior(z0_hat, z, t)
        z = mean + math.sqrt(var) * torch.randn(z.shape, generator=generator) if t > 0 else mean
    return z

start = torch.randn(4, *z0s.shape[1:], generator=torch.Generator().manual_seed(2))
ddpm_z = ddpm(start, sched.T - 1, torch.Generator().manual_seed(3))
plt.figure(figsize=(5, 1.8)); plt.imshow(tile(to_uint8(shipped.decode(ddpm_z)), ncol=4), cmap="gray"); plt.axis("off")
plt.title("1000 DDPM steps by hand: " + ", ".join(CLASS_NAMES[c] for c in labels)); plt.show()

# %% [markdown]
# The library's sampler, `sample(..., sampler="ddpm")`, given the same denoiser, the same start
# and the same random stream, draws the same latents. To keep the check quick it starts from real
# latents noised to $t = 99$ and runs the last 100 steps, both ways.

# %%
z_99 = sched.q_sample(z0s, torch.full((4,), 99), eps)
by_hand = ddpm(z_99, 99, torch.Generator().manual_seed(4))
library = sample(denoise, sched, z_99, sampler="ddpm", t_start=99, generator=torch.Generator().manual_seed(4))
assert_close(by_hand, library)
print("DDPM by hand == fmnist_ldm.sampling.sample(sampler='ddpm')")

# %% [markdown]
# ## DDIM: bigger steps
# The 1000 steps are not a law of diffusion. DDIM (Song et al. 2021, eq. 12) generalises the step
# to any jump $t \to t'$ and any amount of fresh noise $\eta$:
# $$z_{t'} = \sqrt{\bar\alpha_{t'}}\,\hat z_0 + \sqrt{1-\bar\alpha_{t'}-s^2}\;\hat\epsilon + s\,w,\qquad
#   s = \eta\,\sqrt{\tfrac{1-\bar\alpha_{t'}}{1-\bar\alpha_t}}\sqrt{1-\tfrac{\bar\alpha_t}{\bar\alpha_{t'}}} .$$
# It rebuilds $z_{t'}$ from the guessed clean latent and the guessed noise. With $\eta = 0$ it adds no
# noise (a deterministic path, usable with 10–50 steps); with $\eta = 1$ and $t' = t-1$ it is exactly
# the DDPM step above. One step, checked against the library's `ddim_step`:

# %% tags=["nbval-check-output"]
def ddim(z, t, t_next, z0_hat, eps_hat, eta, w):
    a, a_next = sched.abar_at(t), sched.abar_at(t_next)
    s = eta * math.sqrt((1 - a_next) / (1 - a) * (1 - a / a_next))
    z_next = math.sqrt(a_next) * z0_hat + math.sqrt(max(1 - a_next - s * s, 0.0)) * eps_hat
    return z_next + s * w if s > 0 else z_next           # s = 0 for eta = 0, and on the last step

t = 500
zt = sched.q_sample(z0s, torch.full((4,), t), eps)
z0_hat, eps_hat = denoise(zt, t)
for eta, t_next in ((0.0, 450), (1.0, 450), (1.0, t - 1)):
    assert_close(ddim(zt, t, t_next, z0_hat, eps_hat, eta, w),
                 ddim_step(sched, zt, z0_hat, eps_hat, t, t_next, eta, lambda like: w))
assert_close(ddim(zt, t, t - 1, z0_hat, eps_hat, 1.0, w), ddpm_step(sched, zt, z0_hat, t, lambda like: w))
print("DDIM step == fmnist_ldm.samplers.ddim.ddim_step; with eta = 1 and one step, == ddpm_step")

# %% [markdown]
# A sampler chains such steps over a few timesteps from $T-1$ down to clean. `sched.timesteps(steps)`
# gives them, evenly spaced, ending with $-1$ (clean). Chaining the step over them is Exercise 2;
# here the library's `sample(..., sampler="ddim")` does it, with $\eta = 0$ and $\eta = 1$, from the
# pure noise the DDPM run started from.

# %%
print("20 DDIM timesteps:", sched.timesteps(20))
rows = [ddpm_z] + [sample(denoise, sched, start, sampler="ddim", steps=20, eta=eta,
                          generator=torch.Generator().manual_seed(5)) for eta in (0.0, 1.0)]
plt.figure(figsize=(5, 4)); plt.imshow(tile(to_uint8(shipped.decode(torch.cat(rows))), ncol=4), cmap="gray")
plt.yticks([2 + 58 * r + 28 for r in range(3)], ["DDPM, 1000", "DDIM η=0, 20", "DDIM η=1, 20"]); plt.xticks([])
plt.title("same start, three samplers"); plt.show()

# %% [markdown]
# All three start from the same noise, yet the two stochastic samplers add fresh noise at every
# step, so they can end in other garments of the same class. The library's default sampler is
# DPM-Solver++(2M) (Lu et al. 2022): it follows the same deterministic path as DDIM with
# $\eta = 0$, but also uses the previous step's $\hat z_0$ to correct each step, so 20 steps go
# further; notebook 05 compares the samplers.
#
# ## What it learned
# Samples from the EMA weights just trained, with the library's default sampler, beside the
# shipped UNet's from the same starting noise. Both use guidance (notebook 05), the use the
# null class of label dropout is trained for.

# %%
print(f"Sampling: {DEFAULTS['steps']} steps of {DEFAULTS['sampler']}, guidance {DEFAULTS['guidance']} for t in "
      f"{DEFAULTS['guidance_interval']}. The UNet trained here: {ucfg.unet_epochs} epochs at widths "
      f"{ucfg.unet_channels}; the shipped one: {shipped.cfg.unet_epochs} epochs at widths {shipped.cfg.unet_channels}.")
mine = Pipeline(unet, ucfg, shipped.vae, device="cpu")      # beside shipped's VAE, which stays on the CPU
classes = [c for c in range(ucfg.num_classes) for _ in range(6)]
fig, axes = plt.subplots(1, 2, figsize=(11, 9))
for ax, (name, pipe) in zip(axes, (("the UNet trained above", mine), ("the shipped UNet", shipped))):
    ax.imshow(tile(pipe.generate(classes, seed=0).images, ncol=6), cmap="gray")
    ax.set_title(name); ax.set_xticks([])
    ax.set_yticks([2 + 58 * c + 28 for c in range(ucfg.num_classes)], CLASS_NAMES)
plt.tight_layout(); plt.show()

# %% [markdown]
# ## Your turn
# Write each function below where it says so, then run its cell: the checker compares it with
# the library's own implementation on a few inputs and says what is wrong if it is. The
# solution is in the hidden cell under each exercise (click to show it); it runs, and is checked, too.

# %% [markdown]
# **Exercise 1: The linear schedule.** The plot above drew Ho et al.'s linear schedule from the
# library. Build its $\bar\alpha_t$ yourself: $\beta_t$ rises linearly over the $T$ steps from
# $10^{-4}$ at the first step to $0.02$ at the last (both ends included). Return $\bar\alpha_t$ for
# $t = 0, \dots, T-1$ in float64, and print at which t it drops below 0.5, to compare with the
# line printed under the plot.

# %% tags=["nbval-check-output"]
from fmnist_ldm.course.exercises import check_linear_abar

def my_linear_abar(T):
    """abar_t of the linear schedule for t = 0..T-1, a float64 tensor [T]."""
    raise NotImplementedError   # your code here

check_linear_abar(my_linear_abar)

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution", "nbval-check-output"]
#@title Solution (hidden in Jupyter and Colab: click to show)
def linear_abar(T):
    """abar_t of the linear schedule for t = 0..T-1, a float64 tensor [T]."""
    betas = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)
    return torch.cumprod(1 - betas, dim=0)         # abar_t = prod_{s <= t} (1 - beta_s)


print("abar_t < 0.5 from t =", int((linear_abar(1000) < 0.5).nonzero()[0]))
assert check_linear_abar(linear_abar)

# %% [markdown]
# **Exercise 2: A DDIM sampler.** The notebook wrote one DDIM step and let the library chain them.
# Write the chain: from `x` (pure noise at $t = T-1$), run deterministic DDIM ($\eta = 0$) over
# `schedule.timesteps(steps)` down to clean, and return the clean latents. `denoise(x, t)` returns
# `(x0_hat, eps_hat)` for an int timestep, like `denoise` above; for the step itself use the
# library's `ddim_step(schedule, x, x0_hat, eps_hat, t, t_next, 0.0, None)` (imported above).

# %% tags=["nbval-check-output"]
from fmnist_ldm.course.exercises import check_ddim_sampler

def my_ddim_sampler(denoise, schedule, x, steps):
    """x [B, C, H, W] at t = T-1 -> the clean x after `steps` DDIM steps with eta = 0."""
    raise NotImplementedError   # your code here

check_ddim_sampler(my_ddim_sampler)

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution", "nbval-check-output"]
#@title Solution (hidden in Jupyter and Colab: click to show)
def ddim_sampler(denoise, schedule, x, steps):
    """x [B, C, H, W] at t = T-1 -> the clean x after `steps` DDIM steps with eta = 0."""
    ts = schedule.timesteps(steps)                 # T-1, ..., then -1 (clean)
    for t, t_next in zip(ts[:-1], ts[1:]):         # each step goes from t to the next timestep
        x0_hat, eps_hat = denoise(x, t)
        x = ddim_step(schedule, x, x0_hat, eps_hat, t, t_next, 0.0, None)
    return x


assert check_ddim_sampler(ddim_sampler)

# %% [markdown]
# **Exercise 3: Another weighting of the loss.** In terms of the clean guess, the v-MSE weighs
# $\lVert z_0-\hat z_0\rVert^2$ by $\mathrm{SNR}_t + 1$ (section "What the loss is"), so nearly clean
# inputs, where $\mathrm{SNR}_t$ is huge, dominate the gradient. Min-SNR-$\gamma$ (Hang et al. 2023)
# wants the weight $\min(\mathrm{SNR}_t, \gamma)$ there instead. Keep the v-MSE, and write the factor
# $w_t$ that each example's v-MSE is multiplied by to get that weight, from $\bar\alpha_t$ and $\gamma$.
# (The library trains with it when `Config.min_snr_gamma` is set.)

# %% tags=["nbval-check-output"]
from fmnist_ldm.course.exercises import check_min_snr_weight

def my_min_snr_weight(abar_t, gamma):
    """abar_t [N] (one per example), gamma a float -> the factor w_t on each example's v-MSE, [N]."""
    raise NotImplementedError   # your code here

check_min_snr_weight(my_min_snr_weight)

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution", "nbval-check-output"]
#@title Solution (hidden in Jupyter and Colab: click to show)
def min_snr_weight(abar_t, gamma):
    """abar_t [N] (one per example), gamma a float -> the factor w_t on each example's v-MSE, [N]."""
    snr = abar_t / (1 - abar_t)
    # w_t (SNR_t + 1) |z0 - z0_hat|^2 should be min(SNR_t, gamma) |z0 - z0_hat|^2
    return snr.clamp(max=gamma) / (snr + 1)


assert check_min_snr_weight(min_snr_weight)

# %% [markdown]
# ## Going further: why latents, not pixels
# The same code diffuses pixels (`space="pixel"`, 1×28×28). `benchmarks/ablations.py pixel`
# trains both for the same minutes and compares them (its table is in the README). Here one
# training step of each is timed on the CPU, to see why latents are cheaper.

# %%
import time
from fmnist_ldm.device import autocast
from fmnist_ldm.diffusion import training_loss
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

# %% [markdown]
# ## What we learned
# - The forward process has a closed form, $z_t = \sqrt{\bar\alpha_t}\,z_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$, so
#   training needs no simulation: pick a t, add the right amount of noise, ask the network for $v$.
#   The schedule $\bar\alpha_t$ decides how fast the signal fades; the cosine one keeps it longer.
# - Going back one step is a Gaussian, the posterior $q(z_{t-1} \mid z_t, z_0)$; the reverse model puts
#   the network's $\hat z_0$ in place of $z_0$. DDPM samples it at all 1000 steps; DDIM takes big
#   steps, with ($\eta = 1$) or without ($\eta = 0$) fresh noise.
# - $v$-prediction keeps both $\hat z_0$ and $\hat\epsilon$ well-conditioned at every t, where
#   $\epsilon$-prediction blows up $\hat z_0$'s errors at high noise.
# - The MSE we train is a reweighting of the ELBO; every weighting has the same best guess,
#   $\mathbb E[z_0 \mid z_t]$, and differs in where an imperfect network spends its effort.
# - One training step is: label dropout, noising, the v-target, the MSE, an optimiser step and an
#   EMA update; the library's loop is that step (`train_step`), repeated, with checkpoints.
#
# ## Check your understanding
# 1. Towards $t = 999$ the $\hat z_0$ error climbs to the dashed line, the variance of the latents
#    within a class. Why can no network do better there, and what should $\hat z_0$ be at that t?
# 2. Why can DDIM with $\eta = 0$ get by with 20 steps where ancestral sampling on the trained
#    timesteps walks all 1000? What does $\eta = 1$ on 20 steps give up?
# 3. Without label dropout (`p_uncond = 0`), which prediction could the trained UNet not make,
#    and what would that take away from notebook 05?

# %%
from fmnist_ldm.course.notebook import say_elapsed
say_elapsed();
