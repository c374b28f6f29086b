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
# # 07 · Four steps instead of twenty: distilling the sampler
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/fmnist-ldm/fmnist-ldm/blob/main/notebooks/07_distillation.ipynb)
#
# *In Colab, pick a GPU first: Runtime → Change runtime type → GPU. The first cell then fetches the
# course and its shipped weights; on a GPU the notebooks train the `full` recipe, on a CPU the
# small `fast` one, and each says which before it trains.*
#
# The shipped sampler (notebook 05) takes 20 DPM-Solver++ steps, 8 of them guided, so one image
# costs 28 UNet passes. Current systems do not sample like this any more: SDXL-Turbo and LCM
# *distil* most of the steps, and the guidance, away. Here a **student** UNet learns, from runs of
# that **teacher** sampler, to draw the same kind of garment in 1–8 passes, with the guidance built in.
#
# **The method.** A teacher run is deterministic: its starting noise fixes every state it visits
# and where it ends. So we record whole runs and train the student to answer one question from
# any state of a run: *where does this run end?* That is knowledge distillation (Luhman & Luhman
# 2021) asked at every noise level, which makes the student a *consistency function* (Song et al.
# 2023), learned by plain regression on the run's true end instead of consistency distillation's
# one-step bootstrap. We chose it over the alternatives because our teacher is cheap to run whole:
# progressive distillation (Salimans & Ho 2022; Meng et al. 2023 for guidance) needs
# log₂(20) ≈ 4 rounds of training, each halving the steps, and consistency distillation needs an
# EMA target network and many more steps to converge; here there is one stage, and one student
# serves every step count from 1 to 20. The code is `fmnist_ldm/distill.py`, the equations beside it.

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
import math
from pathlib import Path
import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display
from torch.testing import assert_close
from fmnist_ldm.data import to_uint8
from fmnist_ldm.distill import (collect_trajectories, distill_loss, distill_preset, rows_to_markdown,
                                teacher_vs_student, train_student)
from fmnist_ldm.sampling import consistency_sample, student_timesteps
from fmnist_ldm.metrics import load_judge
from fmnist_ldm.notebook import notebook_mode, notebook_preset
from fmnist_ldm.pipeline import DEFAULTS, Pipeline
from fmnist_ldm.viz import show_grid as show

cfg = notebook_preset()                                   # says the mode (fast on a CPU) and the device
mode, _ = notebook_mode()
dcfg = distill_preset(mode, out_dir=f"runs/notebooks-{mode}/distill")
pipe = Pipeline.from_pretrained()                          # the teacher: the shipped UNet and VAE
hand = Pipeline.from_pretrained(device="cpu")              # the same, on the CPU, for the cells by hand
S, classes = pipe.schedule, list(range(pipe.cfg.num_classes))
print("teacher:", DEFAULTS)

# %% [markdown]
# ## Why many steps were needed
# The teacher with fewer steps, from the same noise (one column per class). With one step, the
# sampler returns the UNet's first guess $\hat z_0 = \mathbb E[z_0 \mid z_{999}, y]$: the *average* of
# every garment of the class that could lie under that noise, a blur (notebook 05 showed it beside
# the class averages). Every later guess is an average too, over fewer garments; a sampler needs many
# small steps so that the state can settle on one garment before a guess is trusted. With few large
# steps it lands on averages of averages.

# %%
teacher_steps = [1, 2, 4, 8, 20]
rows = [pipe.generate(classes, steps=n, seed=0).images for n in teacher_steps]
show(torch.cat(rows), 10, "the teacher sampler (DPM-Solver++, guided) at 1 to 20 steps",
     [f"teacher, {n} step{'s' * (n > 1)}" for n in teacher_steps])

# %% [markdown]
# ## What the student learns
# One teacher run of a sneaker: its states $z_t$ at the 4 timesteps the 4-step student will use
# (decoded), then where the run ends (top), and the teacher UNet's own guess from each state (bottom).
# The guesses are averages that sharpen late; the end is one garment, fixed from the first state on.
# The student learns to go straight there:
#
# $$\mathcal L = \mathbb E_{\text{run},\,k}\,\big\|\, f_\theta(z_{t_k}, t_k, y) - z_0^{\text{run}} \,\big\|^2 \qquad (1)$$
#
# where $f_\theta$ is the student's clean-latent guess, from its $v$ output as in notebook 04:
# $f_\theta = \sqrt{\bar\alpha_t}\, z_t - \sqrt{1-\bar\alpha_t}\, v_\theta$. It starts as a copy of the
# teacher's UNet. The teacher's runs were guided (5 for t in [300, 700]), so the student learns the
# guided end and needs one UNet pass per step.

# %%
run = pipe.generate([7], seed=3, return_trajectory=True).trajectory        # the shipped teacher
keep = [run["t"].index(t) for t in student_timesteps(run["t"], 4)]
states = to_uint8(pipe.decode(torch.cat([run["x"][keep, 0], run["x"][-1:, 0]])))
guesses = to_uint8(pipe.decode(torch.cat([run["x0"][keep, 0], run["x"][-1:, 0]])))
show(torch.cat([states, guesses]), 5, "one teacher run: t = " + ", ".join(str(run["t"][k]) for k in keep) + ", end",
     ["state z_t", "teacher's guess"])

# %% [markdown]
# The student learns from many recorded runs: in `fast` mode (a CPU) 1,100 of them, 100 per class
# and 100 unconditional; the shipped student learned from 33,000. They are written to disk in chunks,
# so an interrupted collection resumes.

# %%
runs = collect_trajectories(pipe, dcfg)
print(f"{len(runs)} runs, states {tuple(runs.states.shape)} (run, timestep, C, H, W), timesteps {runs.timesteps}")

# %% [markdown]
# Equation (1) by hand, for one batch, checked against the library's `distill_loss`, which the
# training below runs. Before any training the student is the teacher, so this is how far the
# teacher's one-pass guess lands from where its own runs end.

# %%
student = copy.deepcopy(hand.unet)                           # the starting point: a copy of the teacher
idx = torch.arange(64)
z_t, t, y, z_end = runs.batch(idx, torch.Generator().manual_seed(0))
with torch.no_grad():
    v = student(z_t, t, y).float()
    a = S.abar(t, z_t)
    z0_hat = a.sqrt() * z_t - (1 - a).sqrt() * v              # the student's guess of the end
    loss = ((z0_hat - z_end) ** 2).mean()                      # eq. (1)
    library = distill_loss(student, S, pipe.cfg.prediction, runs)(idx, torch.Generator().manual_seed(0))
assert_close(loss, library)
print(f"eq. (1) for the untrained student: {loss:.4f}")

# %% [markdown]
# ## Training
# `train_student` copies the teacher's UNet and fits eq. (1) with the library's one training loop
# (AdamW, EMA weights, atomic checkpoints: it resumes where it stopped). In `fast` mode it takes a
# couple of minutes on a CPU; the shipped student trained 2,500 steps on 33,000 runs
# (`python -m fmnist_ldm distill`, times in `model/README.md`).

# %%
fast_student, hist, timings = train_student(pipe, dcfg)
loss = torch.tensor(hist["loss"])
k = min(25, len(loss) // 4 * 2 + 1)                           # an odd window, drawn at its centre
plt.figure(figsize=(7, 3))
plt.plot(loss, alpha=0.3, label="per step")
plt.plot(torch.arange(k // 2, len(loss) - k // 2), torch.nn.functional.avg_pool1d(loss[None], k, 1)[0],
         label=f"moving average ({k} steps, centred)")
plt.yscale("log"); plt.xlabel("step"); plt.ylabel("eq. (1)"); plt.legend(); plt.title("distillation loss")
plt.show()
print(f"teacher runs {timings['collect_seconds']:.0f} s (this session), distillation {timings['distill_seconds']:.0f} s")

# %% [markdown]
# ## Sampling in a few steps
# The student's guess is already a whole garment, so one pass from pure noise gives an image. More
# steps refine it (Song et al. 2023, Algorithm 1): noise the guess back to a lower timestep with
# fresh noise, and guess again:
#
# $$z_{t} = \sqrt{\bar\alpha_{t}}\,\hat z_0 + \sqrt{1-\bar\alpha_{t}}\,\varepsilon,\quad \varepsilon\sim\mathcal N(0, I);\qquad \hat z_0 = f_\theta(z_{t}, t, y) \qquad (2)$$
#
# The timesteps are the teacher's, spread evenly: 4 steps visit t = 999, 749, 499, 249. By hand
# with the shipped student, checked against the library's `consistency_sample`:

# %%
y = torch.tensor(classes)
ts = student_timesteps(runs.timesteps, 4)
noise = [torch.randn(10, *hand.shape, generator=torch.Generator().manual_seed(i)) for i in range(4)]
f = lambda z, t: S.split(hand.student(z, torch.full((10,), t), y), z, torch.full((10,), t), hand.cfg.prediction)
with torch.no_grad():
    z0_hat = f(noise[0], ts[0])[0]                                  # one pass from pure noise
    for t, eps in zip(ts[1:], noise[1:]):
        z_t = math.sqrt(S.abar_at(t)) * z0_hat + math.sqrt(1 - S.abar_at(t)) * eps   # eq. (2)
        z0_hat = f(z_t, t)[0]
    fresh = iter(noise[1:])
    library = consistency_sample(f, S, noise[0], ts, lambda like: next(fresh))
assert_close(z0_hat, library)
print("multistep consistency sampling by hand == fmnist_ldm.sampling.consistency_sample")

# %% [markdown]
# ## Teacher against student
# The same starting noise for every row. The shipped student (from `model/student.safetensors`)
# at 1, 2, 4 and 8 steps, then the one just trained here at 4, beside the teacher at 4 and at its 20.

# %%
fast_pipe = Pipeline.from_pretrained()                    # the teacher again, with this run's student
fast_pipe.set_student(fast_student, runs.timesteps)
rows = [pipe.generate(classes, sampler="distilled", steps=n, seed=0).images for n in (1, 2, 4, 8)]
rows.append(fast_pipe.generate(classes, sampler="distilled", steps=4, seed=0).images)
rows += [pipe.generate(classes, steps=n, seed=0).images for n in (4, 20)]
show(torch.cat(rows), 10, "one column per class, the same starting noise",
     ["student, 1 step", "student, 2 steps", "student, 4 steps", "student, 8 steps",
      f"this run's student\n({mode}), 4 steps", "teacher, 4 steps", "teacher, 20 steps"])

# %% [markdown]
# Now measured: both samplers at each step count, on the same classes and seed, timed in this one
# run and scored by the judge of notebook 06 (class accuracy, and FID − the real-vs-real FID at the
# same n). In `fast` mode, 2,000 images per row (about 4 minutes on a 2-core CPU; each row is printed
# as it is done); a GPU (`full`) scores 5,000, as the benchmark does.

# %%
judge = load_judge()
table = teacher_vs_student(pipe, judge, n_per_class=500 if mode == "full" else 200, progress=True)
display(Markdown(rows_to_markdown(table)))
teacher = next(r for r in table if r["model"] == "teacher" and r["steps"] == DEFAULTS["steps"])
four = next(r for r in table if r["model"] == "student" and r["steps"] == 4)
print(f"student at 4 steps: {four['images_per_s'] / teacher['images_per_s']:.1f}x the teacher's images/s, "
      f"FID - real-vs-real {four['fid_minus_real']:.2f} against the teacher's {teacher['fid_minus_real']:.2f}")

# %% [markdown]
# The shipped numbers, at n = 5,000 on the machine named there, from `python benchmarks/benchmark.py distill`:

# %%
shipped = Path("../benchmarks/distill.md")
display(Markdown(shipped.read_text() if shipped.exists() else "(run the benchmark to make benchmarks/distill.md)"))

# %% [markdown]
# ## Your turn
# Write each function below where it says so, then run its cell: the checker compares it with
# the library's own implementation on a few inputs and says what is wrong if it is. The
# solution is in the hidden cell under each exercise (click to show it); it runs, and is checked, too.

# %% [markdown]
# **Exercise 1: Back up to timestep t.** Between two guesses, the sampler noises the student's
# guess $\hat z_0$ back to the next timestep with fresh noise, eq. (2):
# $z_t = \sqrt{\bar\alpha_t}\,\hat z_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon$.

# %%
from fmnist_ldm.exercises import check_renoise

def my_renoise(z0_hat, abar_t, noise):
    """z0_hat, noise [B, C, H, W]; abar_t a float -> the state z_t."""
    raise NotImplementedError   # your code here

check_renoise(my_renoise)

# %% tags=["solution"] cellView="form" jupyter={"source_hidden": true}
#@title Solution (hidden in Jupyter and Colab: click to show)
def renoise(z0_hat, abar_t, noise):
    """z0_hat, noise [B, C, H, W]; abar_t a float -> the state z_t."""
    return math.sqrt(abar_t) * z0_hat + math.sqrt(1 - abar_t) * noise


assert check_renoise(renoise)

# %% [markdown]
# **Exercise 2: The distillation loss.** The student outputs $v$; eq. (1) compares its clean guess
# $\sqrt{\bar\alpha_t}\,z_t - \sqrt{1-\bar\alpha_t}\,v$ with where the teacher's run ended, by the mean
# squared error.

# %%
from fmnist_ldm.exercises import check_distill_loss

def my_distill_loss(v_student, z_t, abar_t, z_end):
    """v_student, z_t, z_end [B, C, H, W]; abar_t [B, 1, 1, 1] -> a scalar loss."""
    raise NotImplementedError   # your code here

check_distill_loss(my_distill_loss)

# %% tags=["solution"] cellView="form" jupyter={"source_hidden": true}
#@title Solution (hidden in Jupyter and Colab: click to show)
def distill_loss_by_hand(v_student, z_t, abar_t, z_end):
    """v_student, z_t, z_end [B, C, H, W]; abar_t [B, 1, 1, 1] -> a scalar loss."""
    z0_hat = abar_t.sqrt() * z_t - (1 - abar_t).sqrt() * v_student
    return ((z0_hat - z_end) ** 2).mean()


assert check_distill_loss(distill_loss_by_hand)

# %% [markdown]
# ## What we learned
# - A sampler needs many steps because each UNet guess is an average; a run of the teacher, though,
#   ends on one garment that its first state already fixes.
# - A student that learns where the teacher's runs end (eq. 1) draws a garment in one pass; noising
#   its guess back and guessing again (eq. 2) sharpens it in 2–4 more.
# - The guidance is learned too: the teacher's runs were guided, so the student needs one UNet
#   pass per step instead of two.
# - Distillation costs teacher runs (recorded once) and one short training stage; the student keeps
#   the teacher's architecture, so it loads and samples like any UNet.
#
# ## Check your understanding
# 1. Why does the student's single step give a garment, while the teacher's single step gives the
#    class average, although both start as the same network?
# 2. The student was trained only on states from the teacher's runs. In eq. (2) it sees states made
#    from its *own* guesses. Why are those still like the states it was trained on?
# 3. The student learned the teacher at guidance 5. What would you change to give it a guidance
#    slider (Meng et al. 2023)?
