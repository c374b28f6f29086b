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
# way `python -m fmnist_ldm evaluate` and `benchmarks/benchmark.py` do, and shows the one trap in
# the most used score, FID: its value depends on how many images you compare.

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
from torchmetrics.functional.classification import multiclass_confusion_matrix
from torchvision.transforms.functional import gaussian_blur
from fmnist_ldm.notebook import notebook_mode, notebook_preset
from fmnist_ldm.data import CLASS_NAMES, load_fashion_mnist
from fmnist_ldm.metrics import (class_accuracy, fid_infinity, fid_kid, fid_over_n, judge_features, load_judge,
                                memorisation, nearest_neighbours, precision_recall, predict)
from fmnist_ldm.pipeline import Pipeline
from fmnist_ldm.viz import tile

cfg = notebook_preset()
N = 2000 if notebook_mode()[0] == "fast" else 5000    # images per set, as in the benchmarks (5,000)
pipe, judge = Pipeline.from_pretrained(), load_judge()
g = torch.Generator().manual_seed(0)
test_x, test_y = load_fashion_mnist("test")
train_x, _ = load_fashion_mnist("train")
order = torch.randperm(len(test_x), generator=g)
test_x, test_y = test_x[order], test_y[order]                       # shuffled once, used throughout
train_n = train_x[torch.randperm(len(train_x), generator=g)[:N]]
print(f"{notebook_mode()[0]} mode: {N} images per set")

# %% [markdown]
# ## The judge
# FID was defined on the features of Inception-v3, an ImageNet classifier. Its features mean
# little for 28×28 grey clothing, so here the "judge" is a small CNN trained on the real
# Fashion-MNIST training set (`python -m fmnist_ldm train-judge`, `model/judge.safetensors`).
# Its 256 penultimate features are the space FID and KID are computed in; its predictions say
# whether a sample of class *y* looks like class *y*. First: how good a judge is it?

# %%
acc = class_accuracy(judge, test_x, test_y)
print(f"judge accuracy on the 10,000 real test images: {acc['accuracy']:.2%}")
confusion = multiclass_confusion_matrix(predict(judge, test_x), test_y, num_classes=len(CLASS_NAMES), normalize="true")
plt.figure(figsize=(5.5, 4.5))
plt.imshow(confusion, cmap="Blues")
plt.xticks(range(len(CLASS_NAMES)), CLASS_NAMES, rotation=60, ha="right"); plt.yticks(range(len(CLASS_NAMES)), CLASS_NAMES)
plt.xlabel("judge says"); plt.ylabel("true class"); plt.colorbar(); plt.title("judge on real test images")
plt.show()

# %% [markdown]
# Shirt, T-shirt, pullover and coat are where even a good classifier hesitates: an accuracy on
# samples of those classes below the others is partly the judge's.
#
# ## FID and KID
# Both compare the judge's features of two image sets. FID fits a Gaussian to each and measures
# the Fréchet distance between them (Heusel et al. 2017):
#
# $$\mathrm{FID} = \lVert\mu_r-\mu_g\rVert^2 + \operatorname{Tr}\!\big(\Sigma_r+\Sigma_g-2(\Sigma_r\Sigma_g)^{1/2}\big)$$
#
# KID (Bińkowski et al. 2018) is the squared maximum mean discrepancy under a cubic polynomial
# kernel; unlike FID it is unbiased, so two real sets score about 0 (and can score a little below).
# It is averaged over 10 random subsets of 1,000 images, printed as mean ± std over them; `fid_kid`
# seeds the subsets, so the same images give the same KID on every run. `fid_kid` computes both
# with `torchmetrics` from the judge's features; each set goes through the judge once
# (`judge_features`), and every score below is computed from those features.
#
# To read a score you need references: two sets of *real* images (train vs test: what a perfect
# model would score at this n), real images made worse on purpose (blurred), the VAE's
# reconstructions (the best a model that decodes through this VAE can do), and samples.

# %%
classes = [c for c in range(pipe.cfg.num_classes) for _ in range(N // pipe.cfg.num_classes)]
samples = pipe.generate(classes, seed=0)                     # the defaults
unguided = pipe.generate(classes, guidance=1.0, seed=0)
perm = torch.randperm(N, generator=g)                        # mix classes before taking the first n
sets = {
    "real train": train_n,
    "real, blurred (σ = 1)": gaussian_blur(train_n[:, None], kernel_size=5, sigma=1.0)[:, 0],
    "VAE reconstructions": pipe.reconstruct(train_n),
    "samples, defaults": samples.images[perm],
    "samples, no guidance": unguided.images[perm],
}
real_features = judge_features(judge, test_x[:N])            # [N, 256]: what every set is compared with
features = {name: judge_features(judge, imgs) for name, imgs in sets.items()}
scores = {name: fid_kid(real_features, f) for name, f in features.items()}
for name, s in scores.items():
    print(f"{name:24s} FID {s['fid']:7.3f}   KID {s['kid']:8.5f} ± {s['kid_std']:.5f}")
grid = tile(torch.cat([imgs[:8] for imgs in sets.values()]), ncol=8)
plt.figure(figsize=(9, 5.5)); plt.imshow(grid, cmap="gray"); plt.xticks([])
plt.yticks([(i + 0.5) * grid.shape[0] / len(sets) for i in range(len(sets))], list(sets)); plt.show()

# %% [markdown]
# Blurring the real images costs far more FID than anything the model does: the judge's
# features react to edges and textures. The reconstructions sit between real and samples: the
# VAE's floor. The samples sit above it: the UNet's share.
#
# The formula above, by hand, for the samples at the defaults. We fit a Gaussian to each set of judge features
# (its mean and covariance), then compute the Fréchet distance. The trace of the matrix square root
# $(\Sigma_r\Sigma_g)^{1/2}$ is the sum of the square roots of the eigenvalues of $\Sigma_r\Sigma_g$.
# It is the same number `fid_kid` printed above.

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
# adds to the distance, roughly as $b/n$. So FID always falls as n grows, even for two real sets.
# That is why every FID in this repo is printed beside the real-vs-real FID **at the same n**.
# Score the same sets at growing n and fit $\mathrm{FID}_n = \mathrm{FID}_\infty + b/n$
# (Chong & Forsyth 2020, `fid_infinity`):

# %%
ns = [n for n in (500, 1000, 2000, 5000) if n <= N]
curves = {name: fid_over_n(real_features, features[name], ns=ns)
          for name in ("real train", "VAE reconstructions", "samples, defaults")}
fig, axes = plt.subplots(1, 3, figsize=(15, 4))
for (name, fids), color in zip(curves.items(), ("C2", "C1", "C0")):
    inf, inv = fid_infinity(ns, fids), [1 / n for n in ns]
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

# %% [markdown]
# Left: each set's FID falls on a roughly straight line in $1/n$; the dashed lines are the fits,
# and where they meet $1/n = 0$ is FID∞. Two real sets should extrapolate to 0, and FID cannot be
# negative: it is a distance. Yet the fit for real train vs real test lands slightly below 0 in
# fast mode (−0.12, in the legend). That is the fit's error, not a value FID can take: a straight
# line through three noisy points, extrapolated as far beyond them as they are spread, for a bias
# that is only approximately linear in $1/n$ at n this small. Read FID∞ as ± a few tenths here.
#
# Middle: since the real-vs-real FID tends to about 0, **the ratio FID / real-vs-real grows with n
# without bound**, for samples and reconstructions alike: a target like "FID ≤ 1.5× the
# real-vs-real FID" is met or missed depending on n.
#
# Right: the **difference** FID − real-vs-real moves much less, but it does move: it converges to
# the difference of the two FID∞s, approached with its own $1/n$ term (the two sets' biases differ:
# a set with less spread has a smaller one). Here it rises with n for the reconstructions (see
# the numbers on the points) and moves by several tenths, up and down, for the samples: at these n
# it is noisy too. With more images, `python benchmarks/benchmark.py n-sweep` (one set
# of 10,000 samples, [`benchmarks/fid_vs_n.md`](../benchmarks/fid_vs_n.md)) measured the
# difference at 2.16, 1.69, 1.62, 1.62 for the samples and 0.53, 0.70, 0.84, 0.86 for the
# reconstructions at n = 1,000, 2,000, 5,000, 10,000 (and the ratio at 1.69, 2.00, 3.24, 5.90 for
# the samples): falling for one, rising for the other, settling from n ≈ 5,000 on. So compare
# models by FID∞, or by the difference at one fixed, large n, never by the ratio.
#
# ## Class accuracy
# The fraction of samples the judge assigns to the class they were asked for, per class.
# Guidance is what lifts it.

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

# %% [markdown]
# Guided samples score *above* the judge's accuracy on real images: guidance pushes each sample
# towards what is most typical of its class, where real garments are more varied.
#
# ## What guidance costs: variety, measured
# That push should cost variety. FID cannot show it on its own: it folds "do the samples look
# real?" and "do they cover everything real images do?" into one number, and here the guided
# samples score the *lower* (better) FID. Precision and recall (Kynkäänniemi et al. 2019) keep the
# two apart. In the judge's feature space, put a ball around every real image reaching its
# k-th nearest real neighbour (k = 5), and the same around every sample:
#
# - **precision**: the share of samples inside some real ball (fidelity: do they look real?);
# - **recall**: the share of real images inside some sample ball (variety: is every kind of real
#   image made?);
# - **density** and **coverage** (Naeem et al. 2020) use the real balls only, which makes them less
#   sensitive to a few outlying samples: density counts how many real balls hold each sample
#   (about 1 when alike, above 1 when samples crowd into the densest regions), coverage the share
#   of real balls holding at least one sample.
#
# `fmnist_ldm.metrics.precision_recall`, against the same real test images as FID, all at the same
# n. Beside the sets above, one more: the default scale, w = 5, applied at *every* step instead of
# only for t in [300, 700], as in notebook 05's over-guidance grid.

# %%
every_step = pipe.generate(classes, guidance_interval=None, seed=0)
features["samples, w = 5 every step"] = judge_features(judge, every_step.images[perm])
pr = {name: precision_recall(real_features, f) for name, f in features.items()}
print(f"{'':28s} precision  recall  density  coverage")
for name, r in pr.items():
    print(f"{name:28s} {r['precision']:9.3f} {r['recall']:7.3f} {r['density']:8.3f} {r['coverage']:9.3f}")
over = fid_kid(real_features, features["samples, w = 5 every step"])
print(f"w = 5 at every step: FID {over['fid']:.3f} (defaults {scores['samples, defaults']['fid']:.3f}), "
      f"class accuracy {class_accuracy(judge, every_step.images, every_step.labels)['accuracy']:.1%}")
fig, ax = plt.subplots(figsize=(11, 3.2))
names_ = ["precision", "recall", "density", "coverage"]
for i, (name, r) in enumerate(pr.items()):
    ax.bar([m + (i - 2.5) * 0.14 for m in range(4)], [r[k] for k in names_], 0.14, label=name)
ax.set_xticks(range(4), names_); ax.axhline(1, color="k", lw=0.5)
ax.legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
ax.set_title(f"against {N:,} real test images, k = 5"); plt.show()

# %% [markdown]
# The numbers quoted here are from fast mode (2,000 images per set); the printout above is this
# run's. At the defaults, guidance costs almost no variety: recall 0.770 with it and 0.782 without,
# coverage 0.937 and 0.933, differences within the noise of 2,000 images (one standard error is
# about 0.01). Guiding only the middle of the run buys the accuracy (98 % against 87 %) and a
# better FID without paying for it. The same scale at every step does pay, and visibly:
# precision rises to 0.975 and density to 1.42 (the samples crowd into the densest, most typical
# regions of the real data), while recall falls to 0.41 and coverage to 0.72: more than half of
# the kinds of real garments are never drawn. Its class accuracy is 100 %, and its FID, 13.6,
# sees the loss too, because it is large; precision and recall say which half of FID moved.
# What is left at the defaults, recall 0.77 against 0.91 for two real sets, is the model's
# shortfall in variety, with or without guidance. Blurred real images fail everything: a blurred
# image lies in no real image's neighbourhood, and the blurred set covers almost none of the real one.

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

# %% [markdown]
# The last column is the summary number. By construction 5 % of the test images lie below their
# own 5th percentile, so samples that are new images from the data's distribution score about
# 0.05 (give or take 0.01 at n = 2,000); every copied sample would land below the threshold and add
# to it. The median alone would miss a few copies among many new images.
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

# %% [markdown]
# And all of them: the distance of every sample, and of every test image, to its nearest training
# image. Copies would show as a bar at 0; a model that copies often, as a sample histogram shifted
# to the left of the test images' one.

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 3.8))
for ax, space in zip(axes, ("judge", "pixels")):
    s, d_samples, d_test = check["summary"][space], check[space]["samples"][0], check[space]["test"][0]
    bins = torch.linspace(0, max(d_samples.max(), d_test.max()).item(), 60)
    ax.hist(d_test, bins, color="C2", alpha=0.35, label=f"real test images (median {s['median_test']:.2f})")
    ax.hist(d_samples, bins, color="C0", histtype="step", lw=1.5, label=f"samples (median {s['median_samples']:.2f})")
    ax.axvline(s["test_5th_percentile"], color="k", ls="--", lw=1,
               label=f"test images' 5th percentile:\n{s['share_below']:.1%} of samples below it")
    ax.set(xlabel=f"distance to the nearest training image ({space})", ylabel="images",
           title=f"{space}: n = {check['n']:,} each")
    ax.legend(fontsize=8, loc="upper right")
plt.tight_layout(); plt.show()

# %% [markdown]
# What to look for, and what this run shows:
#
# - **A bar at 0, or a sample histogram left of the test images' one**: copies. Here the two
#   histograms lie on top of each other in both spaces, their medians (in the legends) are close,
#   and the share of samples below the dashed line, printed above, is not above 0.05 by more than
#   its noise. At this n, the model draws new images, as far from the training set as new real
#   images are.
# - **The closest pairs**: the samples that come closest are the plainest garments (trousers,
#   mostly, here), where there is little left to differ. Their neighbours are the same kind of trousers,
#   not the same picture: widths, the gap between the legs and the shading differ.
# - **The closest test images come closer than the closest samples**: some are near-duplicates
#   of a training image (bottom rows: the same garment, almost pixel for pixel). The dataset itself
#   holds such pairs across its split, so a small distance alone proves nothing; a sample at one
#   deserves a look.
# - **The two spaces disagree** on which training image is nearest. Pixel distances are smallest
#   for dark, plain images, whatever their details; the judge's features compare the garment.
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
# **Exercise 1: The Fréchet distance.** FID is the Fréchet distance between two Gaussians fitted to the features:
# $\lVert\mu_1-\mu_2\rVert^2 + \operatorname{Tr}\big(\Sigma_1+\Sigma_2-2(\Sigma_1\Sigma_2)^{1/2}\big)$. The trace of the
# matrix square root is the sum of the square roots of the eigenvalues of $\Sigma_1\Sigma_2$
# (`torch.linalg.eigvals`, real parts).

# %%
from fmnist_ldm.exercises import check_frechet_distance

def my_frechet_distance(mu1, sigma1, mu2, sigma2):
    """Means [D] and covariances [D, D], float64 -> a number."""
    raise NotImplementedError   # your code here

check_frechet_distance(my_frechet_distance)

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution"]
#@title Solution (hidden in Jupyter and Colab: click to show)
def frechet_distance(mu1, sigma1, mu2, sigma2):
    """Means [D] and covariances [D, D], float64 -> a number."""
    root_trace = torch.linalg.eigvals(sigma1 @ sigma2).sqrt().real.sum()
    return ((mu1 - mu2) ** 2).sum() + torch.trace(sigma1) + torch.trace(sigma2) - 2 * root_trace


assert check_frechet_distance(frechet_distance)

# %% [markdown]
# **Exercise 2: Precision.** Precision is the share of samples that fall inside at least one real image's ball, the ball
# reaching that real image's $k$-th nearest real neighbour (itself not counted). `torch.cdist` gives
# all pairwise distances, `kthvalue` the $k$-th smallest.

# %%
from fmnist_ldm.exercises import check_precision

def my_precision(real, fake, k):
    """real [N, D], fake [M, D] features -> a number in [0, 1]."""
    raise NotImplementedError   # your code here

check_precision(my_precision)

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution"]
#@title Solution (hidden in Jupyter and Colab: click to show)
def precision(real, fake, k):
    """real [N, D], fake [M, D] features -> a number in [0, 1]."""
    radius = torch.cdist(real, real).kthvalue(k + 1, dim=1).values      # k + 1: each point is its own nearest
    return (torch.cdist(fake, real) <= radius[None, :]).any(dim=1).float().mean()


assert check_precision(precision)

# %% [markdown]
# ## What we learned
# - Scores need a judge that knows the data: here a Fashion-MNIST classifier, whose features FID,
#   KID and precision/recall are computed in, and whose verdicts give class accuracy.
# - Every score needs references: real vs real at the same n, a deliberately damaged set, the
#   VAE's reconstructions (the floor for samples).
# - FID is biased by n. The ratio to the real-vs-real FID grows without bound with n; compare models
#   by FID∞ or by the difference at one fixed, large n, and expect an extrapolation to be off by a
#   few tenths.
# - KID is unbiased and averaged over random subsets: report its spread and fix its seed.
# - FID mixes fidelity and variety; precision/recall and density/coverage separate them. Guidance
#   at the defaults costs almost no variety; guidance at every step costs half of it.
# - No score above can tell a copy from a new image. Comparing each sample's nearest training
#   image with a new real image's (`metrics.memorisation`) can, in pixels and in judge features,
#   and the closest pairs have to be looked at.
#
# ## Check your understanding
# 1. Two models score FID 3.2 and 3.0 at n = 2,000 with a real-vs-real FID of 1.7. What else do
#    you need to know before calling the second better?
# 2. A model that draws one perfect garment per class would score what precision and recall
#    (roughly), and what class accuracy?
# 3. Why can KID be negative while FID cannot, and what does a KID of −0.001 ± 0.001 say?
# 4. The samples closest to the training set are mostly trousers. Would a threshold per class
#    (the 5th percentile of the test images *of that class*) make the memorisation check fairer?
#    Try it: the samples' labels are `samples.labels`, the test images' `test_y[check["test_index"]]`.
