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
# # 06 · Measuring a generative model: the judge, FID, KID, class accuracy
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/fmnist-ldm/fmnist-ldm/blob/main/notebooks/06_evaluation.ipynb)
#
# *In Colab, pick a GPU first: Runtime → Change runtime type → GPU. The first cell then fetches the
# course and its shipped weights; on a GPU the notebooks train the `full` recipe, on a CPU the
# small `fast` one, and each says which before it trains.*
#
# "The samples look good" is not a measurement. This notebook scores the **shipped weights** the
# way `python -m fmnist_ldm evaluate`, notebook 07 and `benchmarks/benchmark.py` do.

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
import math
from pathlib import Path
import matplotlib.pyplot as plt
import torch
from torchmetrics.functional.classification import multiclass_confusion_matrix
from torchvision.transforms.functional import gaussian_blur
from fmnist_ldm.course.notebook import notebook_mode, notebook_preset
from fmnist_ldm.data import CLASS_NAMES, load_fashion_mnist
from fmnist_ldm.metrics import (REPORTED_N, class_accuracy, evaluate_samples, evaluation_draw, fid_infinity, fid_kid,
                                fid_over_n, judge_features, load_judge, memorisation, nearest_neighbours,
                                precision_recall, predict)
from fmnist_ldm.pipeline import Pipeline
from fmnist_ldm.course.figures import tile

cfg = notebook_preset()

# %%
from fmnist_ldm.course.diagram import pipeline_diagram
pipeline_diagram("06"); plt.show()

# %% [markdown]
# This notebook is the last box: the judge. What it teaches:
#
# 1. **A judge that knows the data.** Every score here is computed by a small Fashion-MNIST
#    classifier, from its verdicts or from its features.
# 2. **FID and KID, each beside references.** A score means something only next to what real
#    images, damaged images and the VAE's reconstructions score, at the same number of images n,
#    because FID changes with n.
# 3. **Class accuracy, and what guidance costs in variety.** Precision, recall, density and
#    coverage split "do the samples look real?" from "is every kind of real garment drawn?".
# 4. **Does the model copy its training set?** None of the scores above can tell; a
#    nearest-neighbour check can.
#
# The samples are drawn with notebook 05's defaults: the DPM-Solver++ sampler, 20 steps, and
# classifier-free guidance (scale w = 5, for t in [300, 700]), which pushes each sample towards its
# class (all three: notebook 05).

# %%
N = 2000 if notebook_mode()[0] == "fast" else 5000    # images per set, as in the benchmarks (5,000)
pipe, judge = Pipeline.from_pretrained(), load_judge()      # the best device here: used only through the library
test_x, test_y = load_fashion_mnist("test")
train_x, _ = load_fashion_mnist("train")
classes = [c for c in range(pipe.cfg.num_classes) for _ in range(N // pipe.cfg.num_classes)]
samples = pipe.generate(classes, seed=0)                     # the defaults
print(f"{notebook_mode()[0]} mode: {len(samples.images):,} samples, {N // pipe.cfg.num_classes} per class")

# %% [markdown]
# ## The judge
# FID was defined on the features of Inception-v3, an ImageNet classifier. Its features mean
# little for 28×28 grey clothing, so here the "judge" is a small CNN trained on the real
# Fashion-MNIST training set (`python -m fmnist_ldm train-judge`, `model/judge.safetensors`).
# Its 256 penultimate features (the layer before its class scores) are the space FID and KID are
# computed in; its predictions say whether a sample of class *y* looks like class *y*. First: how
# good a judge is it?

# %%
acc = class_accuracy(judge, test_x, test_y)
print(f"judge accuracy on the {len(test_x):,} real test images: {acc['accuracy']:.2%}")
confusion = multiclass_confusion_matrix(predict(judge, test_x), test_y, num_classes=len(CLASS_NAMES), normalize="true")
plt.figure(figsize=(5.5, 4.5))
plt.imshow(confusion, cmap="Blues")
plt.xticks(range(len(CLASS_NAMES)), CLASS_NAMES, rotation=60, ha="right"); plt.yticks(range(len(CLASS_NAMES)), CLASS_NAMES)
plt.xlabel("judge says"); plt.ylabel("true class"); plt.colorbar(); plt.title("judge on real test images")
plt.show()
weakest = sorted(acc["per_class_accuracy"], key=acc["per_class_accuracy"].get)[:4]
print("the judge's four weakest classes on real images: "
      + ", ".join(f"{CLASS_NAMES[c]} ({acc['per_class_accuracy'][c]:.1%})" for c in weakest))

# %% [markdown]
# The upper-body garments (shirt, T-shirt, pullover, coat) are where even a good classifier
# hesitates (the printout names the weakest four): a sample accuracy below the others in those
# classes is partly the judge's.
#
# ## FID and KID
# **FID** (Fréchet Inception Distance, Heusel et al. 2017) says how far apart two image sets are:
# it fits a Gaussian to each set's features and measures the distance between the two Gaussians
# (0 = the same statistics; lower is better):
#
# $$\mathrm{FID} = \lVert\mu_r-\mu_g\rVert^2 + \operatorname{Tr}\!\big(\Sigma_r+\Sigma_g-2(\Sigma_r\Sigma_g)^{1/2}\big)$$
#
# with $\mu$ the mean and $\Sigma$ the covariance of the 256 judge features, $r$ real and $g$ generated.
#
# **KID** (Kernel Inception Distance, Bińkowski et al. 2018) asks the same question without the
# Gaussian: it compares the two sets through a kernel, a similarity $k(x, y)$ of two feature
# vectors (here $(x\cdot y/256 + 1)^3$), as the squared maximum mean discrepancy (MMD): how much more
# alike points are within each set than across the sets. Its estimate is unbiased, so two real
# sets score about 0 (and can score a little below). It is averaged over 10 random subsets of
# 1,000 images, printed as mean ± std over them; `fid_kid` seeds the subsets, so the same images give
# the same KID on every run. `fid_kid` computes both with `torchmetrics` from the judge's features.
#
# To read a score you need references: two sets of *real* images (train vs test: what a perfect
# model would score at this n), real images made worse on purpose (blurred), the VAE's
# reconstructions (the best a model that decodes through this VAE can do), and samples.
#
# Which real images? Exactly the ones `metrics.evaluate_samples` draws: the function that
# `python -m fmnist_ldm evaluate` and notebook 07 report with. `evaluation_draw` gives its three
# random draws (n test images, an order of the samples, n training images), so the numbers below
# are the ones notebook 07 and the command line would print for these samples.

# %%
draw = evaluation_draw(len(samples.images), len(test_x), len(train_x))      # what evaluate_samples draws
test_n, train_n, order = test_x[draw["test"]], train_x[draw["train"]], draw["samples"]
unguided = pipe.generate(classes, guidance=1.0, seed=0)
sets = {
    "real train": train_n,
    "real, blurred (σ = 1)": gaussian_blur(train_n[:, None], kernel_size=5, sigma=1.0)[:, 0],
    "VAE reconstructions": pipe.reconstruct(train_n),
    "samples, defaults": samples.images[order],
    "samples, no guidance": unguided.images[order],
}
real_features = judge_features(judge, test_n)                # [N, 256]: what every set is compared with
features = {name: judge_features(judge, imgs) for name, imgs in sets.items()}
scores = {name: fid_kid(real_features, f) for name, f in features.items()}
for name, s in scores.items():
    print(f"{name:24s} FID {s['fid']:7.3f}   KID {s['kid']:8.5f} ± {s['kid_std']:.5f}")
grid = tile(torch.cat([imgs[:8] for imgs in sets.values()]), ncol=8)
plt.figure(figsize=(9, 5.5)); plt.imshow(grid, cmap="gray"); plt.xticks([])
plt.yticks([(i + 0.5) * grid.shape[0] / len(sets) for i in range(len(sets))], list(sets)); plt.show()
ranked = sorted(scores, key=lambda name: scores[name]["fid"])
print("from best to worst FID: " + " < ".join(ranked))

# %% [markdown]
# The printed ranking is the thing to read. The blurred real images should come last, far behind
# everything the model makes: the judge's features react to edges and textures. The
# reconstructions should sit between real and samples: that gap is the VAE's floor, and what the
# samples add on top of it is the UNet's share.
#
# ## The headline number, as notebook 07 and the command line report it
# FID changes with n (next section), so it is reported as the **difference** to the real-vs-real
# FID at the same n: `evaluate_samples(images, labels, judge)["fid_minus_real"]`.

# %%
report = evaluate_samples(samples.images, samples.labels, judge)
same = lambda a, b: abs(a - b) < 1e-3         # the same images and features (a GPU's last bits may differ)
assert same(report["fid"], scores["samples, defaults"]["fid"]) and same(report["fid_real_baseline"], scores["real train"]["fid"])
print(f"n = {report['n']:,}: FID {report['fid']:.3f} − real-vs-real {report['fid_real_baseline']:.3f} "
      f"= {report['fid_minus_real']:.3f} (the table above gives the same two FIDs); "
      f"class accuracy {report['accuracy']:.1%}")
if report["n"] != REPORTED_N:
    print(f"this {notebook_mode()[0]}-mode run scores n = {report['n']:,}; the model card's numbers are at "
          f"n = {REPORTED_N:,}, so expect them to differ: FID changes with n (next section)")

# %% [markdown]
# The formula above, by hand, for the samples at the defaults. We fit a Gaussian to each set of
# judge features (its mean and covariance), then compute the Fréchet distance. The trace of the
# matrix square root $(\Sigma_r\Sigma_g)^{1/2}$ is the sum of the square roots of the eigenvalues of
# $\Sigma_r\Sigma_g$. It is the same number `fid_kid` printed above. (KID by hand is Exercise 2.)

# %%
fake_features = features["samples, defaults"]
mu_r, mu_g = real_features.mean(0), fake_features.mean(0)           # [256] each, float64
S_r, S_g = torch.cov(real_features.T), torch.cov(fake_features.T)   # [256, 256], divided by n - 1
tr_root = torch.linalg.eigvals(S_r @ S_g).sqrt().real.sum()         # Tr (S_r S_g)^{1/2}
fid_by_hand = ((mu_r - mu_g) ** 2).sum() + torch.trace(S_r + S_g) - 2 * tr_root
print(f"FID by hand {fid_by_hand:.4f}, fid_kid {scores['samples, defaults']['fid']:.4f}")
# the two agree to about 1e-12 in float64, but fid_kid rounds FID to 4 decimals: hence atol = 1e-4
torch.testing.assert_close(fid_by_hand.item(), scores["samples, defaults"]["fid"], rtol=0, atol=1e-4)

# %% [markdown]
# ## FID depends on n
# FID is biased: with finitely many images the estimated covariances are noisy, and the noise
# adds to the distance, roughly as $b/n$. So FID falls as n grows, even for two real sets.
# That is why every FID in this repo is printed beside the real-vs-real FID **at the same n**.
# Score the same sets at growing n and fit $\mathrm{FID}_n = \mathrm{FID}_\infty + b/n$
# (Chong & Forsyth 2020, `fid_infinity`): FID∞ is where the fitted line meets $1/n = 0$.

# %%
ns = [n for n in (500, 1000, 2000, 5000) if n <= N]
curves = {name: fid_over_n(real_features, features[name], ns=ns)
          for name in ("real train", "VAE reconstructions", "samples, defaults")}
fid_inf = {name: fid_infinity(ns, fids) for name, fids in curves.items()}
fig, axes = plt.subplots(1, 3, figsize=(15, 4))
for (name, fids), color in zip(curves.items(), ("C2", "C1", "C0")):
    inf, inv = fid_inf[name], [1 / n for n in ns]
    slope = (sum(fids) / len(ns) - inf) / (sum(inv) / len(ns))   # a least-squares line passes through the means
    axes[0].plot(inv, fids, "o", color=color, label=f"{name}: FID∞ ≈ {inf:.2f}")
    axes[0].plot([0, inv[0]], [inf, inf + slope * inv[0]], "--", color=color, lw=1)
    if name != "real train":
        base = curves["real train"]
        axes[1].plot(ns, [f / b for f, b in zip(fids, base)], "o-", color=color, label=name)
        axes[2].plot(ns, [f - b for f, b in zip(fids, base)], "s-", color=color, label=name)
        for n, f, b in zip(ns, fids, base):
            axes[2].annotate(f"{f - b:.2f}", (n, f - b), xytext=(4, 4), textcoords="offset points", fontsize=8)
axes[0].axhline(0, color="k", lw=0.5)
axes[0].set_xticks([0] + [1 / n for n in ns], ["∞"] + [f"1/{n}" for n in ns])
axes[0].set(xlabel="1 / n", ylabel="FID", title="FID against 1/n: lines fitted, n = ∞ at the left")
axes[1].set(xscale="log", xlabel="n", ylabel="FID / real-vs-real FID", title="ratio to the real-vs-real FID")
axes[2].set(xscale="log", xlabel="n", ylabel="FID − real-vs-real FID", title="difference to the real-vs-real FID")
for ax in axes:
    ax.legend(fontsize=8)
for ax in axes[1:]:
    ax.set_xticks(ns, [f"{n:,}" for n in ns]); ax.minorticks_off()
plt.tight_layout(); plt.show()

base = curves["real train"]
print(f"real train vs real test: FID {base[0]:.3f} at n = {ns[0]:,} falls to {base[-1]:.3f} at n = {ns[-1]:,}; "
      f"the fit puts FID∞ at {fid_inf['real train']:.2f}" + (" (below 0: the fit's error, FID itself cannot be negative)"
                                                          if fid_inf["real train"] < 0 else ""))
for name in ("VAE reconstructions", "samples, defaults"):
    ratio = [f / b for f, b in zip(curves[name], base)]
    diff = [f - b for f, b in zip(curves[name], base)]
    print(f"{name}: ratio {ratio[0]:.2f} → {ratio[-1]:.2f}, difference {diff[0]:.2f} → {diff[-1]:.2f} "
          f"(moving by up to {max(diff) - min(diff):.2f} over these n)")

# %% [markdown]
# Left: each set's FID falls on a roughly straight line in $1/n$; the dashed lines are the fits.
# Two real sets should extrapolate to 0, and FID cannot be negative: it is a distance. The fit for
# real train vs real test (printed) may still land a little off 0, even below it: a straight line
# through a few noisy points, extrapolated as far beyond them as they are spread, for a bias that
# is only approximately linear in $1/n$ at n this small. Read FID∞ as ± a few tenths here.
#
# Middle: since the real-vs-real FID tends to about 0, **the ratio FID / real-vs-real grows with n
# without bound**, for samples and reconstructions alike: a target like "FID ≤ 1.5× the
# real-vs-real FID" is met or missed depending on n.
#
# Right: the **difference** FID − real-vs-real moves much less (compare the printed ranges with the
# ratio's), but it does move: it converges to the difference of the two FID∞s, approached with its
# own $1/n$ term, and at these n it is noisy too. So compare models by FID∞, or by the difference at
# one fixed, large n (this repo's: 5,000), never by the ratio. (Measured on more images: "Going
# further" at the end.)
#
# ## Class accuracy
# **Class accuracy** is the share of samples that the judge assigns to the class they were asked
# for, here per class. Guidance is what lifts it.

# %%
guided_acc = class_accuracy(judge, samples.images, samples.labels)
plain_acc = class_accuracy(judge, unguided.images, unguided.labels)
x = torch.arange(len(CLASS_NAMES))
plt.figure(figsize=(10, 3.2))
plt.bar(x - 0.2, [plain_acc["per_class_accuracy"][c] for c in x.tolist()], 0.4, label=f"no guidance ({plain_acc['accuracy']:.1%})")
plt.bar(x + 0.2, [guided_acc["per_class_accuracy"][c] for c in x.tolist()], 0.4, label=f"defaults ({guided_acc['accuracy']:.1%})")
plt.bar(x, [acc["per_class_accuracy"][c] for c in x.tolist()], 0.9, fill=False, ls="--", label=f"judge on real test ({acc['accuracy']:.1%})")
plt.xticks(x, CLASS_NAMES, rotation=30); plt.ylim(0.5, 1.0); plt.ylabel("accuracy")
plt.legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
plt.title("Does a sample of class y look like class y?"); plt.show()
above = [CLASS_NAMES[c] for c in range(len(CLASS_NAMES)) if guided_acc["per_class_accuracy"][c] > acc["per_class_accuracy"][c]]
print(f"guided samples {guided_acc['accuracy']:.1%}, unguided {plain_acc['accuracy']:.1%}, real test images "
      f"{acc['accuracy']:.1%}; the guided samples beat the real images in {len(above)} of {len(CLASS_NAMES)} classes")

# %% [markdown]
# Where the guided samples score *above* the judge's accuracy on real images (the printout counts
# the classes), it is because guidance pushes each sample towards what is most typical of its
# class, where real garments are more varied.
#
# ## What guidance costs: variety, measured
# That push should cost variety. FID cannot show it on its own: it folds "do the samples look
# real?" and "do they cover everything real images do?" into one number. Precision and recall
# (Kynkäänniemi et al. 2019) keep the two apart. In the judge's feature space, put a ball around
# every real image reaching its k-th nearest real neighbour (k = 5), and the same around every sample:
#
# - **precision**: the share of samples inside some real ball (fidelity: do they look real?);
# - **recall**: the share of real images inside some sample ball (variety: is every kind of real
#   image made?);
# - **density** and **coverage** (Naeem et al. 2020) use the real balls only, which makes them less
#   sensitive to how the samples are spread: density counts how many real balls hold each sample,
#   divided by k (about 1 when alike, above 1 when samples crowd into the densest regions),
#   coverage is the share of real balls holding at least one sample.
#
# Recall and coverage both ask "is every kind of real image made?", but recall's balls are the
# samples' own: when samples crowd together, their k-th neighbours are near, their balls shrink,
# and recall falls even where a sample lies close to a real image. Coverage keeps the real balls,
# so it reads more directly as "the share of real images that have a sample near them".
#
# Precision by hand, for the samples at the defaults (recall by hand is Exercise 1):

# %%
k = 5
real_radius = torch.cdist(real_features, real_features).kthvalue(k + 1, dim=1).values   # [N]: k + 1, each is its own nearest
inside = torch.cdist(fake_features, real_features) <= real_radius[None, :]                # [samples, real]: sample in real ball?
precision_by_hand = inside.any(dim=1).float().mean().item()
print(f"precision by hand {precision_by_hand:.4f}, precision_recall {precision_recall(real_features, fake_features, k)['precision']:.4f}")

# %% [markdown]
# `fmnist_ldm.metrics.precision_recall` computes all four, against the same real test images as
# FID, all at the same n. Beside the sets above, one more: the default scale, w = 5, applied at
# *every* step instead of only for t in [300, 700], as in notebook 05's over-guidance grid.

# %%
every_step = pipe.generate(classes, guidance_interval=None, seed=0)
features["samples, w = 5 every step"] = judge_features(judge, every_step.images[order])
pr = {name: precision_recall(real_features, f) for name, f in features.items()}
print(f"{'':28s} precision  recall  density  coverage")
for name, r in pr.items():
    print(f"{name:28s} {r['precision']:9.3f} {r['recall']:7.3f} {r['density']:8.3f} {r['coverage']:9.3f}")
scores["samples, w = 5 every step"] = fid_kid(real_features, features["samples, w = 5 every step"])
over_acc = class_accuracy(judge, every_step.images, every_step.labels)["accuracy"]
fig, ax = plt.subplots(figsize=(11, 3.2))
names_ = ["precision", "recall", "density", "coverage"]
for i, (name, r) in enumerate(pr.items()):
    ax.bar([m + (i - 2.5) * 0.14 for m in range(4)], [r[k_] for k_ in names_], 0.14, label=name)
ax.set_xticks(range(4), names_); ax.axhline(1, color="k", lw=0.5)
ax.legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
ax.set_title(f"against {N:,} real test images, k = {k}"); plt.show()

# %% [markdown]
# What the table says, read from it (this run's numbers, at this n):

# %%
d, u, e, rr = pr["samples, defaults"], pr["samples, no guidance"], pr["samples, w = 5 every step"], pr["real train"]
se = lambda p: math.sqrt(p * (1 - p) / N)       # standard error of a share p of N images
print(f"At the defaults guidance costs {'little' if abs(d['recall'] - u['recall']) < 3 * se(u['recall']) else 'measurable'} "
      f"variety: recall {d['recall']:.3f} with it, {u['recall']:.3f} without; coverage {d['coverage']:.3f} and "
      f"{u['coverage']:.3f} (one standard error of a share near these, at n = {N:,}: about {se(u['recall']):.3f}). "
      f"It buys class accuracy {guided_acc['accuracy']:.1%} against {plain_acc['accuracy']:.1%}, and FID "
      f"{scores['samples, defaults']['fid']:.2f} against {scores['samples, no guidance']['fid']:.2f}.")
print(f"The same scale at every step pays: precision {e['precision']:.3f} and density {e['density']:.2f} "
      f"(defaults {d['precision']:.3f}, {d['density']:.2f}): the samples crowd into the most typical regions. "
      f"Recall falls to {e['recall']:.3f}: the crowded samples' own balls are small and reach few real images. "
      f"Coverage, {e['coverage']:.3f}, says what is missing: {1 - e['coverage']:.0%} of the real test images "
      f"have no sample within their own neighbourhood (at the defaults {1 - d['coverage']:.0%}).")
print(f"Its class accuracy is {over_acc:.1%} and its FID {scores['samples, w = 5 every step']['fid']:.2f}: FID sees the loss, "
      f"precision and recall say which half of it moved.")
print(f"Two real sets score recall {rr['recall']:.3f}; the defaults' {d['recall']:.3f} is the model's shortfall in variety. "
      f"Blurred real images: precision {pr['real, blurred (σ = 1)']['precision']:.3f}, coverage "
      f"{pr['real, blurred (σ = 1)']['coverage']:.3f}: a blurred image lies in few real images' neighbourhoods.")

# %% [markdown]
# ## Does it copy its training set?
# Everything above would also reward a model that hands back its training images: they look
# real, are as varied as the real data and belong to their class. None of these scores can tell a
# copy from a new image. The direct check: for each sample, find the nearest of the 60,000
# training images, and do the same for as many real **test** images, which the model never saw.
# The test images show how close a *new* image from the same distribution comes to the training
# set; a model that copies puts its samples closer than that, its copies at distance 0.
#
# We measure in two spaces, each with the Euclidean distance to the nearest training image,
# $d(x) = \min_i \lVert x - x^{\text{train}}_i \rVert$:
#
# - **judge features** (256 numbers): "the same kind of garment, drawn the same way";
# - **pixels** in $[0, 1]$ (784 numbers): "the same picture".
#
# `nearest_neighbours` finds the nearest training image exactly, a few hundred samples at a time,
# so that the table of distances stays small (all of it at once, n × 60,000 distances, would take
# 2.4 GB in float64 at n = 5,000). `memorisation` runs it on samples and test images in both
# spaces; its pixel half is the first two lines of the next cell. The samples are the ones at the
# defaults from above. (On a CPU this cell takes a minute or two: the judge looks at all 60,000
# training images.)

# %%
pixels = lambda images: images.flatten(1).float() / 255                       # uint8 [n, 28, 28] -> [n, 784] in [0, 1]
d_pix, i_pix = nearest_neighbours(pixels(samples.images), pixels(train_x))    # each sample's nearest training image
check = memorisation(samples.images, train_x, test_x, judge)                  # both spaces, samples and n test images
assert torch.equal(check["pixels"]["samples"][1], i_pix)                      # the library's pixel half: the line above
print(f"n = {check['n']:,} samples at the defaults and {check['n']:,} real test images, "
      f"each against the {len(train_x):,} training images")
print(f"{'':8s} median distance to the nearest training image    share of samples closer than")
print(f"{'':8s} {'samples':>10s} {'test images':>14s}                     the test images' 5th percentile")
for space, s in check["summary"].items():
    print(f"{space:8s} {s['median_samples']:10.3f} {s['median_test']:14.3f}                     "
          f"{s['share_below']:.3f} (threshold {s['test_5th_percentile']:.3f})")
share_se = math.sqrt(0.05 * 0.95 / check["n"])
print(f"new images would score about 0.05 ± {share_se:.3f} (one standard error at n = {check['n']:,})")

# %% [markdown]
# The last column is the summary number. By construction 5 % of the test images lie below their
# own 5th percentile, so samples that are new images from the data's distribution score about
# 0.05, give or take the printed standard error; every copied sample would land below the threshold
# and add to it. The median alone would miss a few copies among many new images.
#
# Numbers say how close; only looking says whether "close" means "copied". The eight samples
# closest to a training image in pixels (the first place a copy would show), above the training
# images nearest to them in each space; below them, for scale, the same for the eight test images
# closest to a training image. Distances compare within a space only: the two have their own units.

# %%
d_judge, i_judge = check["judge"]["samples"]
d_test, i_test = check["pixels"]["test"]
closest, closest_test = d_pix.argsort()[:8], d_test.argsort()[:8]
rows = [("sample", samples.images[closest], None),
        ("its nearest in\njudge features", train_x[i_judge[closest]], d_judge[closest]),
        ("its nearest\nin pixels", train_x[i_pix[closest]], d_pix[closest]),
        ("real test image", check["test_images"][closest_test], None),
        ("its nearest\nin pixels", train_x[i_test[closest_test]], d_test[closest_test])]
fig, axes = plt.subplots(len(rows), 8, figsize=(12, 9))
for r, (name, images, dists) in enumerate(rows):
    for c in range(8):
        axes[r, c].imshow(images[c], cmap="gray", vmin=0, vmax=255)
        axes[r, c].set_xticks([]); axes[r, c].set_yticks([])
        if dists is not None:
            axes[r, c].set_xlabel(f"d = {dists[c]:.2f}", fontsize=9)
    axes[r, 0].set_ylabel(name, fontsize=9)
fig.suptitle("top: the 8 samples closest to a training image (in pixels); bottom: the 8 closest test images")
plt.tight_layout(); plt.show()
kinds = torch.bincount(samples.labels[closest], minlength=len(CLASS_NAMES))
print("the 8 closest samples are: " + ", ".join(f"{int(kinds[c])} × {CLASS_NAMES[c]}" for c in kinds.argsort(descending=True) if kinds[c]))
print(f"closest sample d = {d_pix[closest[0]]:.2f}, closest test image d = {d_test[closest_test[0]]:.2f} (pixels); "
      f"the two spaces pick the same training image for {int((i_judge[closest] == i_pix[closest]).sum())} of these 8 samples")

# %% [markdown]
# And all of them: the distance of every sample, and of every test image, to its nearest training
# image. Copies would show as a bar at 0; a model that copies often, as a sample histogram shifted
# to the left of the test images' one.

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 3.8))
for ax, space in zip(axes, ("judge", "pixels")):
    s, d_samples, d_test_ = check["summary"][space], check[space]["samples"][0], check[space]["test"][0]
    bins = torch.linspace(0, max(d_samples.max(), d_test_.max()).item(), 60)
    ax.hist(d_test_, bins, color="C2", alpha=0.35, label=f"real test images (median {s['median_test']:.2f})")
    ax.hist(d_samples, bins, color="C0", histtype="step", lw=1.5, label=f"samples (median {s['median_samples']:.2f})")
    ax.axvline(s["test_5th_percentile"], color="k", ls="--", lw=1,
               label=f"test images' 5th percentile:\n{s['share_below']:.1%} of samples below it")
    ax.set(xlabel=f"distance to the nearest training image ({space})", ylabel="images",
           title=f"{space}: n = {check['n']:,} each")
    ax.legend(fontsize=8, loc="upper right")
plt.tight_layout(); plt.show()
for space, s in check["summary"].items():
    excess = (s["share_below"] - 0.05) / share_se
    print(f"{space}: {s['share_below']:.3f} of samples below the line, {excess:+.1f} standard errors from 0.05; "
          f"exact copies (d < 1e-3): {int((check[space]['samples'][0] < 1e-3).sum())}")

# %% [markdown]
# What to look for (the printouts above say what this run shows):
#
# - **A bar at 0, or a sample histogram left of the test images' one**: copies. The count of exact
#   copies and the share below the dashed line, in standard errors from 0.05, say it in numbers:
#   a share within about two standard errors of 0.05 means the samples are as far from the training
#   set as new real images are.
# - **The closest pairs**: the samples that come closest tend to be the plainest garments (the
#   printout names their classes), where there is little left to differ. Look whether their
#   neighbours are the same picture or only the same kind of garment: widths, gaps and shading.
# - **The closest test images**: some are near-duplicates of a training image (the same garment,
#   almost pixel for pixel). The dataset itself holds such pairs across its split, so a small
#   distance alone proves nothing; a sample at one deserves a look.
# - **The two spaces** need not agree on which training image is nearest (the printout counts how
#   often they do). Pixel distances are smallest for dark, plain images, whatever their details;
#   the judge's features compare the garment.
#
# What this check cannot see: a copy shifted by a pixel or two (far in pixels, though near in
# judge features), or copied parts of images. And the share alone misses rare copies (one sample
# in a hundred is within its noise at n = 2,000); the closest pairs would show them, at d = 0.
#
# ## The same from the command line
# ```bash
# python -m fmnist_ldm sample --class all --n-per-class 500 --out samples.npz
# python -m fmnist_ldm evaluate --samples samples.npz      # JSON: fid, fid_real_baseline, kid, accuracy, ...
# python benchmarks/benchmark.py targets                   # the model card's scores, n = 5,000
# ```

# %% [markdown]
# ## Your turn
# Write each function below where it says so, then run its cell: the checker compares it with
# the library's own implementation on a few inputs and says what is wrong if it is. The
# solution is in the hidden cell under each exercise (click to show it); it runs, and is checked, too.

# %% [markdown]
# **Exercise 1: Recall.** Precision, by hand above, put a ball around every *real* image and
# asked which samples fall inside one. Recall turns it round: put a ball around every *sample*,
# reaching its k-th nearest other sample, and return the share of *real* images that fall inside
# at least one sample's ball. (The checker's real and fake sets differ in size, and the fakes are
# bunched up, so precision, coverage and recall are three different numbers there.)

# %% tags=["nbval-check-output"]
from fmnist_ldm.course.exercises import check_recall

def my_recall(real, fake, k):
    """real [N, D], fake [M, D] features, k -> a number in [0, 1]."""
    raise NotImplementedError   # your code here

check_recall(my_recall)

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution"]
#@title Solution (hidden in Jupyter and Colab: click to show)
def recall(real, fake, k):
    """real [N, D], fake [M, D] features, k -> a number in [0, 1]."""
    fake_radius = torch.cdist(fake, fake).kthvalue(k + 1, dim=1).values    # [M]: k + 1, each sample is its own nearest
    inside = torch.cdist(real, fake) <= fake_radius[None, :]              # [N, M]: real i inside sample j's ball
    return inside.any(dim=1).float().mean()                               # share of real images inside any ball


assert check_recall(recall)
print(f"on this notebook's features, defaults: {recall(real_features.float(), fake_features.float(), 5):.3f} "
      f"(precision_recall: {pr['samples, defaults']['recall']:.3f})")

# %% [markdown]
# **Exercise 2: KID by hand.** KID is the squared maximum mean discrepancy (MMD) between the two
# feature sets, under the cubic kernel $k(x, y) = (x\cdot y / D + 1)^3$ ($D$ = the number of
# features). For $m$ real rows $r_i$ and $n$ generated rows $f_j$, the unbiased estimate averages
# the kernel within each set *leaving out each point with itself*, and subtracts twice the average
# across the sets:
#
# $$\mathrm{MMD}^2 = \frac{\sum_{i\ne i'} k(r_i, r_{i'})}{m(m-1)} + \frac{\sum_{j\ne j'} k(f_j, f_{j'})}{n(n-1)} - \frac{2}{mn}\sum_{i,j} k(r_i, f_j)$$
#
# Write it for sets of different sizes ($m \ne n$). `fid_kid`'s KID is this number averaged over
# 10 random subsets of 1,000 images of each set.

# %% tags=["nbval-check-output"]
from fmnist_ldm.course.exercises import check_kid_mmd

def my_kid_mmd(real, fake):
    """real [m, D], fake [n, D] features, float64 -> a number."""
    raise NotImplementedError   # your code here

check_kid_mmd(my_kid_mmd)

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution"]
#@title Solution (hidden in Jupyter and Colab: click to show)
def kid_mmd(real, fake):
    """real [m, D], fake [n, D] features, float64 -> a number."""
    kernel = lambda a, b: (a @ b.T / a.shape[1] + 1) ** 3
    k_rr, k_ff, k_rf = kernel(real, real), kernel(fake, fake), kernel(real, fake)
    m, n = len(real), len(fake)
    within_real = (k_rr.sum() - k_rr.diagonal().sum()) / (m * (m - 1))    # i != i': leave out the diagonal
    within_fake = (k_ff.sum() - k_ff.diagonal().sum()) / (n * (n - 1))
    return within_real + within_fake - 2 * k_rf.mean()


assert check_kid_mmd(kid_mmd)
g = torch.Generator().manual_seed(1)                  # 10 subsets of 1,000, drawn like fid_kid's (not the same ones)
subset = lambda f: f[torch.randperm(len(f), generator=g)[:1000]]
by_hand = torch.tensor([float(kid_mmd(subset(real_features), subset(fake_features))) for _ in range(10)])
print(f"by hand, 10 random subsets of 1,000: {by_hand.mean():.5f} ± {by_hand.std():.5f}; "
      f"fid_kid's KID over its own 10: {scores['samples, defaults']['kid']:.5f} ± {scores['samples, defaults']['kid_std']:.5f}")

# %% [markdown]
# ## Going further
# **FID against n, on more images.** `python benchmarks/benchmark.py n-sweep` scored one set of
# 10,000 samples at the defaults, the VAE's reconstructions and a real set, at n up to 10,000
# ([`benchmarks/fid_vs_n.md`](../benchmarks/fid_vs_n.md), measured on the machine named there). Its
# difference rows, read from the file:

# %% tags=["nbval-check-output"]
sweep = Path("../benchmarks/fid_vs_n.md")
if sweep.is_file():
    lines = sweep.read_text().splitlines()
    print("\n".join(line for line in lines if line.startswith("| set") or "FID − real-vs-real" in line or "FID / real" in line))
else:
    print(f"{sweep} is not here (it ships with the repository)")

# %% [markdown]
# Read it like the right-hand panel above, with more n: does the difference settle, and from
# which n on? Does the ratio?
#
# **A fairer memorisation threshold?** The samples closest to the training set are often the
# plainest garments. Would a threshold per class (the 5th percentile of the test images *of that
# class*) make the check fairer? Try it: the samples' labels are `samples.labels`, the test
# images' `test_y[check["test_index"]]`.
#
# ## What we learned
# - Scores need a judge that knows the data: here a Fashion-MNIST classifier, whose features FID,
#   KID and precision/recall are computed in, and whose verdicts give class accuracy.
# - Every score needs references: real vs real at the same n, a deliberately damaged set, the
#   VAE's reconstructions (the floor for samples). The headline is FID − real-vs-real, from
#   `evaluate_samples`, whose fixed draw of real images (`evaluation_draw`) every report shares.
# - FID is biased by n. The ratio to the real-vs-real FID grows without bound with n; compare models
#   by FID∞ or by the difference at one fixed, large n, and expect an extrapolation to be off by a
#   few tenths.
# - KID is an unbiased MMD (the diagonals left out), averaged over random subsets: report its
#   spread and fix its seed.
# - FID mixes fidelity and variety; precision/recall and density/coverage separate them. Recall
#   uses the samples' own balls, coverage the real ones: crowded samples lower recall more than
#   coverage. Guidance only in the middle of the run costs little variety; at every step, much more.
# - No score above can tell a copy from a new image. Comparing each sample's nearest training
#   image with a new real image's (`metrics.memorisation`) can, in pixels and in judge features,
#   and the closest pairs have to be looked at.
#
# ## Check your understanding
# 1. Two models score FID 3.2 and 3.0 at n = 2,000 with a real-vs-real FID of 1.7. What else do
#    you need to know before calling the second better?
# 2. A model that draws one perfect garment per class would score what precision, recall and
#    coverage (roughly), and what class accuracy?
# 3. Why can KID be negative while FID cannot, and what does a KID of −0.001 ± 0.001 say?

# %%
from fmnist_ldm.course.notebook import say_elapsed
say_elapsed()
