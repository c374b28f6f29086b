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
from IPython.display import display
from fmnist_ldm.progress import progress
from fmnist_ldm.course.notebook import notebook_preset
from fmnist_ldm.data import CLASS_NAMES, class_means, load_fashion_mnist, to_model_range, to_uint8
from fmnist_ldm.metrics import load_judge, predict
from fmnist_ldm.pipeline import DEFAULTS, Pipeline
from fmnist_ldm.course.figures import GIF, forward_reverse_frames, save_gif, show_grid as show

cfg = notebook_preset()
pipe = Pipeline.from_pretrained()
print("defaults:", DEFAULTS)

# %%
from fmnist_ldm.course.diagram import pipeline_diagram
pipeline_diagram("05"); plt.show()

# %% [markdown]
# This notebook is the bottom row of the map: generation. Notebook 04 trained the UNet and ran
# its reverse process by hand; here the shipped model is *used*. Four ideas:
# 1. **Guidance**: how a class prompt is made to stick, what it buys, and what too much of it costs.
# 2. **Watching one run**: the state and the model's guess of the finished garment, step by step.
# 3. **Samplers and what a step costs**: the same noise through DDPM, DDIM, DPM-Solver++ and the
#    distilled student, with the network passes counted.
# 4. **Editing**: sampling with something held fixed (a real image's noisy latent, part of an
#    image, a negative class, a path between noises, the noise found by running backwards).
#
# ## Unconditional and class-conditional samples
# `pipe.generate(classes, ...)` runs the whole bottom row: pure noise, the reverse process, the
# VAE decoder. Its defaults are printed above: the sampler is DPM-Solver++(2M), the second-order
# solver of notebook 04, and it uses guidance. **Classifier-free guidance (CFG)** is how "draw
# me a sneaker" is made to stick: notebook 04 trained the UNet with the class label replaced, some
# of the time, by a "null" class 10, so the one network predicts both with the class and without
# it; at a guided step the sampler runs it both ways and moves further along the difference.
# Class 10 alone is "no prompt": unconditional samples.

# %%
null = pipe.cfg.num_classes                         # 10: the class after the last real one
show(pipe.generate([null] * 20, guidance=1.0, seed=1).images, 10, "unconditional (class 10, no guidance)")
show(pipe.generate([c for c in range(pipe.cfg.num_classes) for _ in range(6)], seed=2).images, 6,
     "class-conditional, the defaults", CLASS_NAMES)

# %% [markdown]
# ## Classifier-free guidance, and too much of it
# $\hat v = v_\varnothing + w\,(v_y - v_\varnothing)$: $w = 1$ is the plain conditional model,
# larger $w$ pushes samples towards what is typical of the class, at the cost of variety. What the
# defaults buy in class accuracy, over 5,000 samples, is in the model card (`model/README.md`),
# and notebook 06 measures it.
#
# **One guided step, by hand.** Here are the lines the library runs at a DDIM or DDPM step, on the shipped UNet
# and a noisy latent at t = 499 (inside the guided interval): two UNet calls, the guidance
# combination, the guess $(\hat z_0, \hat\varepsilon)$ from the guided $\hat v$ (notebook 04), then
# one deterministic DDIM step to the next timestep (Song et al. eq. 12, $\eta = 0$) and one ancestral
# DDPM step (Ho et al. eq. 6-7: sample the posterior $q(z_{t-1} \mid z_t, \hat z_0)$). Each is checked
# against the library's `GuidedDenoiser` (the guess that every sampler here steps from) and the DDIM and
# DDPM samplers' steps, `ddim_step` and `ddpm_step` (one file each in `fmnist_ldm/samplers/`).
# The library makes the two UNet calls one call on a doubled batch (the images with their class,
# then with the null class): one call, two network passes per image. The sampler section counts both.

# %% tags=["nbval-check-output"]
from torch.testing import assert_close
from fmnist_ldm.samplers.ddim import ddim_step
from fmnist_ldm.samplers.ddpm import ddpm_step
from fmnist_ldm.sampling import GuidedDenoiser
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
    lib_z0, lib_eps = GuidedDenoiser(hand.unet, S, hand.cfg.prediction, y, w, DEFAULTS["guidance_interval"])(z_t, t)
close = dict(rtol=1e-4, atol=1e-4)        # the library runs both UNet calls as one batch, which may round differently
assert_close((z0_hat, eps_hat), (lib_z0, lib_eps), **close)
assert_close(z_ddim, ddim_step(S, z_t, lib_z0, lib_eps, t, t_next, 0.0, None), **close)
assert_close(z_ddpm, ddpm_step(S, z_t, lib_z0, t, lambda like: noise), **close)
print("guidance, DDIM step and DDPM step == the library's GuidedDenoiser, ddim_step, ddpm_step")

# %% [markdown]
# Guidance earns its keep on the classes the model confuses. Below, **Shirt**, easily taken for a
# T-shirt/top, a pullover or a coat: the same eight starting noises in every row, guided at
# **every** step with a growing $w$, up to three times the default. Under each image, the verdict
# of the *judge*, a Fashion-MNIST classifier (notebook 06): green for Shirt, red for what it saw instead.

# %%
judge = load_judge()
ws = [1.0, 2.0, 3.0, 5.0, 10.0, 15.0]
rows = [pipe.generate([6] * 8, guidance=w, guidance_interval=None, seed=3).images for w in ws]
verdicts = {w: predict(judge, images) for w, images in zip(ws, rows)}
fig, axes = plt.subplots(len(ws), 8, figsize=(9, 1.45 * len(ws)))
for r, (w, images) in enumerate(zip(ws, rows)):
    verdict = verdicts[w]
    for c, ax in enumerate(axes[r]):
        ax.imshow(images[c], cmap="gray", vmin=0, vmax=255); ax.set_xticks([]); ax.set_yticks([])
        ax.set_xlabel(CLASS_NAMES[verdict[c]], fontsize=7, color="green" if verdict[c] == 6 else "red")
    axes[r, 0].set_ylabel(f"w = {w:g}\n{(verdict == 6).sum()}/8 Shirt", fontsize=9)
fig.suptitle("'Shirt', guided at every step: one row per w, the same 8 noises in every column")
plt.tight_layout(); plt.show()

shirts = {w: int((v == 6).sum()) for w, v in verdicts.items()}
print("judged Shirt, of 8: " + ", ".join(f"w = {w:g}: {k}" for w, k in shirts.items()))
all_from = next((w for w in ws if all(shirts[v] == 8 for v in ws if v >= w)), None)
print(f"from w = {all_from:g} on, the judge calls all eight shirts" if all_from is not None else
      "at no w from which on all eight are called shirts: some row has a miss even at the strongest guidance")
misses = [CLASS_NAMES[c] for c in verdicts[1.0].tolist() if c != 6]
print("without guidance (w = 1) the misses were judged:", ", ".join(misses) if misses else "none, all eight are shirts")
spread, white = {}, {}
for w, images in zip(ws, rows):
    x = images.float().flatten(1)
    spread[w] = (torch.cdist(x, x).sum() / (8 * 7) / math.sqrt(x.shape[1])).item()   # RMS grey difference, over the pairs
    white[w] = 100 * (images >= 250).float().mean().item()
    print(f"w = {w:4g}: two columns differ by {spread[w]:5.1f} grey levels (RMS, mean over the pairs); "
          f"{white[w]:4.1f} % of the pixels are near white (>= 250)")
print(f"from w = 1 to w = {ws[-1]:g} the columns' spread {'falls' if spread[ws[-1]] < spread[1.0] else 'rises'} "
      f"({spread[1.0]:.1f} -> {spread[ws[-1]]:.1f}) and the near-white share {'grows' if white[ws[-1]] > white[1.0] else 'shrinks'}"
      f" ({white[1.0]:.1f} -> {white[ws[-1]]:.1f} %)")

# %% [markdown]
# Read it column by column: the same noise under stronger guidance, and the lines printed under
# it: how many of the eight the judge calls shirts at each $w$, and what the misses were taken for.
# Once all eight are shirts, more guidance cannot improve the verdict, but it keeps changing the
# images all the same. Look for checks and prints fading, short sleeves growing long, highlights
# burning out (the near-white share printed) and the columns growing alike (their spread
# printed). That is the variety guidance costs, and the judge cannot see it: it asks "is this a
# shirt?", not "are these all the same shirt?" (notebook 06 measures variety). Guiding only the
# middle of the run, as the defaults do, gets the accuracy with less of this.
#
# ## Noise-level editing (SDEdit, Meng et al. 2022)
# Noise a real test image up to level t, then denoise it **as another class**. At small t the
# noisy latent still holds most of the original, at large t only its rough shape (notebook 04's
# $\bar\alpha_t$), and the new class takes over. Under the figure: how far each edit is from the
# original, and what the judge calls it.

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
for t, edit in zip((200, 400, 600, 800), cols[1:]):
    print(f"from t = {t}: {(edit.float() - src.float()).abs().mean():5.1f} grey levels from the original on average, "
          f"judged {CLASS_NAMES[int(predict(judge, edit)[0])]}")

# %% [markdown]
# ## What the model guesses at t = 999
# At every step the UNet's output gives a guess of the final clean latent, $\hat z_0$. Trained by
# mean squared error, the best guess is the average of every clean latent consistent with what
# it sees: the posterior mean $\mathbb E[z_0 \mid z_t, y]$ (notebook 04). At $t = 999$ the state is
# pure noise and says almost nothing, so the guess is the average garment of the class, whatever
# the noise: blurry, like the class averages of notebook 01 (bottom row; the top rows decode an
# average *latent*, which is close to, not the same as, an average image). As t falls, the state
# pins down one garment and the guess sharpens into it. Under the figure: how far apart the two
# noises' first guesses are, against how far apart the garments the two runs finish with are.
# This is the most instructive picture in the slider below: the "predicted final" at step 0.

# %%
classes = list(range(pipe.cfg.num_classes))
done = [pipe.generate(classes, seed=s, return_trajectory=True) for s in (0, 1)]
first_guess = [to_uint8(pipe.decode(run.trajectory["x0"][0])) for run in done]
train_x, train_y = load_fashion_mnist("train", cfg.data_dir)
class_mean = class_means(train_x, train_y, len(classes)).round().to(torch.uint8)   # notebook 01's averages
show(torch.cat([*first_guess, class_mean]), 10, "one column per class: " + ", ".join(CLASS_NAMES),
     ["guess at t = 999,\nnoise 1", "guess at t = 999,\nnoise 2", "real class average"])
gap = lambda p, q: (p.float() - q.float()).abs().mean().item()          # mean grey-level difference
print(f"the two noises' first guesses differ by {gap(*first_guess):.1f} grey levels on average; "
      f"the garments the two runs finish with, by {gap(done[0].images, done[1].images):.1f}; "
      f"a first guess and the class average, by {gap(first_guess[0], class_mean):.1f}")

# %% [markdown]
# ## Sliders: watch one denoising run
# Pick a class, a step of the run, a guidance scale (the library's default to start) and a
# seed (the starting noise). The picture is the decoded state $z_t$ at that step (left) and the
# model's current guess of the final garment, $\hat z_0$ (right). The run takes the default number
# of steps, and guidance acts only inside `DEFAULTS["guidance_interval"]`, so the first steps are
# never guided and their states are the same at every guidance scale (the cell below prints
# which). The caption says, at each step, how many of the steps so far were guided. The slider
# opens at step 0, pure noise: drag it to the right. Under the widget, the same run as a plain
# filmstrip, every other step.
#
# **fast** switches to the distilled student of notebook 07, with the default guidance learned
# into it (so the guidance slider does not apply) and far fewer network passes (printed below).
# Its states are different in kind: at each of its steps it guesses the final garment at once,
# and the next state is that guess noised back to a lower t with fresh noise.

# %% tags=["nbval-check-output"]
lo, hi = DEFAULTS["guidance_interval"]
ts = pipe.schedule.timesteps(DEFAULTS["steps"])[:-1]                 # the teacher's timesteps, without the final -1
first_guided = next(k for k, t in enumerate(ts) if lo <= t <= hi)
print(f"the {len(ts)} steps' timesteps: {ts}")
print(f"{sum(lo <= t <= hi for t in ts)} of them guided (t in [{lo}, {hi}]); the first {first_guided} "
      f"(t = {ts[0]} ... {ts[first_guided - 1]}) are not, so the states up to step {first_guided} are the same at every guidance scale")
teacher, student = pipe.generate([7], seed=6), pipe.generate([7], sampler="distilled", steps=4, seed=6)
print(f"network passes per image, counted: the teacher {teacher.unet_passes} in {teacher.steps} steps, "
      f"the distilled student {student.unet_passes} in {student.steps}")

# %%
import ipywidgets as W

cls_menu = W.Dropdown(options=[(name, c) for c, name in enumerate(CLASS_NAMES)], value=7, description="class")
step_slider = W.IntSlider(value=0, min=0, max=20, description="step")
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

# the plain figure beside the widget: the run it opens with, every other step
states, guesses, run_ts = cache[(cls_menu.value, guide_slider.value, seed_box.value, speed.value)]
shown = list(range(0, len(run_ts), 2))
fig, axes = plt.subplots(2, len(shown), figsize=(1.05 * len(shown), 2.7))
for col, i in zip(axes.T, shown):
    col[0].imshow(states[i], cmap="gray", vmin=0, vmax=255)
    col[1].imshow(guesses[min(i, len(guesses) - 1)], cmap="gray", vmin=0, vmax=255)
    col[0].set_title(f"step {i}\nt = {run_ts[i] if run_ts[i] >= 0 else 'clean'}", fontsize=7)
    for ax in col: ax.set_xticks([]); ax.set_yticks([])
axes[0, 0].set_ylabel("state z_t", fontsize=8); axes[1, 0].set_ylabel("predicted\nfinal", fontsize=8)
fig.suptitle(f"{CLASS_NAMES[cls_menu.value]}, guidance {guide_slider.value:g}, seed {seed_box.value}: "
             "what the widget shows, every other step", fontsize=9)
plt.tight_layout(); plt.show()

# %% [markdown]
# ## Samplers and step counts
# Ancestral DDPM as trained walks all $T = 1000$ timesteps; the same ancestral sampling on a
# 50-step subsequence is DDIM with $\eta = 1$ ("strided DDPM"). DDIM with $\eta = 0$ is deterministic
# and works with any count; DPM-Solver++(2M), notebook 04's second-order solver of the same
# deterministic path, is sharp in few steps. Same starting noise, same classes (one column per
# class), the default guidance. The stochastic samplers add fresh noise at every step, so they can
# land on other garments; the deterministic ones follow nearly the same path (the distances
# printed under the figure say how near). `benchmarks/README.md` scores each on 5,000 samples:
# stochastic sampling works with few steps, but needs more of them for the same quality. The last
# two rows are the distilled student of notebook 07, which has the guidance built in.
#
# What a step costs is network passes: images × UNet calls. A forward hook on the UNet logs the
# batch size of each call. A guided step is *one* call on a doubled batch (each image with its
# class and with the null class), so it costs two passes per image; the hook's numbers are
# checked against the library's own count (`Samples.unet_passes`). The DDPM row makes the most
# calls, so each row has a progress bar.

# %%
runs = [("ddpm", 1000, 0.0), ("ddim", 50, 1.0), ("ddim", 50, 0.0), ("ddim", 10, 0.0),
        ("dpmpp2m", 20, 0.0), ("dpmpp2m", 10, 0.0), ("dpmpp2m", 5, 0.0), ("distilled", 4, 0.0),
        ("distilled", 1, 0.0)]
names = [f"{s} {n}" + (f", η={e:g}" if s == "ddim" else "") for s, n, e in runs]
labels, rows = list(range(pipe.cfg.num_classes)), []

def tick(module, inputs, output):
    calls.append(inputs[0].shape[0])         # this call's batch size; return None: a returned value replaces the output
    bar.update(1)

for (sampler, steps, eta), name in zip(runs, names):
    calls = []
    bar = progress(total=pipe.schedule.T if sampler == "ddpm" else steps, desc=name, mininterval=1)
    unet = pipe.student if sampler == "distilled" else pipe.unet        # notebook 07's student
    hook = unet.register_forward_hook(tick)
    t0 = time.perf_counter()
    result = pipe.generate(labels, sampler=sampler, steps=steps, eta=eta, seed=4)
    seconds = time.perf_counter() - t0
    hook.remove(), bar.close()
    rows.append(result.images)
    passes, doubled = sum(calls) / len(labels), sum(n == 2 * len(labels) for n in calls)
    assert passes == result.unet_passes, (passes, result.unet_passes)     # the hook and the library agree
    print(f"{name:16s}: {len(calls):4d} UNet calls, {doubled:4d} of them on a doubled batch: "
          f"{passes:5g} passes per image; {seconds:6.2f} s for {len(labels)} images")
show(torch.cat(rows), 10, "one column per class, the same starting noise", names)
ref = names.index("dpmpp2m 20")
print(f"mean grey-level difference from the '{names[ref]}' row: " +
      ", ".join(f"{name} {gap(images, rows[ref]):.1f}" for name, images in zip(names, rows) if name != names[ref]))

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
display(GIF("runs/ankle_boot.gif", "an ankle boot: clean, noised step by step, denoised into a new one"))

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
# Shirts are easily confused with T-shirts and coats (the guidance grid above). The same 8 noises
# as "Shirt", as "Shirt, not T-shirt/top" and as "Shirt, not Coat", guided at every step, with the
# judge's verdict under each image; then the same three settings on many more shirts each, counted.

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
# get the noise it would have come from (`samplers.ddim.ddim_invert`: the DDIM step read the other way,
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
# **Exercise 1: guidance on an interval of t, image by image.** The defaults guide only for t in
# `DEFAULTS["guidance_interval"]`, and since every image of a batch is at the same step, the
# sampler decides with one `if` (the `between` cell above). Now let each image of a batch be at
# its own timestep `t[i]` (as in training, or in a batch of SDEdit edits started from different
# t): return the guided output $v_\varnothing + w\,(v_y - v_\varnothing)$ for the images with
# lo ≤ t[i] ≤ hi (both ends included) and the plain conditional output $v_y$ for the others, for
# the whole batch at once (no loop over images). The checker's batch has 5 images of 3 channels
# at 6×7, so a mask that broadcasts along the wrong axis fails.

# %% tags=["nbval-check-output"]
from fmnist_ldm.course.exercises import check_interval_guidance

def my_interval_guidance(v_cond, v_null, t, w, interval):
    """v_cond, v_null [B, C, H, W]; t long [B], one timestep per image; w a float; interval (lo, hi)
    -> [B, C, H, W]: guided where lo <= t <= hi, v_cond elsewhere."""
    raise NotImplementedError   # your code here

check_interval_guidance(my_interval_guidance)

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution", "nbval-check-output"]
#@title Solution (hidden in Jupyter and Colab: click to show)
def interval_guidance(v_cond, v_null, t, w, interval):
    """v_cond, v_null [B, C, H, W]; t long [B], one timestep per image; w a float; interval (lo, hi)
    -> [B, C, H, W]: guided where lo <= t <= hi, v_cond elsewhere."""
    lo, hi = interval
    inside = ((t >= lo) & (t <= hi)).view(-1, 1, 1, 1)               # [B] -> [B, 1, 1, 1]: one switch per image
    return torch.where(inside, v_null + w * (v_cond - v_null), v_cond)


assert check_interval_guidance(interval_guidance)

# %% [markdown]
# **Exercise 2: a gentler inpainting mask.** The inpainting above redraws a latent cell when *any* of
# its 4×4 pixels is masked, so a mask edge that grazes a cell redraws all of it. Write the rule
# that redraws a cell only when *more than half* of its 16 pixels are masked, as a float mask
# shaped [N, 1, H/4, W/4] (1 = redraw) that broadcasts over the latent's channels. Write it for
# any image size made of whole cells: the checker's masks are 24×20 pixels, not 28×28. Try it in
# `Pipeline.inpaint`'s place by hand if you like, with `sample(..., known=, keep=1 - your_mask)`.

# %% tags=["nbval-check-output"]
from fmnist_ldm.course.exercises import check_majority_cells

def my_majority_cells(mask):
    """mask bool [N, H, W], True = redraw, H and W multiples of 4 -> float [N, 1, H/4, W/4], 1 where most of a cell is masked."""
    raise NotImplementedError   # your code here

check_majority_cells(my_majority_cells)

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution", "nbval-check-output"]
#@title Solution (hidden in Jupyter and Colab: click to show)
def majority_cells(mask):
    """mask bool [N, H, W], True = redraw, H and W multiples of 4 -> float [N, 1, H/4, W/4], 1 where most of a cell is masked."""
    share = torch.nn.functional.avg_pool2d(mask[:, None].float(), 4)     # the masked share of each 4x4 cell
    return (share > 0.5).float()


assert check_majority_cells(majority_cells)

# %% [markdown]
# **Exercise 3: one step of DDIM inversion.** `pipe.invert` above runs notebook 04's
# deterministic DDIM step the other way: from the state $x$ at noise level $\bar\alpha$ up to the
# *noisier* level $\bar\alpha_{\text{next}} < \bar\alpha$, holding the model's noise guess
# $\hat\varepsilon$ fixed. Write that step: first find the clean guess $\hat x_0$ that $x$ and
# $\hat\varepsilon$ imply (the forward equation $x = \sqrt{\bar\alpha}\,x_0 + \sqrt{1-\bar\alpha}\,\varepsilon$,
# solved for $x_0$), then put $\hat x_0$ and $\hat\varepsilon$ together again at $\bar\alpha_{\text{next}}$.

# %% tags=["nbval-check-output"]
from fmnist_ldm.course.exercises import check_ddim_invert_step

def my_ddim_invert_step(x, eps_hat, abar, abar_next):
    """x, eps_hat [B, C, H, W]; abar, abar_next floats, abar_next < abar -> the state at abar_next."""
    raise NotImplementedError   # your code here

check_ddim_invert_step(my_ddim_invert_step)

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution", "nbval-check-output"]
#@title Solution (hidden in Jupyter and Colab: click to show)
def ddim_invert_step(x, eps_hat, abar, abar_next):
    """x, eps_hat [B, C, H, W]; abar, abar_next floats, abar_next < abar -> the state at abar_next."""
    x0_hat = (x - math.sqrt(1 - abar) * eps_hat) / math.sqrt(abar)
    return math.sqrt(abar_next) * x0_hat + math.sqrt(1 - abar_next) * eps_hat


assert check_ddim_invert_step(ddim_invert_step)

# %% [markdown]
# ## What we learned
# - `Pipeline.generate` turns classes, a sampler, a step count, a guidance scale and a seed into
#   images; the same seed gives the same images on any device.
# - Classifier-free guidance runs the network with the class and with the null class and moves
#   further along the difference; it trades variety for class fidelity, and too much of it burns
#   out the images and makes them alike. The defaults guide only the middle of the run.
# - The model's guess of the final image starts as the blurry class average, $\mathbb E[z_0 \mid z_t, y]$,
#   and sharpens as the noise falls.
# - A step's cost is network passes, images × UNet calls; a guided step is one call on a doubled
#   batch, two passes per image. Stochastic samplers (DDPM, DDIM with $\eta = 1$) need many steps;
#   deterministic ones (DDIM with $\eta = 0$, DPM-Solver++) far fewer; a distilled student (notebook 07) fewer still.
# - Editing is sampling with something held fixed: a partly noised real image (SDEdit: the noise
#   level decides how much survives), a negative class in place of the unconditional prediction,
#   kept latent cells pasted back at every step (inpainting), spherical paths between noises, and
#   DDIM run backwards to find the noise of a real image (inversion).
#
# ## Check your understanding
# 1. In the slider, why is the "predicted final" at step 0 nearly the same for every seed, while
#    the final image differs from seed to seed?
# 2. Guidance is switched off above the guidance interval by default. Why does that make the first
#    steps of a run identical for every guidance scale, and what does guiding those steps cost (notebook 06)?
# 3. In SDEdit from t = 800 the T-shirt's shape can vanish, from t = 200 it survives. What
#    does the forward process's $\bar\alpha_t$ at those two t say about why?

# %%
from fmnist_ldm.course.notebook import say_elapsed
say_elapsed()
