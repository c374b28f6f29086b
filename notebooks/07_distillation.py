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
# The shipped sampler (notebook 05) walks from pure noise to a garment in 20 steps, some of them
# guided, at two UNet passes each. Here a second UNet, the **student**, learns from recorded runs
# of that sampler, the **teacher**, to draw the same kind of garment in 1 to 8 passes, with the
# guidance built in. This is how current image generators got fast (LCM, SDXL-Turbo: see *Going
# further* at the end).

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
import json
import math
from pathlib import Path
import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display
from torch.testing import assert_close
from fmnist_ldm.data import load_fashion_mnist, to_uint8
from fmnist_ldm.distill import (collect_trajectories, distill_loss, distill_preset, rows_to_markdown,
                                student_recipe, teacher_vs_student, train_student)
from fmnist_ldm.samplers.consistency import Consistency, student_timesteps
from fmnist_ldm.sampling import sample
from fmnist_ldm.metrics import evaluate_samples, load_judge
from fmnist_ldm.course.notebook import notebook_mode, notebook_preset
from fmnist_ldm.pipeline import DEFAULTS, Pipeline
from fmnist_ldm.course.figures import show_grid as show

cfg = notebook_preset()                                   # says the mode (fast on a CPU) and the device
mode, _ = notebook_mode()
dcfg = distill_preset(mode, out_dir=f"runs/notebooks-{mode}/distill")     # this run's distillation recipe
pipe = Pipeline.from_pretrained()                          # the teacher: the shipped UNet and VAE
hand = Pipeline.from_pretrained(device="cpu")              # the same, on the CPU, for the cells by hand
shipped, shipped_times = student_recipe(pipe.model_dir / "student.safetensors")   # how the shipped student was made
S, classes = pipe.schedule, list(range(pipe.cfg.num_classes))
print("teacher:", DEFAULTS)

# %%
from fmnist_ldm.course.diagram import pipeline_diagram
pipeline_diagram("07"); plt.show()

# %% [markdown]
# This notebook changes one box of the map: "UNet removes noise, step by step". Notebooks 04 and 05
# made it work in 20 steps; here it takes 1 to 8. Four ideas:
# 1. **Why a sampler needs many steps**: each UNet pass only *guesses* the clean garment, and a
#    guess from much noise is an average of many garments, a blur.
# 2. **What the student learns**: a run of the teacher is deterministic, so from any state of the
#    run the student can learn to jump straight to where the run ends (eq. 1).
# 3. **Sampling in a few steps**: guess, noise the guess back a little, guess again (eq. 2).
# 4. **Teacher against student, measured**: speed, and quality with notebook 06's measures.
#
# What it uses from before, in one line each:
# - **$v$-prediction** (notebook 04): the UNet outputs $v$, from which its guess of the clean latent is
#   $\hat z_0 = \sqrt{\bar\alpha_t}\, z_t - \sqrt{1-\bar\alpha_t}\, v$.
# - **DDIM** (notebook 04) is the deterministic sampler: no noise is added along the way, so the
#   starting noise fixes the whole run. **DPM-Solver++(2M)** (notebook 05) is a second-order solver of
#   the same deterministic path that needs fewer steps; it is the teacher here.
# - **Classifier-free guidance, CFG** (notebook 05): a guided step runs the UNet twice, with the class
#   and without it, and pushes the guess further towards the class; the teacher guides only in the
#   middle of the run (`DEFAULTS["guidance_interval"]`).
# - **EMA** (notebook 04): training keeps an exponential moving average of the weights, and samples
#   from that average, which is smoother than the last step's weights.
# - **The judge, class accuracy and FID** (notebook 06): the judge is a small Fashion-MNIST
#   classifier; FID is the distance between the statistics of its features on generated and on real
#   images (lower is better), reported minus the FID of real images against real images at the same
#   number of images.

# %% [markdown]
# ## Why many steps were needed
# The teacher with fewer steps, from the same noise (one column per class). With one step, the
# sampler returns the UNet's first guess $\hat z_0 = \mathbb E[z_0 \mid z_{999}, y]$: the *average* of
# every garment of the class that could lie under that noise (notebook 05 showed it beside the class
# averages). Every later guess is an average too, over fewer garments; a sampler needs many small
# steps so that the state can settle on one garment before a guess is trusted. With few large steps
# it lands on averages of averages. Look at how blurred each row is; the cell below measures it with
# a crude sharpness, the mean difference between neighbouring pixels (a blur scores low).

# %%
teacher_steps = [1, 2, 4, 8, 20]
samples = {n: pipe.generate(classes, steps=n, seed=0) for n in teacher_steps}
show(torch.cat([s.images for s in samples.values()]), 10, "the teacher sampler (DPM-Solver++, guided) at 1 to 20 steps",
     [f"teacher, {n} step{'s' * (n > 1)}" for n in teacher_steps])


def sharpness(images):
    """Mean |difference between neighbouring pixels| of uint8 images [B, 28, 28], on [0, 1]."""
    x = images.float() / 255
    return ((x[:, 1:] - x[:, :-1]).abs().mean() + (x[:, :, 1:] - x[:, :, :-1]).abs().mean()).item() / 2


sharp = {n: sharpness(s.images) for n, s in samples.items()}
real_sharp = sharpness(load_fashion_mnist("test")[0][:1000])
print("sharpness per row: " + ", ".join(f"{n} step{'s' * (n > 1)} {v:.3f}" for n, v in sharp.items())
      + f"; real test images {real_sharp:.3f}")
print(f"the blurriest row: {min(sharp, key=sharp.get)} step(s); the sharpest: {max(sharp, key=sharp.get)}. "
      f"The teacher's {DEFAULTS['steps']} steps cost {samples[DEFAULTS['steps']].unet_passes:g} UNet passes per image "
      f"(a guided step costs two).")

# %% [markdown]
# ## What the student learns
# One teacher run of a sneaker: its states $z_t$ at the 4 timesteps a 4-step student will use
# (decoded), then where the run ends (top), and the teacher UNet's own guess from each state
# (bottom). The end is one garment, fixed from the first state on, since the run adds no noise on
# the way. The student learns to go straight there from any state:
#
# $$\mathcal L = \mathbb E_{\text{run},\,k}\,\big\|\, f_\theta(z_{t_k}, t_k, y) - z_0^{\text{run}} \,\big\|^2 \qquad (1)$$
#
# where $f_\theta$ is the student's clean-latent guess, from its $v$ output as in notebook 04:
# $f_\theta = \sqrt{\bar\alpha_t}\, z_t - \sqrt{1-\bar\alpha_t}\, v_\theta$. It starts as a copy of the
# teacher's UNet. The teacher's runs were guided, so the student learns the guided end and needs one
# UNet pass per step. The cell also measures how far the teacher's guess from each state lies from
# where the run ends.

# %%
run = pipe.generate([7], seed=3, return_trajectory=True).trajectory        # the shipped teacher
keep = [run["t"].index(t) for t in student_timesteps(run["t"], 4)]
states = to_uint8(pipe.decode(torch.cat([run["x"][keep, 0], run["x"][-1:, 0]])))
guesses = to_uint8(pipe.decode(torch.cat([run["x0"][keep, 0], run["x"][-1:, 0]])))
show(torch.cat([states, guesses]), 5, "one teacher run: t = " + ", ".join(str(run["t"][k]) for k in keep) + ", end",
     ["state z_t", "teacher's guess"])
miss = [(run["x0"][k, 0] - run["x"][-1, 0]).pow(2).mean().sqrt().item() for k in keep]   # rms, in the latent
print("the teacher's guess from each state, rms distance to the run's end: "
      + ", ".join(f"t = {run['t'][k]}: {m:.3f}" for k, m in zip(keep, miss)))
print("it shrinks at every step shown: the guesses approach the end only late in the run" if
      all(a > b for a, b in zip(miss, miss[1:])) else "it does not shrink at every step shown")

# %% [markdown]
# The student learns from many recorded runs, as many of each class as of unconditional ones
# (the null class of guidance). They are written to disk in chunks, so an interrupted collection
# resumes where it stopped.

# %%
runs = collect_trajectories(pipe, dcfg)
n_labels = pipe.cfg.num_classes + 1
print(f"this {mode} run records {dcfg.runs:,} teacher runs ({dcfg.runs // n_labels:,} per class and as many "
      f"unconditional); the shipped student learned from {shipped.runs:,}")
print(f"{len(runs)} runs, states {tuple(runs.states.shape)} (run, timestep, C, H, W), timesteps {runs.timesteps}")

# %% [markdown]
# Equation (1) by hand, for one batch (one random state of each of 64 runs), checked against the
# library's `distill_loss`, which the training below runs. Before any training the student is the
# teacher, so this is how far the teacher's one-pass guess lands from where its own runs end.

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
# (AdamW, EMA weights as in notebook 04, checkpoints so that it resumes where it stopped). In
# `fast` mode it is a small run for a CPU; the cell prints how small, beside the shipped student's
# recipe (`python -m fmnist_ldm distill`).

# %%
fast_student, hist, timings = train_student(pipe, dcfg)
loss = torch.tensor(hist["loss"])
k = min(25, len(loss) // 4 * 2 + 1)                           # an odd window, drawn at its centre
smooth = torch.nn.functional.avg_pool1d(loss[None], k, 1)[0]
plt.figure(figsize=(7, 3))
plt.plot(loss, alpha=0.3, label="per step")
plt.plot(torch.arange(k // 2, len(loss) - k // 2), smooth, label=f"moving average ({k} steps, centred)")
plt.yscale("log"); plt.xlabel("step"); plt.ylabel("eq. (1)"); plt.legend(); plt.title("distillation loss")
plt.show()
print(f"this {mode} run distilled {dcfg.runs:,} runs for {dcfg.steps:,} steps of batch {dcfg.batch_size} "
      f"(teacher runs {timings['collect_seconds']:.0f} s this session, training {timings['distill_seconds']:.0f} s); "
      f"the shipped student: {shipped.runs:,} runs, {shipped.steps:,} steps of batch {shipped.batch_size} "
      f"({shipped_times['collect_seconds'] / 60:.0f} + {shipped_times['distill_seconds'] / 60:.0f} min on "
      f"{shipped_times['machine']})")
print(f"the moving average of eq. (1) went from {smooth[0]:.4f} to {smooth[-1]:.4f} "
      f"({smooth[-1] / smooth[0]:.0%} of where it started)")

# %% [markdown]
# ## Sampling in a few steps
# The student's guess is meant to be a whole garment already, so one pass from pure noise gives an
# image: the one-step sampler, by hand with the shipped student, checked against the library's.
#
# How the library runs it: every sampler goes through one loop, `sample(denoise, schedule, x,
# sampler, steps)` (notebook 04 ran it with DDPM and DDIM by name). `denoise(z, t)` returns the
# network's guess $(\hat z_0, \hat\varepsilon)$; here it is `f`, the student's $v$ turned into that
# guess by `S.split`, notebook 04's $v \to (\hat z_0, \hat\varepsilon)$. The sampler object says which
# timesteps to visit and what one step does: `Consistency`, the student's sampler (in
# `fmnist_ldm/samplers/consistency.py`, one file beside DDPM's, DDIM's and DPM-Solver++'s), visits
# `steps` of the teacher's timesteps, `teacher_timesteps`, which the student's weights file records
# (`hand.student_timesteps`).

# %% tags=["nbval-check-output"]
y = torch.tensor(classes)
noise = [torch.randn(10, *hand.shape, generator=torch.Generator().manual_seed(i)) for i in range(4)]
f = lambda z, t: S.split(hand.student(z, torch.full((10,), t), y), z, torch.full((10,), t), hand.cfg.prediction)
with torch.no_grad():
    one_step = f(noise[0], 999)[0]                                 # one pass from pure noise at t = 999
    assert_close(one_step, sample(f, S, noise[0], Consistency(S, teacher_timesteps=hand.student_timesteps), steps=1))
print("one step by hand == the library's Consistency sampler at one step")

# %% [markdown]
# With more steps (Song et al. 2023, Algorithm 1), the sampler noises the guess back to a lower
# timestep with *fresh* noise, and guesses again:
#
# $$z_{t} = \sqrt{\bar\alpha_{t}}\,\hat z_0 + \sqrt{1-\bar\alpha_{t}}\,\varepsilon,\quad \varepsilon\sim\mathcal N(0, I);\qquad \hat z_0 = f_\theta(z_{t}, t, y) \qquad (2)$$
#
# Each new state is less noisy than the last, so the student sees more of its previous guess each
# time. Whether it then refines that garment or draws another one, and whether more steps help at
# all, is measured below, not assumed. The timesteps are the teacher's (the only ones the student
# was trained on), spread evenly by `student_timesteps`. The second argument of `Consistency` is
# where eq. (2)'s fresh noise comes from: here a function that hands out `noise[1]`, `noise[2]`,
# `noise[3]` in turn (`noise[0]` is the start). The library's sampler at 4 steps, one garment per
# class: the states it visits (top) and its guess from each (bottom). You write this loop yourself
# in Exercise 1.

# %%
ts = student_timesteps(hand.student_timesteps, 4)
fresh = iter(noise[1:])
with torch.no_grad():
    student = Consistency(S, lambda like: next(fresh), teacher_timesteps=hand.student_timesteps)
    last, trace = sample(f, S, noise[0], student, steps=4, return_trajectory=True)
sneaker = classes.index(7)
show(to_uint8(hand.decode(torch.cat([trace["x"][:len(ts), sneaker], trace["x0"][:, sneaker]]))), len(ts),
     "the shipped student, 4 steps, a sneaker: t = " + ", ".join(map(str, ts)), ["state z_t", "student's guess"])
change = [(b - a).pow(2).mean().sqrt().item() for a, b in zip(trace["x0"][:-1], trace["x0"][1:])]
print(f"the 4-step student visits t = {ts}; rms change of its guess (all 10 classes) from one step to the next: "
      + ", ".join(f"{c:.3f}" for c in change))

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
# run and scored by the judge of notebook 06: class accuracy, and FID − real-vs-real, computed by
# `metrics.evaluate_samples`, the same measure notebook 06 reports (the same real images at the same
# n, so the same samples score the same in both notebooks). A GPU (`full`) scores 5,000 images per
# row, as the benchmark does; a CPU fewer (the cell prints how many). Each row is printed as it is
# done; the whole table takes a few minutes on a CPU.

# %%
judge = load_judge()
table = teacher_vs_student(pipe, judge, n_per_class=500 if mode == "full" else 200, progress=True)
display(Markdown(rows_to_markdown(table)))


def read_table(rows):
    """What a teacher_vs_student table says, in sentences read from its rows."""
    student = {r["steps"]: r for r in rows if r["model"] == "student"}
    teacher = {r["steps"]: r for r in rows if r["model"] == "teacher"}
    gap = {n: r["fid_minus_real"] for n, r in student.items()}
    best, most = min(gap, key=gap.get), max(student)
    steps = sorted(gap)
    falls = all(gap[a] > gap[b] for a, b in zip(steps, steps[1:]))
    t20, s4 = teacher[DEFAULTS["steps"]], student[4]
    return "\n".join([
        f"n = {s4['n']:,} images per row. Student, FID - real-vs-real by steps: "
        + ", ".join(f"{n}: {gap[n]:.2f}" for n in steps) + f"; lowest at {best} step{'s' * (best > 1)}.",
        "Every added step lowered it." if falls else
        f"More steps do not always help: {most} steps score {gap[most]:.2f}, "
        f"{'worse' if gap[most] > gap[1] else 'better'} than 1 step's {gap[1]:.2f}.",
        f"At 4 steps the student scores {s4['fid_minus_real']:.2f} against the teacher's {teacher[4]['fid_minus_real']:.2f} "
        f"at 4 steps and {t20['fid_minus_real']:.2f} at its {DEFAULTS['steps']} "
        f"(class accuracy {s4['accuracy']:.1%} against {t20['accuracy']:.1%}), "
        f"making {s4['images_per_s'] / t20['images_per_s']:.1f}x the teacher's images per second."])


print(read_table(table))

# %% [markdown]
# The table measured the shipped student. The one trained in this notebook, at 4 steps, on the
# same classes and seed:

# %%
labels = [c for c in classes for _ in range(table[0]["n"] // len(classes))]
mine = evaluate_samples(fast_pipe.generate(labels, sampler="distilled", steps=4, seed=0).images, labels, judge)
shipped4 = next(r for r in table if r["model"] == "student" and r["steps"] == 4)
print(f"this {mode} run's student ({dcfg.runs:,} runs, {dcfg.steps:,} steps): FID - real-vs-real "
      f"{mine['fid_minus_real']:.2f}, class accuracy {mine['accuracy']:.1%}; the shipped student "
      f"({shipped.runs:,} runs, {shipped.steps:,} steps): {shipped4['fid_minus_real']:.2f} and {shipped4['accuracy']:.1%}")

# %% [markdown]
# The shipped numbers, at n = 5,000 on the machine named there, from `python benchmarks/benchmark.py
# distill`, read by the same code:

# %%
shipped_md, shipped_json = Path("../benchmarks/distill.md"), Path("../benchmarks/distill.json")
if shipped_md.exists() and shipped_json.exists():
    display(Markdown(shipped_md.read_text()))
    print(read_table(json.loads(shipped_json.read_text())["rows"]))
else:
    print("(run `python benchmarks/benchmark.py distill` to make benchmarks/distill.md and distill.json)")

# %% [markdown]
# ## Your turn
# Write each function below where it says so, then run its cell: the checker compares it with
# the library's own implementation on a few inputs and says what is wrong if it is. The
# solution is in the hidden cell under each exercise (click to show it); it runs, and is checked, too.

# %% [markdown]
# **Exercise 1: The sampling loop.** Above, the one-step sampler was written by hand and the
# 4-step one called from the library. Write the loop of eq. (2) for any number of steps: the first
# guess from the pure noise at the first timestep, then, for each later timestep, noise the guess
# back to it and guess again; return the last guess. `denoise(z, t)` is the student's guess
# $\hat z_0$ from a state `z` at timestep `t` (an int), `abar(t)` is $\bar\alpha_t$ (a float), and
# `noise` is a list: `noise[0]` the pure noise at `timesteps[0]`, `noise[k]` the fresh noise of step `k`.

# %% tags=["nbval-check-output"]
from fmnist_ldm.course.exercises import check_consistency_sampling

def my_consistency_sampling(denoise, abar, noise, timesteps):
    """noise: a list of len(timesteps) tensors [B, C, H, W] -> the last guess z0_hat [B, C, H, W]."""
    raise NotImplementedError   # your code here

check_consistency_sampling(my_consistency_sampling)

# %% tags=["solution", "nbval-check-output"] cellView="form" jupyter={"source_hidden": true}
#@title Solution (hidden in Jupyter and Colab: click to show)
def consistency_sampling(denoise, abar, noise, timesteps):
    """noise: a list of len(timesteps) tensors [B, C, H, W] -> the last guess z0_hat [B, C, H, W]."""
    z0_hat = denoise(noise[0], timesteps[0])                        # one pass from pure noise
    for t, eps in zip(timesteps[1:], noise[1:]):
        z_t = math.sqrt(abar(t)) * z0_hat + math.sqrt(1 - abar(t)) * eps   # eq. (2): back up to t
        z0_hat = denoise(z_t, t)                                     # and guess again
    return z0_hat


assert check_consistency_sampling(consistency_sampling)

# %% [markdown]
# **Exercise 2: Which $v$ lands on the end?** The student outputs $v$, and eq. (1) scores its guess
# $\sqrt{\bar\alpha_t}\,z_t - \sqrt{1-\bar\alpha_t}\,v$. Write the $v^*$ that would make that guess
# exactly the run's end $z_0^{\text{run}}$. (With it, eq. (1) is
# $(1-\bar\alpha_t)\,\|v_\theta - v^*\|^2$: notebook 04's $v$-regression with a new target, weighted by
# $1-\bar\alpha_t$; Check your understanding asks what that weight does.)

# %% tags=["nbval-check-output"]
from fmnist_ldm.course.exercises import check_v_target

def my_v_target(z_t, abar_t, z_end):
    """z_t, z_end [B, C, H, W]; abar_t [B, 1, 1, 1] -> v* [B, C, H, W]."""
    raise NotImplementedError   # your code here

check_v_target(my_v_target)

# %% tags=["solution", "nbval-check-output"] cellView="form" jupyter={"source_hidden": true}
#@title Solution (hidden in Jupyter and Colab: click to show)
def v_target(z_t, abar_t, z_end):
    """z_t, z_end [B, C, H, W]; abar_t [B, 1, 1, 1] -> v* [B, C, H, W]."""
    # z_end = sqrt(abar) z_t - sqrt(1 - abar) v, solved for v
    return (abar_t.sqrt() * z_t - z_end) / (1 - abar_t).sqrt()


assert check_v_target(v_target)

# %% [markdown]
# **Exercise 3: How consistent is a student?** A *consistency function* gives the same answer from
# every state of one run, so its guesses from two neighbouring states of a run should agree.
# Consistency distillation (Song et al. 2023) trains on exactly that gap; our student learned eq. (1)
# instead, which, if met, makes the gap zero too. Measure it: for each pair of neighbouring states
# $k, k+1$ of the runs, the mean squared difference between the guesses
# `denoise(states[:, k], timesteps[k])` and `denoise(states[:, k + 1], timesteps[k + 1])`, averaged
# over runs, channels and pixels. `states` is [runs, S + 1, C, H, W] like `runs.states` above: S
# states, then the run's end (timestep −1, nothing to guess from).

# %% tags=["nbval-check-output"]
from fmnist_ldm.course.exercises import check_consistency_gap

def my_consistency_gap(denoise, states, timesteps):
    """states [R, S + 1, C, H, W]; timesteps S + 1 ints ending with -1 -> [S - 1], one per pair."""
    raise NotImplementedError   # your code here

check_consistency_gap(my_consistency_gap)

# %% tags=["solution", "nbval-check-output"] cellView="form" jupyter={"source_hidden": true}
#@title Solution (hidden in Jupyter and Colab: click to show)
def consistency_gap(denoise, states, timesteps):
    """states [R, S + 1, C, H, W]; timesteps S + 1 ints ending with -1 -> [S - 1], one per pair."""
    guesses = torch.stack([denoise(states[:, k], t) for k, t in enumerate(timesteps[:-1])], dim=1)
    return ((guesses[:, 1:] - guesses[:, :-1]) ** 2).mean(dim=(0, 2, 3, 4))   # [R, S-1, C, H, W] -> [S-1]


assert check_consistency_gap(consistency_gap)

# %% [markdown]
# ## Going further
# **Why this way of distilling.** A teacher run is deterministic, so we record whole runs and train
# the student to answer one question from any state of a run: *where does this run end?* That is
# knowledge distillation (Luhman & Luhman 2021) asked at every noise level, which makes the student
# a consistency function (Song et al. 2023), learned by plain regression on the run's true end
# instead of consistency distillation's bootstrap (Exercise 3's gap, with the guess from the next
# state as the target). We chose it because our teacher is cheap to run whole: progressive
# distillation (Salimans & Ho 2022; Meng et al. 2023 for guidance) needs several rounds of
# training, each halving the steps, and consistency distillation needs an EMA target network and
# many more training steps to converge; here there is one stage, and one student serves every
# step count from 1 to 20. Latent consistency models (LCM, Luo et al. 2023) distil Stable Diffusion
# this way, guidance folded in as here; SDXL-Turbo adds an adversarial loss (like notebook 02's
# sharper decoder) to reach 1 to 4 steps. The code is `fmnist_ldm/distill.py`, the equations beside it.

# %% [markdown]
# ## What we learned
# - A sampler needs many steps because each UNet guess is an average; a run of the teacher, though,
#   ends on one garment that its first state already fixes.
# - A student that learns where the teacher's runs end (eq. 1) draws a garment in one pass; noising
#   its guess back and guessing again (eq. 2) lets it spend more passes, and the table above says
#   whether, and up to how many, they paid off.
# - The guidance is learned too: the teacher's runs were guided, so the student needs one UNet
#   pass per step instead of two.
# - Distillation costs teacher runs (recorded once) and one short training stage; the student keeps
#   the teacher's architecture, so it loads and samples like any UNet.
# - Its quality is measured with notebook 06's FID − real-vs-real, so the two notebooks' numbers
#   can be compared directly.
#
# ## Check your understanding
# 1. Why does the student's single step give a garment, while the teacher's single step gives the
#    class average, although both start as the same network?
# 2. The student was trained only on states from the teacher's runs. In eq. (2) it sees states made
#    from its *own* guesses, with noise the teacher never drew. Why can that make extra steps cost
#    quality instead of adding it?
# 3. Exercise 2 showed eq. (1) as a $v$-regression weighted by $1-\bar\alpha_t$. At which timesteps
#    does that weight make the student's errors in $v$ cheap, and why is that harmless there?

# %%
from fmnist_ldm.course.notebook import say_elapsed
say_elapsed()
