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
# The forward process adds Gaussian noise in $T = 1000$ small steps,
# $q(z_t \mid z_{t-1}) = \mathcal N(\sqrt{1-\beta_t}\, z_{t-1},\ \beta_t I)$, to a latent $z_0$ from
# notebook 02. In closed form (Ho et al. 2020, eq. 4):
# $$q(z_t \mid z_0) = \mathcal N\big(\sqrt{\bar\alpha_t}\, z_0,\ (1-\bar\alpha_t) I\big),\qquad \bar\alpha_t = \textstyle\prod_{s\le t}(1-\beta_s).$$
# A network learns to undo it one step at a time. This notebook builds the way back by hand: the
# reverse step, what the network predicts, the loss, a training run, and two samplers, each
# checked against the library (`fmnist_ldm.diffusion`, `fmnist_ldm.sampling`) that the CLI and notebook 05 sample with.
#
# Indexing: as in the library, $t = 0, \dots, T-1$ are the noisy steps and $t = -1$ stands for the
# clean latent ($\bar\alpha_{-1} = 1$), so the last reverse step goes from $t = 0$ to clean.

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
import dataclasses
import math
import matplotlib.pyplot as plt
import torch
from torch.testing import assert_close
from tqdm.auto import tqdm
from fmnist_ldm.notebook import notebook_preset, say_estimate
from fmnist_ldm.data import CLASS_NAMES, LatentDataset, load_fashion_mnist, to_model_range, to_uint8
from fmnist_ldm.diffusion import NoiseSchedule, ddim_step, ddpm_step
from fmnist_ldm.sampling import sample
from fmnist_ldm.pipeline import Pipeline
from fmnist_ldm.train import encode, train_unet
from fmnist_ldm.viz import tile

cfg = notebook_preset()
shipped = Pipeline.from_pretrained(device="cpu")   # its VAE makes the latents, its UNet denoises; on the CPU,
# like every tensor this notebook makes (the library moves what it trains to the GPU itself)
sched = shipped.schedule               # cosine, T = 1000: the schedule the shipped UNet was trained with

# %% [markdown]
# ## One garment, noised
# Top: the latent's first channel at growing t, all ten panels on one colour scale (scaled latents
# have standard deviation ≈ 1; the colours span ±3), so you see the noise take over. Bottom: what the
# VAE decodes from each. Each column is labelled with $\bar\alpha_t$, the share of the signal's
# variance left. By t ≈ 800 ($\bar\alpha_t$ ≈ 0.1) little of the garment is left in the decoded
# image, and at t = 999 nothing. Every
# column uses the same noise draw $\epsilon$, so this is one image sliding towards one noise image;
# a real forward run draws fresh noise at every step (`diffusion.noising_path`), with the same law
# at each t.

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
# ## Linear vs cosine schedule
# The linear schedule (Ho et al.) destroys information early: $\bar\alpha_t$ is near 0 long
# before $t = T$. The cosine schedule (Nichol & Dhariwal 2021) spends more steps at useful
# noise levels. The signal-to-noise ratio $\mathrm{SNR}_t = \bar\alpha_t/(1-\bar\alpha_t)$ shows it on a log scale.

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
# ## The way back, if we knew $z_0$: the posterior
# Undoing one step, $q(z_{t-1} \mid z_t)$, would need the whole data distribution. But given the
# clean latent too, Bayes' rule on Gaussians gives a Gaussian (Ho et al. eq. 6–7), with
# $\alpha_t = 1 - \beta_t$:
# $$q(z_{t-1} \mid z_t, z_0) = \mathcal N\big(\tilde\mu_t,\ \tilde\beta_t I\big),\quad
#   \tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}\, z_0 + \frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}\, z_t,\quad
#   \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t .$$
# The mean is a weighted average of where we are and where we are going; the variance is
# a little smaller than the $\beta_t$ the forward step added.

# %%
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

# %%
pick = torch.stack([(test_y == c).nonzero()[0, 0] for c in (0, 3, 7, 9)])   # a T-shirt, dress, sneaker, boot
z0s = shipped.encode(to_model_range(test_x[pick]))     # four real latents
g = torch.Generator().manual_seed(1)
eps, w = torch.randn(z0s.shape, generator=g), torch.randn(z0s.shape, generator=g)
t = 500
zt = sched.q_sample(z0s, torch.full((4,), t), eps)
mean, var = posterior(z0s, zt, t)
assert_close(mean + math.sqrt(var) * w, ddpm_step(sched, zt, z0s, t, lambda like: w))
print("posterior sample == fmnist_ldm.diffusion.ddpm_step")

# %% [markdown]
# ## The reverse model $p_\theta$: the network's guess in place of $z_0$
# At sampling time $z_0$ is what we are looking for. The reverse model uses the same Gaussian with
# the network's estimate $\hat z_0(z_t, t)$ in its place:
# $p_\theta(z_{t-1} \mid z_t) = q(z_{t-1} \mid z_t, \hat z_0)$. Since
# $z_t = \sqrt{\bar\alpha_t}\,\hat z_0 + \sqrt{1-\bar\alpha_t}\,\hat\epsilon$ ties a guess of $z_0$ to a guess of the
# noise, the same mean can be written with $\hat\epsilon$ (Ho et al. eq. 11):
# $$\mu_\theta(z_t, t) = \frac{1}{\sqrt{\alpha_t}}\Big(z_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\hat\epsilon\Big).$$
# `denoise` below asks the shipped UNet for its guesses (the next sections say what it outputs);
# both forms of the mean agree.

# %%
labels = test_y[pick]

@torch.no_grad()
def denoise(z, t, y=labels):
    """The shipped UNet's guesses (z0_hat, eps_hat) for z at timestep t, class y, no guidance."""
    tt = torch.full((len(z),), t)
    out = shipped.unet(z, tt, y).float()
    return sched.split(out, z, tt, "v")

z0_hat, eps_hat = denoise(zt, t)
beta, a = float(sched.betas[t]), sched.abar_at(t)
assert_close(posterior(z0_hat, zt, t)[0], (zt - beta / math.sqrt(1 - a) * eps_hat) / math.sqrt(1 - beta))
print("mean from z0_hat == mean from eps_hat (eq. 11)")

# %% [markdown]
# **What the loss is, honestly.** The log-likelihood of the data has a lower bound, the ELBO
# (Ho et al. eq. 5): a sum over steps of $\mathrm{KL}\big(q(z_{t-1}\mid z_t,z_0)\,\|\,p_\theta(z_{t-1}\mid z_t)\big)$,
# plus a term for the last step to clean and one at $t = T$ with no parameters. Both Gaussians
# have the variance $\tilde\beta_t$ and means of the same formula, one with $z_0$ and one with
# $\hat z_0$, so each KL is a weighted squared error:
# $$\mathrm{KL}_t = \frac{\bar\alpha_{t-1}\beta_t^2}{2\tilde\beta_t(1-\bar\alpha_t)^2}\,\lVert z_0-\hat z_0\rVert^2
#   = \tfrac12\big(\mathrm{SNR}_{t-1} - \mathrm{SNR}_t\big)\,\lVert z_0-\hat z_0\rVert^2 .$$
# Ho et al. trained instead on the plain MSE of $\epsilon$, which in these terms is
# $\mathrm{SNR}_t\,\lVert z_0-\hat z_0\rVert^2$, and found the samples better. Our loss (next section) is
# $(\mathrm{SNR}_t + 1)\,\lVert z_0-\hat z_0\rVert^2$. So the losses people train are *reweightings* of the
# ELBO, not the ELBO, and we never compute a likelihood. At each t all of them are minimised by
# the same guess, the posterior mean $\hat z_0 = \mathbb E[z_0 \mid z_t]$; the weights only decide which
# noise levels an imperfect network spends its capacity on (plotted below).

# %%
snr = lambda t: sched.abar_at(t) / (1 - sched.abar_at(t))
for t in (999, 500, 10):
    a, a_prev, beta = sched.abar_at(t), sched.abar_at(t - 1), float(sched.betas[t])
    kl_weight = a_prev * beta ** 2 / (2 * posterior(0, 0, t)[1] * (1 - a) ** 2)
    assert math.isclose(kl_weight, (snr(t - 1) - snr(t)) / 2, rel_tol=1e-9)
    print(f"t = {t:3d}: weight of |z0 - z0_hat|^2 in the ELBO {kl_weight:10.4g}, "
          f"in the eps-MSE {snr(t):10.4g}, in the v-MSE {snr(t) + 1:10.4g}")

# %% [markdown]
# ## What the network predicts: $v$
# Three equivalent targets: the noise $\epsilon$, the clean $z_0$, or
# $v = \sqrt{\bar\alpha_t}\,\epsilon - \sqrt{1-\bar\alpha_t}\,z_0$ (Salimans & Ho 2022), which the shipped UNet
# predicts. $(z_t, v)$ is $(z_0, \epsilon)$ rotated by the angle whose cosine is $\sqrt{\bar\alpha_t}$, so
# turning a predicted $v$ back into both guesses is the inverse rotation, two lines:
# $$\hat z_0 = \sqrt{\bar\alpha_t}\, z_t - \sqrt{1-\bar\alpha_t}\,\hat v,\qquad
#   \hat\epsilon = \sqrt{1-\bar\alpha_t}\, z_t + \sqrt{\bar\alpha_t}\,\hat v .$$
# Checked against the library's `NoiseSchedule.target` (what the UNet is trained to output) and
# `NoiseSchedule.split` (how every sampler reads it):

# %%
t = torch.full((4,), 700)
zt = sched.q_sample(z0s, t, eps)
a = sched.abar(t, zt)                                   # abar_t, shaped to broadcast
v = a.sqrt() * eps - (1 - a).sqrt() * z0s               # the target
assert_close(v, sched.target(z0s, eps, t, "v"))
z0_from_v = a.sqrt() * zt - (1 - a).sqrt() * v          # the two lines
eps_from_v = (1 - a).sqrt() * zt + a.sqrt() * v
assert_close((z0_from_v, eps_from_v), sched.split(v, zt, t, "v"))
assert_close((z0_from_v, eps_from_v), (z0s, eps))
print("v -> (z0, eps) matches NoiseSchedule.split and recovers both exactly")

# %% [markdown]
# **Why $v$ and not $\epsilon$.** The samplers need $\hat z_0$. From an $\epsilon$-prediction it is
# $\hat z_0 = (z_t - \sqrt{1-\bar\alpha_t}\,\hat\epsilon)/\sqrt{\bar\alpha_t}$: an error $\delta$ in $\hat\epsilon$ becomes an error
# $\delta/\sqrt{\mathrm{SNR}_t}$ in $\hat z_0$, which at $t = 999$ ($\bar\alpha_t \approx 2\cdot 10^{-9}$) is a factor of
# 20,000. Predicting $z_0$ directly has the mirror problem at small t, where $\hat\epsilon$ is
# $(z_t - \sqrt{\bar\alpha_t}\,\hat z_0)/\sqrt{1-\bar\alpha_t}$. With $v$ both factors, $\sqrt{1-\bar\alpha_t}$ and $\sqrt{\bar\alpha_t}$, are at most 1
# at every t: near $t = 0$, $v \approx \epsilon$; near $t = T$, $v \approx -z_0$; always the informative target.
# The target itself keeps unit scale too: for unit-variance latents $v$ has variance
# $\bar\alpha_t + (1-\bar\alpha_t) = 1$ at every t (printed below the plot, on real latents).

# %%
abar = sched.alphas_cumprod
fig, a1 = plt.subplots(figsize=(7, 3.6))
a1.plot((1 - abar).sqrt() / abar.sqrt(), "C0", label=r"$\epsilon$-prediction: error in $\hat z_0$")
a1.plot(abar.sqrt() / (1 - abar).sqrt(), "C1", label=r"$z_0$-prediction: error in $\hat\epsilon$")
a1.plot((1 - abar).sqrt(), "C2", label=r"$v$-prediction: error in $\hat z_0$")
a1.plot(abar.sqrt(), "C2--", label=r"$v$-prediction: error in $\hat\epsilon$")
a1.set(yscale="log", xlabel="t", ylabel="factor", title="an error of 1 in the output becomes ...")
a1.legend(fontsize=8); plt.show()
train_x, train_y = load_fashion_mnist("train", cfg.data_dir)
zs = shipped.encode(to_model_range(train_x[:2000]))    # 2,000 scaled training latents
e = torch.randn(zs.shape, generator=torch.Generator().manual_seed(0))
print(f"std of z0: {zs.std():.3f}; std of the v target at t = 0, 250, 500, 750, 999:",
      ", ".join(f"{sched.target(zs, e, torch.full((len(zs),), t_), 'v').std():.3f}" for t_ in (0, 250, 500, 750, 999)))

# %% [markdown]
# ## Training the denoiser
# Each step (Ho et al. Algorithm 1, with label dropout for guidance): pick latents $z_0$ and
# classes, a random $t$, noise $\epsilon$; with probability 10 % replace the class by the null
# class; train the UNet to output $v$ by plain MSE. Latents are encoded once.
# The loop keeps an EMA of the weights (`torch.optim.swa_utils.AveragedModel`), which we sample
# from, and writes an atomic checkpoint every few hundred steps to `runs/notebooks-<mode>/`
# (never to `model/`); run the cell again after an interruption and it resumes.
# The moving average (25 steps) is drawn at the centre of its window.

# %%
mean, std = encode(shipped.vae, to_model_range(train_x), shipped.cfg)
data = LatentDataset(mean, std, train_y, shipped.vae.scale.item())
ucfg = dataclasses.replace(cfg, vae_channels=shipped.cfg.vae_channels, latent_channels=shipped.cfg.latent_channels)
say_estimate(ucfg, ["unet"])   # times a few steps here, before the real run
unet, hist = train_unet(ucfg, data)
loss = torch.tensor(hist["loss"])
k = 25                                                   # window of the moving average
plt.figure(figsize=(7, 3))
plt.plot(loss, alpha=0.3, label="per step")
plt.plot(torch.arange(k // 2, len(loss) - k // 2), torch.nn.functional.avg_pool1d(loss[None], k, 1)[0],
         label=f"moving average ({k} steps, centred)")
plt.xlabel("step"); plt.ylabel("v-prediction MSE"); plt.legend(); plt.title(f"UNet training ({hist['seconds']:.0f} s)")
plt.show()

# %% [markdown]
# ## Where the loss comes from: the loss at each t
# The curve above averages over random t. Split by t, for 4,000 training latents at evenly spread
# timesteps (no label dropout), for the UNet just trained and for the shipped one. Left: the v-MSE
# that is trained. Right: the same errors measured on $\hat z_0$,
# $\lVert z_0-\hat z_0\rVert^2 = (1-\bar\alpha_t)\,\lVert v-\hat v\rVert^2$ (per element).
# At small t the v-loss is the hardest part: there $v \approx \epsilon$, and the little noise that was
# added is nearly impossible to tell from the garment. On $\hat z_0$ those errors are tiny. The $\hat z_0$
# error grows with t, up to the dashed line at $t = 999$: the variance of the latents *within* a
# class. From pure noise no network can know which garment it will be, only which class, so its
# best guess is the class's average latent and its error is the class's spread. The longer-trained
# shipped UNet gains most in the middle, where the garment gets decided.

# %%
@torch.no_grad()
def loss_per_t(net, n=4000, batch=500):
    z, y = data.batch(torch.arange(n), torch.Generator().manual_seed(0))
    t = torch.arange(n) % sched.T                      # every timestep, four times
    e = torch.randn(z.shape, generator=torch.Generator().manual_seed(1))
    out = torch.cat([net(sched.q_sample(z[i:i + batch], t[i:i + batch], e[i:i + batch]), t[i:i + batch],
                         y[i:i + batch]).float() for i in range(0, n, batch)])
    return t, (out - sched.target(z, e, t, "v")).square().flatten(1).mean(1)

bins = torch.arange(0, sched.T + 1, 50)
fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 3.6))
for name, net in (("shipped UNet", shipped.unet), ("UNet trained above", unet)):
    t, mse = loss_per_t(net)
    mse_z0 = (1 - sched.alphas_cumprod[t]).float() * mse      # the same error, on z0_hat
    for ax, err in ((a1, mse), (a2, mse_z0)):
        per_bin = [err[(t >= lo) & (t < hi)].mean() for lo, hi in zip(bins[:-1], bins[1:])]
        ax.plot((bins[:-1] + bins[1:]) / 2, per_bin, "o-", ms=3, label=name)
z_all, y_all = data.batch(torch.arange(20000), torch.Generator().manual_seed(0))
within = torch.stack([z_all[y_all == c].var(0).mean() for c in range(10)]).mean()
a2.axhline(within, color="k", ls="--", lw=1, label=f"variance of latents within a class ({within:.2f})")
a1.set(xlabel="t (bins of 50)", ylabel=r"MSE of $v$", title="the trained loss, per t"); a1.legend()
a2.set(xlabel="t (bins of 50)", ylabel=r"MSE of $\hat z_0$", yscale="log", title="the same errors, on the clean guess")
a2.legend(fontsize=8)
plt.tight_layout(); plt.show()

# %% [markdown]
# ## Sampling: DDPM, by hand
# Ancestral sampling (Ho et al. Algorithm 2) runs the reverse model from pure noise at $t = 999$
# down to clean: at each step, guess $\hat z_0$, then draw $z_{t-1}$ from the posterior around it (no
# noise on the last step). Here with the shipped UNet, no guidance, four images, all 1000 steps.

# %%
def ddpm(z, t_start, generator):
    for t in tqdm(range(t_start, -1, -1), desc="DDPM", mininterval=2):
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
# The 1000 steps are not a law of diffusion. The library's `ddpm` sampler walks every timestep
# the UNet was trained with, but the same ancestral sampling works on a subsequence of them
# (strided DDPM), and DDIM (Song et al. 2021, eq. 12) generalises the step to any jump
# $t \to t'$ and any amount of fresh noise $\eta$:
# $$z_{t'} = \sqrt{\bar\alpha_{t'}}\,\hat z_0 + \sqrt{1-\bar\alpha_{t'}-s^2}\;\hat\epsilon + s\,w,\qquad
#   s = \eta\,\sqrt{\tfrac{1-\bar\alpha_{t'}}{1-\bar\alpha_t}}\sqrt{1-\tfrac{\bar\alpha_t}{\bar\alpha_{t'}}} .$$
# It rebuilds $z_{t'}$ from the guessed clean latent and the guessed noise. With $\eta = 0$ it adds no
# noise (a deterministic path, usable with 10–50 steps); with $\eta = 1$ and $t' = t-1$ it is exactly
# the DDPM step above, and with $\eta = 1$ on a 20-step subsequence it is strided DDPM.

# %%
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
print("DDIM step == fmnist_ldm.diffusion.ddim_step; with eta = 1 and one step, == ddpm_step")

# %% [markdown]
# A 20-step DDIM loop by hand, $\eta = 0$ and $\eta = 1$, from the pure noise the DDPM run started
# from, each checked against `sample(..., sampler="ddim")` (the timesteps come from the library:
# 999, 949, …, 49, then clean).

# %%
def ddim_loop(z, steps, eta, generator):
    ts = sched.timesteps(steps)
    for t, t_next in zip(ts[:-1], ts[1:]):
        z0_hat, eps_hat = denoise(z, t)
        w = torch.randn(z.shape, generator=generator) if eta > 0 else None
        z = ddim(z, t, t_next, z0_hat, eps_hat, eta, w)
    return z

rows = [ddpm_z]
for eta in (0.0, 1.0):
    by_hand = ddim_loop(start, 20, eta, torch.Generator().manual_seed(5))
    library = sample(denoise, sched, start, sampler="ddim", steps=20, eta=eta,
                     generator=torch.Generator().manual_seed(5))
    assert_close(by_hand, library)
    rows.append(by_hand)
print("DDIM loops by hand == fmnist_ldm.sampling.sample(sampler='ddim')")
plt.figure(figsize=(5, 4)); plt.imshow(tile(to_uint8(shipped.decode(torch.cat(rows))), ncol=4), cmap="gray")
plt.yticks([2 + 58 * r + 28 for r in range(3)], ["DDPM, 1000", "DDIM η=0, 20", "DDIM η=1, 20"]); plt.xticks([])
plt.title("same start, three samplers"); plt.show()

# %% [markdown]
# With $\eta = 0$ the 20-step path is a discretisation of the same deterministic flow for any step
# count, so it lands near where 50 or 100 steps would. The two stochastic samplers add fresh
# noise at every step and so end in other garments of the same class (and the 20 big noisy steps
# of $\eta = 1$ are the roughest approximation of the three). The library's default sampler,
# DPM-Solver++(2M), is a second-order solver of the same deterministic flow (notebook 05).
#
# ## What it learned
# Samples from the EMA weights just trained, with the library's defaults (20 DPM-Solver++
# steps, guidance 5 for t in [300, 700]). In fast
# mode they are rough; the shipped weights (notebook 05) trained ~30 epochs.

# %%
mine = Pipeline(unet, ucfg, shipped.vae, device="cpu")      # beside shipped's VAE, which stays on the CPU
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

# %% [markdown]
# ## Your turn
# Write each function below where it says so, then run its cell: the checker compares it with
# the library's own implementation on a few inputs and says what is wrong if it is. The
# solution is in the hidden cell under each exercise (click to show it); it runs, and is checked, too.

# %% [markdown]
# **Exercise 1: The cosine schedule.** Write $\bar\alpha_t$ of the cosine schedule (Nichol & Dhariwal 2021, eq. 17) for $t = 0..T-1$:
# $f(t) = \cos^2\!\big(\frac{t/T + s}{1 + s}\cdot\frac{\pi}{2}\big)$ with $s = 0.008$, and
# $\bar\alpha_t = f(t+1)/f(0)$: here $t = 0$ is the first noising step, so it already has a little
# noise.

# %%
from fmnist_ldm.exercises import check_cosine_abar

def my_cosine_abar(T):
    """abar_t for t = 0..T-1, a tensor [T]."""
    raise NotImplementedError   # your code here

check_cosine_abar(my_cosine_abar)

# %% tags=["solution"] cellView="form" jupyter={"source_hidden": true}
#@title Solution (hidden in Jupyter and Colab: click to show)
def cosine_abar(T):
    """abar_t for t = 0..T-1, a tensor [T]."""
    f = lambda t: torch.cos((t / T + 0.008) / 1.008 * math.pi / 2) ** 2
    return f(torch.arange(1, T + 1, dtype=torch.float64)) / f(torch.tensor(0.0, dtype=torch.float64))


assert check_cosine_abar(cosine_abar)

# %% [markdown]
# **Exercise 2: Noising in one jump.** $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon$ (Ho et al. eq. 4), for a batch
# with one $t$ per image: pick each image's $\bar\alpha_t$ from the table and shape it to broadcast
# over its channels and pixels.

# %%
from fmnist_ldm.exercises import check_q_sample

def my_q_sample(x0, t, noise, abar):
    """x0, noise [B, C, H, W]; t int [B]; abar [T] -> x_t [B, C, H, W]."""
    raise NotImplementedError   # your code here

check_q_sample(my_q_sample)

# %% tags=["solution"] cellView="form" jupyter={"source_hidden": true}
#@title Solution (hidden in Jupyter and Colab: click to show)
def q_sample(x0, t, noise, abar):
    """x0, noise [B, C, H, W]; t int [B]; abar [T] -> x_t [B, C, H, W]."""
    a = abar[t].view(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


assert check_q_sample(q_sample)

# %% [markdown]
# **Exercise 3: From v to the clean image and the noise.** The UNet predicts $v = \alpha\,\varepsilon - \sigma\,x_0$ with $\alpha = \sqrt{\bar\alpha_t}$, $\sigma = \sqrt{1-\bar\alpha_t}$,
# and $x_t = \alpha x_0 + \sigma\varepsilon$. Since $\alpha^2 + \sigma^2 = 1$, the two invert to
# $\hat x_0 = \alpha x_t - \sigma v$ and $\hat\varepsilon = \sigma x_t + \alpha v$: every sampler needs both.

# %%
from fmnist_ldm.exercises import check_v_to_x0_eps

def my_v_to_x0_eps(v, x_t, abar_t):
    """v, x_t [B, C, H, W]; abar_t [B, 1, 1, 1] -> (x0_hat, eps_hat)."""
    raise NotImplementedError   # your code here

check_v_to_x0_eps(my_v_to_x0_eps)

# %% tags=["solution"] cellView="form" jupyter={"source_hidden": true}
#@title Solution (hidden in Jupyter and Colab: click to show)
def v_to_x0_eps(v, x_t, abar_t):
    """v, x_t [B, C, H, W]; abar_t [B, 1, 1, 1] -> (x0_hat, eps_hat)."""
    alpha, sigma = abar_t.sqrt(), (1 - abar_t).sqrt()
    return alpha * x_t - sigma * v, sigma * x_t + alpha * v


assert check_v_to_x0_eps(v_to_x0_eps)

# %% [markdown]
# ## What we learned
# - The forward process has a closed form, $q(z_t \mid z_0)$, so training needs no simulation: pick a
#   t, add the right amount of noise, ask the network for $v$.
# - Going back one step is a Gaussian, the posterior $q(z_{t-1} \mid z_t, z_0)$; the reverse model puts
#   the network's $\hat z_0$ in place of $z_0$. DDPM samples it 1000 times; DDIM takes big steps,
#   with ($\eta = 1$) or without ($\eta = 0$) fresh noise.
# - The MSE we train is a reweighting of the ELBO; every weighting has the same best guess,
#   $\mathbb E[z_0 \mid z_t]$, and differs in where an imperfect network spends its effort.
# - $v$-prediction keeps both $\hat z_0$ and $\hat\epsilon$ well-conditioned at every t, where
#   $\epsilon$-prediction blows up $\hat z_0$'s errors at high noise.
# - The loss depends strongly on t: what the network can know about $z_0$ shrinks to nothing at
#   $t = 999$.
#
# ## Check your understanding
# 1. At $t = 999$ the shipped UNet's $\hat z_0$ error is about the variance of the latents. Why can
#    no network do better there, and what should $\hat z_0$ be at that t? (Notebook 05 shows it.)
# 2. Why can DDIM with $\eta = 0$ get by with 20 steps where ancestral sampling on the trained
#    timesteps walks all 1000? What does strided DDPM ($\eta = 1$ on 20 steps) give up?
# 3. An $\epsilon$-predicting network is off by 0.01 at $t = 999$. How far off is its $\hat z_0$, and
#    the $\hat z_0$ of a $v$-predicting network off by 0.01?
