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
    if not os.path.isdir("fmnist-ldm"):
        subprocess.run(["git", "clone", "-q", "--depth", "1", repo, "fmnist-ldm"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "fmnist-ldm"], check=True)
    sys.path.insert(0, os.path.abspath("fmnist-ldm"))
    os.chdir("fmnist-ldm/notebooks")
    import torch
    if not torch.cuda.is_available():
        print("No GPU here: in Colab, Runtime -> Change runtime type -> GPU makes training minutes, not hours.")

# %%
import matplotlib.pyplot as plt
import torch
from torchmetrics.functional.classification import multiclass_confusion_matrix
from torchvision.transforms.functional import gaussian_blur
from fmnist_ldm.notebook import notebook_mode, notebook_preset
from fmnist_ldm.data import CLASS_NAMES, load_fashion_mnist
from fmnist_ldm.metrics import class_accuracy, fid_infinity, fid_kid, fid_over_n, load_judge, predict
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
print(f"{notebook_mode()} mode: {N} images per set")

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
# kernel, averaged over subsets; unlike FID it is unbiased, so two real sets score about 0.
# `fid_kid` computes both with `torchmetrics`, the judge as its feature extractor.
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
scores = {name: fid_kid(test_x[:N], imgs, judge) for name, imgs in sets.items()}
for name, s in scores.items():
    print(f"{name:24s} FID {s['fid']:7.3f}   KID {s['kid']:8.5f}")
grid = tile(torch.cat([imgs[:8] for imgs in sets.values()]), ncol=8)
plt.figure(figsize=(9, 5.5)); plt.imshow(grid, cmap="gray"); plt.xticks([])
plt.yticks([(i + 0.5) * grid.shape[0] / len(sets) for i in range(len(sets))], list(sets)); plt.show()

# %% [markdown]
# Blurring the real images costs far more FID than anything the model does: the judge's
# features react to edges and textures. The reconstructions sit between real and samples: the
# VAE's floor. The samples sit above it: the UNet's share.
#
# ## FID depends on n
# FID is biased: with finitely many images the estimated covariances are noisy, and the noise
# adds to the distance, roughly as $b/n$. So FID always falls as n grows, even for two real sets.
# That is why every FID in this repo is printed beside the real-vs-real FID **at the same n**.
# Score the same sets at growing n and fit $\mathrm{FID}_n = \mathrm{FID}_\infty + b/n$
# (Chong & Forsyth 2020, `fid_infinity`):

# %%
ns = [n for n in (500, 1000, 2000, 5000) if n <= N]
curves = {name: fid_over_n(test_x, sets[name], judge, ns)
          for name in ("real train", "VAE reconstructions", "samples, defaults")}
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for (name, fids), color in zip(curves.items(), ("C2", "C1", "C0")):
    inf, inv = fid_infinity(ns, fids), [1 / n for n in ns]
    slope = (sum(fids) / len(ns) - inf) / (sum(inv) / len(ns))   # a least-squares line passes through the means
    axes[0].plot(inv, fids, "o", color=color, label=f"{name}: FID∞ ≈ {inf:.2f}")
    axes[0].plot([0, inv[0]], [inf, inf + slope * inv[0]], "--", color=color, lw=1)
    if name != "real train":
        base = curves["real train"]
        axes[1].plot(ns, [f / b for f, b in zip(fids, base)], "o-", color=color, label=f"{name}: FID / real-vs-real")
        axes[1].plot(ns, [f - b for f, b in zip(fids, base)], "s:", color=color, label=f"{name}: FID − real-vs-real")
axes[0].set(xlabel="1 / n", ylabel="FID", title="FID against 1/n: straight lines, n = ∞ at the left")
axes[1].set(xscale="log", xlabel="n", title="Ratio and difference to the real-vs-real FID")
axes[0].legend(fontsize=8); axes[1].legend(fontsize=8)
plt.tight_layout(); plt.show()

# %% [markdown]
# Two real sets extrapolate to about 0 at $n=\infty$ (within a few tenths: the fit is itself
# noisy at these n), so **the ratio FID / real-vs-real grows with n without bound**, for samples
# and reconstructions alike: a target like "FID ≤ 1.5× the real-vs-real FID" is met or missed
# depending on n. The **difference** FID − real-vs-real has no such trend, only noise that
# shrinks as n grows; FID∞ does not depend on n at all. Those are the numbers to compare models
# by. With more images the picture is clean: `python benchmarks/benchmark.py n-sweep` (one set of
# 10,000 samples, [`benchmarks/fid_vs_n.md`](../benchmarks/fid_vs_n.md)) measured the ratio at
# 1.69, 2.00, 3.24, 5.90 for n = 1,000, 2,000, 5,000, 10,000, and the difference at 2.16, 1.69,
# 1.62, 1.62.
#
# ## Class accuracy
# The fraction of samples the judge assigns to the class they were asked for, per class.
# Guidance is what lifts it; it also costs variety, which FID sees.

# %%
guided_acc = class_accuracy(judge, samples.images, samples.labels)
plain_acc = class_accuracy(judge, unguided.images, unguided.labels)
x = torch.arange(len(CLASS_NAMES))
plt.figure(figsize=(10, 3.2))
plt.bar(x - 0.2, [plain_acc["per_class_accuracy"][c] for c in x.tolist()], 0.4, label=f"no guidance ({plain_acc['accuracy']:.1%})")
plt.bar(x + 0.2, [guided_acc["per_class_accuracy"][c] for c in x.tolist()], 0.4, label=f"defaults ({guided_acc['accuracy']:.1%})")
plt.bar(x, [acc["per_class_accuracy"][c] for c in x.tolist()], 0.9, fill=False, ls="--", label=f"judge on real test ({acc['accuracy']:.1%})")
plt.xticks(x, CLASS_NAMES, rotation=30); plt.ylim(0.5, 1.0); plt.ylabel("accuracy"); plt.legend(fontsize=8)
plt.title("Does a sample of class y look like class y?"); plt.show()

# %% [markdown]
# Guided samples score *above* the judge's accuracy on real images: guidance pushes each sample
# towards what is most typical of its class, where real garments are more varied.
#
# ## The same from the command line
# ```bash
# python -m fmnist_ldm sample --class all --n-per-class 500 --out samples.npz
# python -m fmnist_ldm evaluate --samples samples.npz      # JSON: fid, fid_real_baseline, kid, accuracy, ...
# python benchmarks/benchmark.py targets                   # the targets, n = 5,000
# ```
