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
# # 01 · The data: Fashion-MNIST
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/fmnist-ldm/fmnist-ldm/blob/main/notebooks/01_data.ipynb)
#
# *In Colab, pick a GPU first: Runtime → Change runtime type → GPU. The first cell then fetches the
# course and its shipped weights; on a GPU the notebooks train the `full` recipe, on a CPU the
# small `fast` one, and each says which before it trains.*
#
# Before we generate clothes we look at the real ones: 70,000 grey 28×28 images in 10 classes
# (60,000 to train on, 10,000 to test with). Everything here calls `fmnist_ldm.data`, the same
# code the training, the CLI and the tests use.

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
from fmnist_ldm.notebook import notebook_preset
from fmnist_ldm.data import CLASS_NAMES, find_data_dir, load_fashion_mnist
from fmnist_ldm.viz import tile

cfg = notebook_preset()

# %% [markdown]
# ## Where the data comes from
# `find_data_dir` tries, in order: a folder you name (`data_dir=` or `FMNIST_DATA`), Debian's
# `dataset-fashion-mnist` package, then torchvision's download (online only). It never invents data.

# %%
print("found in:", find_data_dir(cfg.data_dir))
train_x, train_y = load_fashion_mnist("train", cfg.data_dir)
test_x, test_y = load_fashion_mnist("test", cfg.data_dir)
print("train", tuple(train_x.shape), train_x.dtype, "| test", tuple(test_x.shape))
print("images per class (train):", torch.bincount(train_y).tolist())

# %% [markdown]
# ## Ten of each class

# %%
rows = torch.cat([train_x[train_y == c][:10] for c in range(len(CLASS_NAMES))])
fig, ax = plt.subplots(figsize=(8, 8.5))
ax.imshow(tile(rows, ncol=10, scale=1), cmap="gray")
ax.set_yticks([2 + 30 * c + 14 for c in range(len(CLASS_NAMES))], CLASS_NAMES)
ax.set_xticks([])
ax.set_title("Fashion-MNIST: one row per class")
plt.show()

# %% [markdown]
# ## The average garment of each class
# Means are blurry but already show what the model must learn: trousers have two legs, sandals
# are mostly background, and T-shirts, pullovers, coats and shirts share one silhouette —
# these four are where classifiers (and our generator) get confused.

# %%
fig, axes = plt.subplots(1, len(CLASS_NAMES), figsize=(15, 2))
for c, ax in enumerate(axes):
    im = ax.imshow(train_x[train_y == c].float().mean(0), cmap="magma", vmin=0, vmax=255)
    ax.set_title(CLASS_NAMES[c], fontsize=9)
    ax.axis("off")
fig.colorbar(im, ax=axes, shrink=0.8, label="mean pixel")
plt.show()

# %% [markdown]
# ## Pixel statistics
# Most pixels are background (0). The models see pixels scaled to [-1, 1]
# (`to_model_range`): x = pixel / 127.5 − 1.

# %%
x = train_x.float()
print(f"mean pixel {x.mean():.1f}, std {x.std():.1f}, share of zeros {(train_x == 0).float().mean():.1%}")
fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3))
a1.hist(train_x[:5000].flatten().numpy(), bins=64, log=True, color="C0")
a1.set(title="pixel values (log count)", xlabel="pixel 0..255")
classes = range(len(CLASS_NAMES))
a2.bar(classes, [x[train_y == c].mean().item() for c in classes], color="C1")
a2.set_xticks(classes, CLASS_NAMES, rotation=45, ha="right")
a2.set(title="mean brightness per class", ylabel="mean pixel (0..255)")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Your turn
# Write each function below where it says so, then run its cell: the checker compares it with
# the library's own implementation on a few inputs and says what is wrong if it is. The
# solution is in the hidden cell under each exercise (click to show it); it runs, and is checked, too.

# %% [markdown]
# **Exercise 1: Scale to what the models see.** The models never see bytes: they take floats in $[-1, 1]$ with a channel axis,
# $x = \text{pixel} / 127.5 - 1$, shaped `[N, 1, 28, 28]`. Write it.

# %%
from fmnist_ldm.exercises import check_to_model_range

def my_to_model_range(images):
    """uint8 [N, 28, 28] in 0..255 -> float [N, 1, 28, 28] in [-1, 1]."""
    raise NotImplementedError   # your code here

check_to_model_range(my_to_model_range)

# %% tags=["solution"] cellView="form" jupyter={"source_hidden": true}
#@title Solution (hidden in Jupyter and Colab: click to show)
def to_model_range(images):
    """uint8 [N, 28, 28] in 0..255 -> float [N, 1, 28, 28] in [-1, 1]."""
    return (images.float() / 127.5 - 1).unsqueeze(1)


assert check_to_model_range(to_model_range)

# %% [markdown]
# **Exercise 2: The class averages.** Write the mean image of each class, as in the figure of class averages above: for each
# class $c$, the average over the images with label $c$, pixel values kept in 0..255.

# %%
from fmnist_ldm.exercises import check_class_means

def my_class_means(images, labels):
    """uint8 [N, 28, 28], labels [N] -> float [10, 28, 28], one mean image per class."""
    raise NotImplementedError   # your code here

check_class_means(my_class_means)

# %% tags=["solution"] cellView="form" jupyter={"source_hidden": true}
#@title Solution (hidden in Jupyter and Colab: click to show)
def class_means(images, labels):
    """uint8 [N, 28, 28], labels [N] -> float [10, 28, 28], one mean image per class."""
    return torch.stack([images[labels == c].float().mean(0) for c in range(10)])


assert check_class_means(class_means)

# %% [markdown]
# ## What we learned
# - Fashion-MNIST is 70,000 grey 28×28 garments in 10 balanced classes; `fmnist_ldm.data` finds the
#   files and never invents data.
# - Most pixels are background (0); the models see pixels scaled to [−1, 1].
# - T-shirt/top, pullover, coat and shirt share one silhouette: they will be the hard classes for
#   the generator and for the classifier that judges it (notebook 06).
# - A class average is blurry: a model that predicts the average of what it cannot tell apart
#   draws blur. Keep that picture in mind for notebooks 02 and 05.
#
# ## Check your understanding
# 1. Why is the average sandal so faint next to the average trouser? (Hint: thin straps, in a
#    different place in every image.)
# 2. A generator that outputs the class-average image for every sample would get the class right.
#    What would be wrong with it, and which kind of score would catch it?
