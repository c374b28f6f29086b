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
# # 05 · Using the model: sampling, guidance, samplers, editing, sliders
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/fmnist-ldm/fmnist-ldm/blob/main/notebooks/05_application.ipynb)
#
# *In Colab, pick a GPU first: Runtime → Change runtime type → GPU. The first cell then fetches the
# course and its shipped weights; on a GPU the notebooks train the `full` recipe, on a CPU the
# small `fast` one, and each says which before it trains.*
#
# This notebook always uses the **shipped weights** in `model/` (see `model/README.md` for how
# they were trained and what they score): nothing is trained here, and it runs on a CPU.

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
import time
import matplotlib.pyplot as plt
import math
import torch
from IPython.display import Image as ShowImage, display
from tqdm.auto import tqdm
from fmnist_ldm.notebook import notebook_preset
from fmnist_ldm.data import CLASS_NAMES, load_fashion_mnist, to_model_range, to_uint8
from fmnist_ldm.metrics import load_judge, predict
from fmnist_ldm.pipeline import DEFAULTS, Pipeline
from fmnist_ldm.viz import forward_reverse_frames, save_gif, show_grid as show

cfg = notebook_preset()
pipe = Pipeline.from_pretrained()
print("defaults:", DEFAULTS)

# %% [markdown]
# ## Unconditional and class-conditional samples
# Class 10 is the learned "null" class: no prompt.

# %%
null = pipe.cfg.num_classes                         # 10: the class after the last real one
show(pipe.generate([null] * 20, guidance=1.0, seed=1).images, 10, "unconditional (class 10, no guidance)")
show(pipe.generate([c for c in range(pipe.cfg.num_classes) for _ in range(6)], seed=2).images, 6,
     "class-conditional, the defaults", CLASS_NAMES)

# %% [markdown]
# ## Classifier-free guidance, and too much of it
# $\hat v = v_\varnothing + w\,(v_y - v_\varnothing)$: $w = 1$ is the plain conditional model,
# larger $w$ pushes samples towards what is typical of the class, at the cost of variety. The
# shipped model's class accuracy (the judge of notebook 06, 5,000 samples, model card) goes from
# 87.7 % without guidance to 97.8 % with the defaults ($w = 5$, for t in [300, 700] only).
#
# Guidance earns its keep on the classes the model confuses. Below, **Shirt**, the most confused
# (with T-shirt/top, Pullover and Coat): the same eight starting noises in every row, guided at
# **every** step with a growing $w$, up to 15, three times the default. Under each image, the
# judge's verdict (green: Shirt; red: what it saw instead).

# %% [markdown]
# **One guided step, by hand.** Here are the lines the library runs at every step, on the shipped UNet
# and a noisy latent at t = 499 (inside the guided interval): two UNet calls, the guidance
# combination, the guess $(\hat z_0, \hat\varepsilon)$ from the guided $\hat v$ (notebook 04), then
# one deterministic DDIM step to the next timestep (Song et al. eq. 12, $\eta = 0$) and one ancestral
# DDPM step (Ho et al. eq. 6-7: sample the posterior $q(z_{t-1} \mid z_t, \hat z_0)$). Each is checked
# against the library's `guided_denoiser`, `ddim_step` and `ddpm_step`, which every sampler here uses.

# %%
from torch.testing import assert_close
from fmnist_ldm.diffusion import ddim_step, ddpm_step
from fmnist_ldm.sampling import guided_denoiser
hand = Pipeline.from_pretrained(device="cpu")        # by hand: the shipped models and every tensor on the CPU
S, w, t, t_next = hand.schedule, DEFAULTS["guidance"], 499, 449
y = torch.tensor([6, 7])                                             # Shirt, Sneaker
z_t = torch.randn(2, *hand.shape, generator=torch.Generator().manual_seed(0))
tt = torch.full((2,), t)
with torch.no_grad():
    v_cond, v_null = hand.unet(z_t, tt, y), hand.unet(z_t, tt, torch.full_like(y, null))
v_hat = v_null + w * (v_cond - v_null)                                # classifier-free guidance
a, a_next = S.abar_at(t), S.abar_at(t_next)
z0_hat = math.sqrt(a) * z_t - math.sqrt(1 - a) * v_hat               # v -> (z0, eps), notebook 04
eps_hat = math.sqrt(1 - a) * z_t + math.sqrt(a) * v_hat
z_ddim = math.sqrt(a_next) * z0_hat + math.sqrt(1 - a_next) * eps_hat
beta, a_prev = S.betas[t].item(), S.abar_at(t - 1)                     # DDPM goes to t - 1
noise = torch.randn(z_t.shape, generator=torch.Generator().manual_seed(1))
mean = (math.sqrt(a_prev) * beta * z0_hat + math.sqrt(1 - beta) * (1 - a_prev) * z_t) / (1 - a)
z_ddpm = mean + math.sqrt(beta * (1 - a_prev) / (1 - a)) * noise

with torch.no_grad():
    lib_z0, lib_eps = guided_denoiser(hand.unet, S, hand.cfg.prediction, y, w, DEFAULTS["guidance_interval"])(z_t, t)
close = dict(rtol=1e-4, atol=1e-4)        # the library runs both UNet calls as one batch, which may round differently
assert_close((z0_hat, eps_hat), (lib_z0, lib_eps), **close)
assert_close(z_ddim, ddim_step(S, z_t, lib_z0, lib_eps, t, t_next, 0.0, None), **close)
assert_close(z_ddpm, ddpm_step(S, z_t, lib_z0, t, lambda like: noise), **close)
print("guidance, DDIM step and DDPM step == fmnist_ldm.diffusion's guided_denoiser, ddim_step, ddpm_step")

# %%
judge = load_judge()
ws = [1.0, 2.0, 3.0, 5.0, 10.0, 15.0]
rows = [pipe.generate([6] * 8, guidance=w, guidance_interval=None, seed=3).images for w in ws]
fig, axes = plt.subplots(len(ws), 8, figsize=(9, 1.45 * len(ws)))
for r, (w, images) in enumerate(zip(ws, rows)):
    verdict = predict(judge, images)
    for c, ax in enumerate(axes[r]):
        ax.imshow(images[c], cmap="gray", vmin=0, vmax=255); ax.set_xticks([]); ax.set_yticks([])
        ax.set_xlabel(CLASS_NAMES[verdict[c]], fontsize=7, color="green" if verdict[c] == 6 else "red")
    axes[r, 0].set_ylabel(f"w = {w:g}\n{(verdict == 6).sum()}/8 Shirt", fontsize=9)
fig.suptitle("'Shirt', guided at every step: one row per w, the same 8 noises in every column")
plt.tight_layout(); plt.show()

# %% [markdown]
# Read it column by column: the same noise under stronger guidance. Without guidance the judge
# takes one of the eight for a coat; from $w = 2$ on it calls all eight shirts, and more guidance
# cannot improve that verdict. It keeps changing the images all the same: checks and prints fade,
# a short sleeve grows long, highlights burn out, edges turn streaky, and by $w = 15$ the eight
# columns are close to one long-sleeved, buttoned shirt. That is the variety guidance costs, and
# the judge cannot see it: it asks "is this a shirt?", not "are these all the same shirt?"
# (notebook 06 measures variety). Guiding only the middle of the run, as the defaults do, gets
# the accuracy with less of this.
#
# ## Noise-level editing (SDEdit, Meng et al. 2022)
# Noise a real test image up to level t, then denoise it **as another class**. Small t keeps
# the original; large t keeps only the rough shape and the new class takes over.

# %%
test_x, test_y = load_fashion_mnist("test", cfg.data_dir)
src = test_x[(test_y == 0).nonzero()[0, 0]][None]            # a real T-shirt
z0 = pipe.encode(to_model_range(src))
target = 3                                                     # ... edited into a Dress
cols = [src]
for t in (200, 400, 600, 800):
    zt = pipe.schedule.q_sample(z0, torch.tensor([t]), torch.randn(z0.shape, generator=torch.Generator().manual_seed(5)))
    cols.append(pipe.generate([target], x_start=zt, t_start=t, steps=max(2, t // 50), seed=5).images)
show(torch.cat(cols), 5, f"real T-shirt, then edited into '{CLASS_NAMES[target]}' from t = 200, 400, 600, 800")

# %% [markdown]
# ## What the model guesses at t = 999
# At every step the UNet's output gives a guess of the final clean latent, $\hat z_0$. Trained by
# mean squared error, the best guess is the average of every clean latent consistent with what
# it sees: the posterior mean $\mathbb E[z_0 \mid z_t, y]$ (notebook 04). At $t = 999$ the state is
# pure noise and says almost nothing, so the guess is the average garment of the class, whatever
# the noise: blurry, like the class averages of notebook 01 (bottom row; the top rows decode an
# average *latent*, which is close to, not the same as, an average image). As t falls, the state
# pins down one garment and the guess sharpens into it. This is the most instructive picture in
# the slider below: the "predicted final" at step 0.

# %%
classes = list(range(pipe.cfg.num_classes))
first_guess = [to_uint8(pipe.decode(pipe.generate(classes, seed=s, return_trajectory=True).trajectory["x0"][0]))
               for s in (0, 1)]
train_x, train_y = load_fashion_mnist("train", cfg.data_dir)
class_mean = torch.stack([train_x[train_y == c].float().mean(0) for c in classes]).round().to(torch.uint8)
show(torch.cat([*first_guess, class_mean]), 10, "one column per class: " + ", ".join(CLASS_NAMES),
     ["guess at t = 999,\nnoise 1", "guess at t = 999,\nnoise 2", "real class average"])

# %% [markdown]
# ## Sliders: watch one denoising run
# Pick a class, a step of the run, a guidance scale (the library's default, 5, to start) and a
# seed (the starting noise). The picture is the decoded state $z_t$ at that step (left) and the
# model's current guess of the final garment, $\hat z_0$ (right). The run takes the default 20 steps,
# and guidance acts only for t in [300, 700] (`DEFAULTS["guidance_interval"]`): the first six steps
# (at t = 999 … 749) are never guided, so the states up to step 6 are the same at every guidance
# scale. The caption says, at each step, how many of the steps so far were guided.
#
# **fast** switches to the distilled student of notebook 07: 4 UNet calls instead of 28, with the
# default guidance learned into it (so the guidance slider does not apply). Its states are different
# in kind: at each of its 4 steps it guesses the final garment at once, and the next state is that
# guess noised back to a lower t with fresh noise.

# %%
import ipywidgets as W

lo, hi = DEFAULTS["guidance_interval"]
cls_menu = W.Dropdown(options=[(name, c) for c, name in enumerate(CLASS_NAMES)], value=7, description="class")
step_slider = W.IntSlider(value=20, min=0, max=20, description="step")
guide_slider = W.FloatSlider(value=DEFAULTS["guidance"], min=1.0, max=15.0, step=0.5, description="guidance")
seed_box = W.BoundedIntText(value=6, min=0, max=10**6, description="seed", layout=W.Layout(width="160px"))
speed = W.ToggleButtons(options=[("teacher: 20 steps", "dpmpp2m"), ("fast: 4 steps", "distilled")],
                        description="sampler")
caption = W.Label()
out = W.Output()
cache = {}

def redraw(*_):
    fast = speed.value == "distilled"
    key = (cls_menu.value, guide_slider.value, seed_box.value, speed.value)
    if key not in cache:
        steps = 4 if fast else DEFAULTS["steps"]
        guidance = {} if fast else {"guidance": key[1]}           # the student's guidance is built in
        run = pipe.generate([key[0]], sampler=key[3], steps=steps, seed=key[2], return_trajectory=True,
                            **guidance).trajectory
        cache[key] = (to_uint8(pipe.decode(run["x"][:, 0])), to_uint8(pipe.decode(run["x0"][:, 0])), run["t"])
    states, guesses, ts = cache[key]
    n = len(ts) - 1
    i = min(step_slider.value, n)
    guess = guesses[min(i, len(guesses) - 1)]
    guided = sum(lo <= t <= hi for t in ts[:i])        # steps so far whose UNet call was guided
    if fast:
        note = f"distilled student, guidance {DEFAULTS['guidance']:g} built in, one UNet call per step"
    elif key[1] == 1.0:
        note = "guidance 1 is no guidance"
    elif guided:
        note = f"{guided} of the {i} steps so far guided"
    else:
        note = f"no step so far guided (only t in [{lo}, {hi}] is): this state is the same at every guidance scale"
    t_now = ts[i] if ts[i] >= 0 else "clean"
    guidance_now = "" if fast else f", guidance {key[1]:g}"
    caption.value = f"{CLASS_NAMES[key[0]]}, step {i}/{n} (t = {t_now}){guidance_now}, seed {key[2]}: {note}"
    with out:
        out.clear_output(wait=True)
        fig, axes = plt.subplots(1, 2, figsize=(5, 2.6))
        axes[0].imshow(states[i], cmap="gray", vmin=0, vmax=255); axes[0].set_title("state z_t")
        axes[1].imshow(guess, cmap="gray", vmin=0, vmax=255); axes[1].set_title("predicted final")
        for ax in axes: ax.axis("off")
        plt.show()

def switch_sampler(change):
    n = 4 if change["new"] == "distilled" else DEFAULTS["steps"]
    guide_slider.disabled = change["new"] == "distilled"
    step_slider.unobserve(redraw, names="value")        # one redraw for the switch, not two
    step_slider.max = step_slider.value = n
    step_slider.observe(redraw, names="value")
    redraw()

for s in (cls_menu, step_slider, guide_slider, seed_box):
    s.observe(redraw, names="value")
speed.observe(switch_sampler, names="value")
redraw()
display(W.VBox([speed, W.HBox([cls_menu, step_slider]), W.HBox([guide_slider, seed_box]), caption, out]))

# %% [markdown]
# ## Samplers and step counts
# Ancestral DDPM as trained walks all $T = 1000$ timesteps; the same ancestral sampling on a
# 50-step subsequence is DDIM with $\eta = 1$ ("strided DDPM"). DDIM with $\eta = 0$ is deterministic
# and works with any count; DPM-Solver++(2M), a second-order solver of the same deterministic path,
# is sharp in 10–20. Same starting noise, same classes (one column per class). The stochastic
# samplers add fresh noise at every step, so they land on different garments; the deterministic
# ones follow nearly the same path and agree with each other. (Measured on 5,000 samples in the
# `benchmarks/README.md`: DDIM with $\eta = 1$ scores FID 3.71, 3.06, 2.66 and 2.58 at 20, 50, 100 and 200 steps,
# against 2.38 for DPM-Solver++ at 20: stochastic sampling works with few steps, but needs more of
# them for the same quality.) The last two rows are the distilled student of notebook 07, which
# has the guidance built in and needs one call per step. A forward hook on the UNet counts its
# calls, which is what a step costs; the DDPM row makes 1000 of them, so it has a progress bar.

# %%
runs = [("ddpm", 1000, 0.0), ("ddim", 50, 1.0), ("ddim", 50, 0.0), ("ddim", 10, 0.0),
        ("dpmpp2m", 20, 0.0), ("dpmpp2m", 10, 0.0), ("dpmpp2m", 5, 0.0), ("distilled", 4, 0.0),
        ("distilled", 1, 0.0)]
names = [f"{s} {n}" + (f", η={e:g}" if s == "ddim" else "") for s, n, e in runs]
labels, rows = list(range(pipe.cfg.num_classes)), []

def tick(module, inputs, output):
    bar.update(1)                            # and return None: a hook that returns a value replaces the output

for (sampler, steps, eta), name in zip(runs, names):
    bar = tqdm(total=1000 if sampler == "ddpm" else steps, desc=name, mininterval=1)
    unet = pipe.student if sampler == "distilled" else pipe.unet        # notebook 07's student
    hook = unet.register_forward_hook(tick)                             # one tick per UNet call
    t0 = time.perf_counter()
    rows.append(pipe.generate(labels, sampler=sampler, steps=steps, eta=eta, seed=4).images)
    hook.remove(), bar.close()
    print(f"{name:16s}: {bar.n:4d} UNet calls, {time.perf_counter() - t0:6.2f} s for 10 images")
show(torch.cat(rows), 10, "one column per class, the same starting noise", names)

# %% [markdown]
# ## Animation: clean → noise → clean
# The forward leg noises a generated garment one step at a time, with fresh noise at every step
# (one trajectory of $q(z_t \mid z_{t-1})$); the way back is a real reverse diffusion run from where it
# ended, so it lands on a *new* garment of the same class. Each frame is labelled with its t.
# Every frame is a latent decoded by the VAE, the noisy ones too: the decoder has only learned to
# draw garments, so a noisy latent comes out as fragments of clothing, not as the grey static the
# latent itself is (notebook 04's first figure shows the latent beside its decoding).

# %%
import os
os.makedirs("runs", exist_ok=True)
frames, captions = forward_reverse_frames(pipe, 9, seed=7)
save_gif(frames, "runs/ankle_boot.gif", captions=captions)
display(ShowImage(filename="runs/ankle_boot.gif"))

# %% [markdown]
# ## What people try next: negative prompts, inpainting, interpolation, inversion
# Four things Stable Diffusion users do every day, each a few lines on top of the sampler above.
# The library versions (`fmnist_ldm.sampling`, and `Pipeline.generate(negative=...)`,
# `Pipeline.inpaint`, `Pipeline.invert`) are what the CLI runs; here the lines that matter are in view.
#
# ### Negative prompts
# Classifier-free guidance pushes away from the *unconditional* prediction. Put another class's
# prediction in its place and guidance pushes away from that class instead:
# $\hat v = v_{\text{neg}} + w\,(v_y - v_{\text{neg}})$ (what `negative_prompt` does in `diffusers`).
# Shirts are the class the judge confuses most, with T-shirts and coats. The same 8 noises as
# "Shirt", as "Shirt, not T-shirt/top" and as "Shirt, not Coat", guided at every step, with the
# judge's verdict under each image; then the same three settings on 1,000 shirts each, counted.

# %%
negatives = [None, 0, 4]                                   # none (plain CFG), T-shirt/top, Coat
names = ["Shirt"] + [f"Shirt, not {CLASS_NAMES[c]}" for c in negatives[1:]]
fig, axes = plt.subplots(3, 8, figsize=(9, 4.6))
for r, neg in enumerate(negatives):
    images = pipe.generate([6] * 8, guidance_interval=None, seed=3, negative=neg).images
    verdict = predict(judge, images)
    for c, ax in enumerate(axes[r]):
        ax.imshow(images[c], cmap="gray", vmin=0, vmax=255); ax.set_xticks([]); ax.set_yticks([])
        ax.set_xlabel(CLASS_NAMES[verdict[c]], fontsize=7, color="green" if verdict[c] == 6 else "red")
    axes[r, 0].set_ylabel(names[r], fontsize=8)
fig.suptitle("the same 8 noises, guidance 5 at every step"); plt.tight_layout(); plt.show()

n = 1000
counts = {}
for name, neg in zip(names, negatives):
    verdict = predict(judge, pipe.generate([6] * n, guidance_interval=None, seed=11, negative=neg,
                                           progress=True).images)
    counts[name] = {c: (verdict == c).float().mean().item() for c in (6, 0, 4, 2)}
print(f"judged as ... ({n} images each)       Shirt  T-shirt/top  Coat  Pullover")
for name, share in counts.items():
    print(f"{name:28s} " + "  ".join(f"{100 * share[c]:8.1f} %" for c in (6, 0, 4, 2)))
base = counts[names[0]]
for name, neg in zip(names[1:], negatives[1:]):
    moved = max((c for c in (6, 0, 4, 2) if c != 6), key=lambda c: abs(counts[name][c] - base[c]))
    print(f"{name}: judged {CLASS_NAMES[neg]} {100 * base[neg]:.1f} % -> {100 * counts[name][neg]:.1f} %; "
          f"the largest change elsewhere: {CLASS_NAMES[moved]} {100 * base[moved]:.1f} % -> {100 * counts[name][moved]:.1f} %")

# %% [markdown]
# Read the table row by row. A negative class can only take away share it had; what guidance
# pushes away from is everything that class looks like, so the samples can land on a third class
# that shares less with it: look at the sleeves in the last row of the figure, and at the largest
# change printed for each negative.
#
# ### Inpainting: keep part of a garment, redraw the rest
# The mask is drawn on the 28×28 pixels; the model works on 7×7 latent cells of 4×4 pixels each,
# so a cell is redrawn if any of its pixels is masked (a max-pool over each cell). At every step
# the kept cells are replaced by the image's own latent, noised to that step's $t$; the model only
# draws the masked cells, and since it sees the kept ones at every step, what it draws fits them.
# (RePaint, Lugmayr et al. 2022, adds resampling: going back and forth a few times per step
# harmonises better, at several times the cost. Without it the boundary can show; look for it.)
# The decoder is not local, so even kept pixels come back slightly changed.

# %%
bottom = torch.zeros(28, 28, dtype=torch.bool); bottom[14:] = True          # redraw the bottom half
cell_mask = torch.nn.functional.adaptive_max_pool2d(bottom[None, None].float(), (7, 7))[0, 0]
print("latent cells redrawn (1) for 'bottom half':\n", cell_mask.int())
picks = [int((test_y == c).nonzero()[k, 0]) for c, k in ((0, 1), (3, 0), (9, 2))]    # T-shirt, Dress, Ankle boot
rows, labels = [], []
for i in picks:
    src = test_x[i][None]
    masked = src.clone(); masked[:, bottom] = 128                                    # grey where it redraws
    fills = pipe.inpaint(src.expand(4, 28, 28), bottom, [int(test_y[i])] * 4, seed=0).images
    rows.append(torch.cat([src, masked, fills]))
    labels.append(CLASS_NAMES[int(test_y[i])])
show(torch.cat(rows), 6, "image, mask (grey: redrawn), four fills of the bottom half", labels)

# %%
regions = {"bottom half": (slice(14, 28), slice(0, 28)), "top half": (slice(0, 14), slice(0, 28)),
           "left half": (slice(0, 28), slice(0, 14)), "centre": (slice(8, 20), slice(8, 20))}

def fill(index=0, region="bottom half", as_class="same", seed=0):
    src, mask = test_x[index][None], torch.zeros(28, 28, dtype=torch.bool)
    mask[regions[region]] = True
    label = int(test_y[index]) if as_class == "same" else CLASS_NAMES.index(as_class)
    masked = src.clone(); masked[:, mask] = 128
    show(torch.cat([src, masked, pipe.inpaint(src.expand(4, 28, 28), mask, [label] * 4, seed=seed).images]), 6,
         f"test image {index} ({CLASS_NAMES[int(test_y[index])]}), {region} redrawn as {CLASS_NAMES[label]}")

fill(picks[0], "top half", "Shirt")              # the plain figure a static copy shows; the widget redraws it
W.interact_manual(fill, index=W.BoundedIntText(value=picks[0], min=0, max=len(test_x) - 1),
                  region=list(regions), as_class=["same", *CLASS_NAMES], seed=W.IntText(value=0));

# %% [markdown]
# ### Interpolating between two starting noises
# Each image is a function of its starting noise, so a path between two noises gives a path
# between two garments. A straight line $(1-s)\,a + s\,b$ is the wrong path: Gaussian noise in
# $d = 196$ dimensions has norm close to $\sqrt d$, i.e. it lives near a sphere, and the straight
# line cuts through the inside: halfway its norm is about $\sqrt{d/2}$, a state quieter than any
# the model was trained on at $t = 999$. Spherical interpolation (`sampling.slerp`) stays on the
# sphere:
# $\operatorname{slerp}(a, b; s) = \frac{\sin((1-s)\theta)}{\sin\theta}\,a + \frac{\sin(s\theta)}{\sin\theta}\,b$, with $\theta$ the angle between $a$ and $b$.

# %%
from fmnist_ldm.sampling import slerp
g = torch.Generator().manual_seed(21)
a, b = torch.randn(1, *pipe.shape, generator=g), torch.randn(1, *pipe.shape, generator=g)
s = torch.linspace(0, 1, 9)
paths = {"straight line": torch.cat([(1 - w) * a + w * b for w in s]), "slerp": slerp(a.expand(9, -1, -1, -1), b.expand(9, -1, -1, -1), s)}
strips = {name: pipe.generate([7] * 9, x_start=path, seed=0).images for name, path in paths.items()}
for name, path in paths.items():
    print(f"{name:13s} norm / sqrt(d):", " ".join(f"{v:5.2f}" for v in path.flatten(1).norm(dim=1) / math.sqrt(a.numel())))
    print(f"{'':13s} mean grey:    ", " ".join(f"{v:5.1f}" for v in strips[name].float().mean((1, 2))))
show(torch.cat(list(strips.values())), 9, "Sneaker, from noise a (left) to noise b (right)", list(paths))

# %% [markdown]
# Across two classes the class has to travel too. The UNet takes a class index, not a point
# between classes, but guidance is linear in its output: mixing the two classes' predictions,
# $v = (1-s)\,v_{\text{Sneaker}} + s\,v_{\text{Ankle boot}}$, is the same trick as mixing two
# prompts' embeddings in Stable Diffusion. A few lines, on the CPU copy of the models (`hand`).

# %%
from fmnist_ldm.sampling import sample

@torch.no_grad()
def between(s_weight, noise, a_class=7, b_class=9, w=DEFAULTS["guidance"]):
    """Sample from `noise` with the two classes' predictions mixed (1 - s) : s, then guided."""
    lo, hi = DEFAULTS["guidance_interval"]

    def denoise(x, t):
        tt = torch.full((len(x),), t)
        v = lambda c: hand.unet(x, tt, torch.full((len(x),), c)).float()
        cond = (1 - s_weight) * v(a_class) + s_weight * v(b_class)
        out = v(null) + w * (cond - v(null)) if lo <= t <= hi else cond    # guidance as the library does it
        return hand.schedule.split(out, x, tt, hand.cfg.prediction)
    return to_uint8(hand.decode(sample(denoise, hand.schedule, noise, steps=DEFAULTS["steps"])))

path = paths["slerp"]
show(torch.cat([between(float(w), path[k:k + 1]) for k, w in enumerate(s)]), 9,
     "noise a -> b along the slerp, class Sneaker -> Ankle boot")
W.interact(lambda s_weight: show(between(s_weight, slerp(a, b, s_weight)), 1, f"s = {s_weight:.2f}"),
           s_weight=W.FloatSlider(min=0, max=1, step=0.05, value=0.5));

# %% [markdown]
# ### DDIM inversion: from a real image back to its noise
# Deterministic DDIM ($\eta = 0$) is an ODE: run it backwards from a real image's latent and you
# get the noise it would have come from (`sampling.ddim_invert`: the DDIM step read the other way,
# with the model's $\hat\varepsilon$ taken one step ahead, which is what makes it approximate).
# Sampling from that noise with the same steps and no guidance gives the image back; sampling
# from it **as another class** edits it, keeping what the noise encodes (pose, size, brightness).
# Beside it, SDEdit's version of the same edit (noise to t = 600, denoise as the new class).

# %%
i = int((test_y == 7).nonzero()[3, 0])                                  # a real sneaker
src, z_src = test_x[i][None], pipe.encode(to_model_range(test_x[i][None]))
noise = pipe.invert(src, [7], steps=50)
back = pipe.generate([7], sampler="ddim", steps=50, guidance=1.0, x_start=noise, return_trajectory=True)
err = ((back.trajectory["x"][-1] - z_src).pow(2).mean().sqrt() / z_src.std()).item()
print(f"inverted noise: std {noise.std():.3f}; sampled back, the latent is off by {100 * err:.1f} % of its std, "
      f"the image by {(back.images.float() - src.float()).abs().mean():.1f} grey levels on average "
      f"(the VAE alone: {(pipe.reconstruct(src).float() - src.float()).abs().mean():.1f})")
as_sandal = pipe.generate([5], sampler="ddim", steps=50, x_start=noise).images
zt = pipe.schedule.q_sample(z_src, torch.tensor([600]), torch.randn(z_src.shape, generator=torch.Generator().manual_seed(5)))
sdedit = pipe.generate([5], x_start=zt, t_start=600, steps=12, seed=5).images
fig, axes = plt.subplots(1, 4, figsize=(8, 2.6))
for ax, image, what in zip(axes, (src[0], back.images[0], as_sandal[0], sdedit[0]),
                           ("a real sneaker", "inverted, sampled back", "inverted, sampled\nas Sandal",
                            "SDEdit from t = 600\nas Sandal")):
    ax.imshow(image, cmap="gray", vmin=0, vmax=255); ax.set_xticks([]); ax.set_yticks([]); ax.set_xlabel(what, fontsize=9)
plt.tight_layout(); plt.show()

# %% [markdown]
# ## Your turn
# Write each function below where it says so, then run its cell: the checker compares it with
# the library's own implementation on a few inputs and says what is wrong if it is. The
# solution is in the hidden cell under each exercise (click to show it); it runs, and is checked, too.

# %% [markdown]
# **Exercise 1: Classifier-free guidance.** One guided step runs the UNet twice, with the class and with the null class, and combines the
# two outputs: $\hat v = v_\varnothing + w\,(v_y - v_\varnothing)$. At $w = 1$ it is the plain conditional
# output; larger $w$ moves further in the class's direction.

# %%
from fmnist_ldm.exercises import check_cfg

def my_cfg(out_uncond, out_cond, w):
    """The guided output, same shape as the inputs."""
    raise NotImplementedError   # your code here

check_cfg(my_cfg)

# %% tags=["solution"] cellView="form" jupyter={"source_hidden": true}
#@title Solution (hidden in Jupyter and Colab: click to show)
def cfg(out_uncond, out_cond, w):
    """The guided output, same shape as the inputs."""
    return out_uncond + w * (out_cond - out_uncond)


assert check_cfg(cfg)

# %% [markdown]
# **Exercise 2: One DDIM step.** Deterministic DDIM (η = 0, Song et al. 2021 eq. 12) takes the model's guesses $\hat x_0$ and
# $\hat\varepsilon$ at the current step and puts them back together at the next, lower noise level:
# $x_{t'} = \sqrt{\bar\alpha_{t'}}\,\hat x_0 + \sqrt{1-\bar\alpha_{t'}}\,\hat\varepsilon$.

# %%
from fmnist_ldm.exercises import check_ddim_step

def my_ddim_step(x0_hat, eps_hat, abar_next):
    """x0_hat, eps_hat [B, C, H, W]; abar_next a float -> the state at the next step."""
    raise NotImplementedError   # your code here

check_ddim_step(my_ddim_step)

# %% tags=["solution"] cellView="form" jupyter={"source_hidden": true}
#@title Solution (hidden in Jupyter and Colab: click to show)
def ddim_step(x0_hat, eps_hat, abar_next):
    """x0_hat, eps_hat [B, C, H, W]; abar_next a float -> the state at the next step."""
    return math.sqrt(abar_next) * x0_hat + math.sqrt(1 - abar_next) * eps_hat


assert check_ddim_step(ddim_step)

# %% [markdown]
# **Exercise 3: a gentler inpainting mask.** The inpainting above redraws a latent cell when *any* of
# its 4×4 pixels is masked, so a mask edge that grazes a cell redraws all of it. Write the rule
# that redraws a cell only when *more than half* of its 16 pixels are masked, as a float mask
# shaped [N, 1, 7, 7] (1 = redraw) that broadcasts over the latent's channels; try it in
# `Pipeline.inpaint`'s place by hand if you like, with `sample(..., known=, keep=1 - your_mask)`.

# %%
from fmnist_ldm.exercises import check_majority_cells

def my_majority_cells(mask):
    """mask bool [N, 28, 28], True = redraw -> float [N, 1, 7, 7], 1 where most of a cell is masked."""
    raise NotImplementedError   # your code here

check_majority_cells(my_majority_cells)

# %% tags=["solution"] cellView="form" jupyter={"source_hidden": true}
#@title Solution (hidden in Jupyter and Colab: click to show)
def majority_cells(mask):
    """mask bool [N, 28, 28], True = redraw -> float [N, 1, 7, 7], 1 where most of a cell is masked."""
    share = torch.nn.functional.avg_pool2d(mask[:, None].float(), 4)     # the masked share of each 4x4 cell
    return (share > 0.5).float()


assert check_majority_cells(majority_cells)

# %% [markdown]
# ## What we learned
# - `Pipeline.generate` turns classes, a sampler, a step count, a guidance scale and a seed into
#   images; the same seed gives the same images on any device.
# - Classifier-free guidance trades variety for class fidelity; too much of it saturates the
#   images and makes them alike. The defaults guide only the middle of the run.
# - The model's guess of the final image starts as the blurry class average, $\mathbb E[z_0 \mid z_t, y]$,
#   and sharpens as the noise falls.
# - Stochastic samplers (DDPM, DDIM with $\eta = 1$) need many steps; deterministic ones (DDIM with
#   $\eta = 0$, DPM-Solver++) are good in 10–20; a distilled student (notebook 07) needs 4.
# - Editing is sampling from a partly noised real image: the noise level decides how much survives.
# - The same sampler does more with a few lines: a negative class in place of the unconditional
#   prediction, kept latent cells pasted back at every step (inpainting), spherical paths between
#   noises, and DDIM run backwards to find the noise of a real image (inversion).
#
# ## Check your understanding
# 1. In the slider, why is the "predicted final" at step 0 nearly the same for every seed, while
#    the final image differs from seed to seed?
# 2. Guidance is switched off for t > 700 by default. Why does that make the first six steps of a
#    run identical for every guidance scale, and what does guiding those steps cost (notebook 06)?
# 3. In SDEdit from t = 800 the T-shirt's sleeves can vanish, from t = 200 they survive. What
#    does the forward process's $\bar\alpha_t$ at those two t say about why?
