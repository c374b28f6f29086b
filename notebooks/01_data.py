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
# This course builds a generator of clothes: you ask for "a sneaker" and it draws a new one, never
# seen before. It learns from real clothes, and this notebook looks at them first. Everything here
# calls the package `fmnist_ldm`, the same code the training, the command line and the tests use.

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
from fmnist_ldm.course.notebook import notebook_preset
from fmnist_ldm.data import (CLASS_NAMES, class_means, class_spread, find_data_dir, load_fashion_mnist,
                             nearest_mean, to_model_range, to_uint8)
from fmnist_ldm.course.diagram import pipeline_diagram
from fmnist_ldm.diffusion import noising_path
from fmnist_ldm.pipeline import Pipeline
from fmnist_ldm.course.figures import tile

cfg = notebook_preset()

# %% [markdown]
# ## Where the course is going
# The whole pipeline, one box per part; each box names the notebook that teaches it.
# **Training** (top row): a 28×28 garment is squeezed by an encoder into a small 4×7×7 *latent*
# (notebook 02), noise is added to it, and a network, the UNet (notebook 03), learns to tell what
# noise was added (notebook 04). **Generation** (bottom row): start from pure noise, let the UNet
# remove a little of it at each step, steered by the class you asked for, decode the latent back to
# a 28×28 image (notebook 05) and measure how good the images are (notebook 06): FID, in the last
# box, scores how close a whole set of generated images is to a set of real ones, and class accuracy
# how often a trained classifier sees the class that was asked for. Notebook 07 makes generation
# take fewer steps.

# %%
pipeline_diagram()
plt.show()

# %% [markdown]
# This notebook is about the first box, the images. It teaches four things:
# 1. the idea of diffusion in pictures: add noise, learn to remove it;
# 2. the data: 10 classes of grey 28×28 garments, where the files come from, and the [-1, 1] range
#    the models see;
# 3. the average garment of each class, and where the garments of a class vary (your first exercise);
# 4. which classes look alike: a classifier that knows nothing but the averages (your second exercise).
#
# ## Add noise, learn to remove it
# A diffusion model learns to draw by learning to clean. Take a real garment and add a little
# random noise to it, then a little more, step after step: after T = 1000 steps nothing of the
# garment is left (top row below). A network is then shown a noisy garment, the step number t and
# the class, and asked what noise was added. Take away part of its answer and the garment is one
# step less noisy: one step undone. To *generate*, start from pure noise, which no garment made,
# and undo the steps one after another: a new garment appears, one that no image held. Notebook 04
# defines the noising exactly; here it is only a picture.
#
# The real model does this on the 4×7×7 latent, not on the pixels (middle row: the same garment's
# latent noised to the same steps, decoded so that you can see it; noise in the latent decodes to
# blotches, not grain). The bottom row is what the shipped model (its trained weights come with the
# course, in `model/`) makes of each noisy latent: its guess of the clean garment.

# %%
test_x, test_y = load_fashion_mnist("test", cfg.data_dir)     # 10,000 garments; where from: next section
garment, label = test_x[:1], test_y[:1]                       # the first test image and its class
name = CLASS_NAMES[int(label)]
pipe = Pipeline.from_pretrained(device="cpu")                 # the shipped VAE and UNet
steps = [0, 100, 250, 400, 550, 700, 850, 999]
noise = torch.Generator().manual_seed(0)

pixels = noising_path(pipe.schedule, to_model_range(garment), steps, generator=noise)   # noise, step by step
z0 = pipe.encode(to_model_range(garment))                                                # the 4×7×7 latent
latents = noising_path(pipe.schedule, z0, steps, generator=noise)
guesses = []
with torch.no_grad():
    for t, z_t in zip(steps, latents):
        out = pipe.unet(z_t, torch.tensor([t]), label)                                   # the UNet's answer
        guesses.append(pipe.schedule.split(out, z_t, torch.tensor([t]), pipe.cfg.prediction)[0])  # -> clean guess
# (what exactly the UNet outputs, and how a guess of the clean latent follows from it: notebook 04)

rows = {"noised pixels": pixels, "noised latent,\ndecoded": [pipe.decode(z) for z in latents],
        "the model's guess\nof the clean one": [pipe.decode(z) for z in guesses]}
fig, axes = plt.subplots(3, len(steps), figsize=(13, 5.4))
for r, (row_name, images) in enumerate(rows.items()):
    for k, (t, image) in enumerate(zip(steps, images)):
        axes[r, k].imshow(image[0, 0].clamp(-1, 1), cmap="gray", vmin=-1, vmax=1)
        axes[r, k].set_xticks([]), axes[r, k].set_yticks([])
        axes[0, k].set_title(f"step t = {t}")
    axes[r, 0].set_ylabel(row_name, fontsize=9)
fig.suptitle(f"a real {name}, noised step by step, and the shipped model's guesses")
plt.show()

rms = lambda a, b: (a.float() - b.float()).pow(2).mean().sqrt().item()    # root mean square difference, pixel levels
last_guess = to_uint8(pipe.decode(guesses[-1]))[0]
to_garment, to_average = rms(last_guess, garment[0]), rms(last_guess, class_means(test_x, test_y)[int(label)])
print(f"At t = {steps[-1]} the guess differs from this {name} by {to_garment:.0f} pixel levels (root mean "
      f"square) and from the average {name} of the test set by {to_average:.0f}: it is "
      f"{'closer to the average than to the garment' if to_average < to_garment else 'closer to the garment'}.")

# %% [markdown]
# Read the bottom row from left to right. With little noise the guess is this garment. The more
# noise, the less the input says about *which* garment it was, and the guess becomes blurrier. At
# the last step nothing of the garment is left, and the line above compares the guess with the
# garment and with the average garment of its class. A model that cannot tell which garment it was
# does best, on average, by guessing the average of all it could have been: blurry. Keep that in
# mind when the class averages appear below. Generation never needs the bottom row to be sharp at
# once: each step only moves a little towards the guess, and the next guess, from a less noisy
# input, is sharper.
#
# ## Where the data comes from
# Fashion-MNIST: 70,000 grey 28×28 images of clothes in 10 classes, 60,000 to train on and 10,000
# to test with. `find_data_dir` tries, in order: a folder you name (`data_dir=` or `FMNIST_DATA`),
# Debian's `dataset-fashion-mnist` package, then torchvision's download (online only). It never
# invents data.

# %%
print("found in:", find_data_dir(cfg.data_dir))
train_x, train_y = load_fashion_mnist("train", cfg.data_dir)
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
# ## Pixel statistics, and what the models see
# The files hold bytes, 0 (black background) to 255 (white). The models see floats in [-1, 1] with
# a channel axis, shaped [N, 1, 28, 28]: `to_model_range` computes x = pixel / 127.5 − 1, and
# `to_uint8` goes back (the first figure already used both). Much of each image is background:
# count the zeros below.

# %% tags=["nbval-check-output"]
x = train_x.float()
print(f"mean pixel {x.mean():.1f}, std {x.std():.1f}, share of zeros {(train_x == 0).float().mean():.1%}")
print("to_model_range of the pixels 0, 255:", to_model_range(torch.tensor([[[0, 255]]], dtype=torch.uint8)).flatten().tolist())
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
# ## The average garment of each class
# `class_means` averages, pixel by pixel, the images of each class. Means are blurry, but they
# already show what the model must learn: trousers have two legs, the average sandal is faint, and
# T-shirts, pullovers, coats and shirts share one silhouette.

# %%
means = class_means(train_x, train_y)                       # [10, 28, 28], pixel levels 0..255
fig, axes = plt.subplots(1, len(CLASS_NAMES), figsize=(15, 2))
for c, ax in enumerate(axes):
    im = ax.imshow(means[c], cmap="magma", vmin=0, vmax=255)
    ax.set_title(CLASS_NAMES[c], fontsize=9)
    ax.axis("off")
fig.colorbar(im, ax=axes, shrink=0.8, label="mean pixel")
plt.show()

# %% [markdown]
# ## Your turn
# Write each function below where it says so, then run its cell: the checker compares it with
# the library's own implementation on a few small inputs and says what is wrong if it is. The
# solution is in the hidden cell under each exercise (click to show it); it runs, and is checked, too.
#
# **Exercise 1: Where do the garments of a class vary?** A mean says where a class's garment is on
# average, not how much the garments differ. Write the *spread* of each class: for every class c and
# every pixel, the standard deviation of that pixel over the images labelled c (torch's `std`, in
# pixel levels 0..255). The result is one image per class: bright where the garments of that class
# disagree, dark where they all agree. The checker's images are not 28×28 and it has fewer than 10
# classes, so use the sizes it gives.

# %% tags=["nbval-check-output"]
from fmnist_ldm.course.exercises import check_class_spread

def my_class_spread(images, labels, num_classes):
    """uint8 [N, H, W], labels [N] in 0..num_classes-1 -> float [num_classes, H, W]."""
    raise NotImplementedError   # your code here

check_class_spread(my_class_spread)

# %% tags=["solution", "nbval-check-output"] cellView="form" jupyter={"source_hidden": true}
#@title Solution (hidden in Jupyter and Colab: click to show)
def class_spread_solution(images, labels, num_classes):
    """uint8 [N, H, W], labels [N] in 0..num_classes-1 -> float [num_classes, H, W]."""
    return torch.stack([images[labels == c].float().std(0) for c in range(num_classes)])


assert check_class_spread(class_spread_solution)

# %% [markdown]
# The library's `class_spread` computes the same; here it is on the 60,000 training images.

# %%
spread = class_spread(train_x, train_y)
fig, axes = plt.subplots(1, len(CLASS_NAMES), figsize=(15, 2))
for c, ax in enumerate(axes):
    im = ax.imshow(spread[c], cmap="viridis", vmin=0, vmax=float(spread.max()))
    ax.set_title(CLASS_NAMES[c], fontsize=9)
    ax.axis("off")
fig.colorbar(im, ax=axes, shrink=0.8, label="std of the pixel")
plt.show()
order = spread.mean((1, 2)).argsort()
print(f"averaged over the pixels, the {CLASS_NAMES[order[-1]]} images vary most and the "
      f"{CLASS_NAMES[order[0]]} images least")

# %% [markdown]
# Look for the bright places: that is where a class's garments disagree, and where a generator must
# make a choice for each new image. Bright outlines mean the garments end in different places there
# (a wider or narrower cut, longer or shorter sleeves, a handle or none); a dark background means
# every image is black there. The spread is what a class average throws away, and what a generator
# must get back: a model that drew the mean every time would have the right class and none of this
# variety (notebook 06 measures both).
#
# **Exercise 2: A classifier that knows only the averages.** Which classes look alike? Ask the
# means. Write the *nearest-mean classifier*: for each image, the index of the mean image closest
# to it, in Euclidean distance (the sum over pixels of the squared differences). It needs no
# training but the class means. Again the checker's sizes differ from Fashion-MNIST's.

# %% tags=["nbval-check-output"]
from fmnist_ldm.course.exercises import check_nearest_mean

def my_nearest_mean(images, means):
    """uint8 [N, H, W], float means [K, H, W] -> int64 [N], the index of the closest mean."""
    raise NotImplementedError   # your code here

check_nearest_mean(my_nearest_mean)

# %% tags=["solution", "nbval-check-output"] cellView="form" jupyter={"source_hidden": true}
#@title Solution (hidden in Jupyter and Colab: click to show)
def nearest_mean_solution(images, means):
    """uint8 [N, H, W], float means [K, H, W] -> int64 [N], the index of the closest mean."""
    differences = images[:, None].float() - means[None]          # [N, K, H, W]
    return differences.pow(2).sum((2, 3)).argmin(1)


assert check_nearest_mean(nearest_mean_solution)

# %% [markdown]
# The library's `nearest_mean`, with the ten training means, on the 10,000 test images: each row of
# the table below is a true class, each column the class it was given.

# %%
predicted = nearest_mean(test_x, means)
k = len(CLASS_NAMES)
confusion = torch.zeros(k, k, dtype=torch.long).index_put_((test_y, predicted), torch.ones_like(test_y), accumulate=True)
per_class = confusion.diag() / confusion.sum(1)
fig, ax = plt.subplots(figsize=(6.5, 5.5))
im = ax.imshow(confusion, cmap="Blues")
ax.set_xticks(range(k), CLASS_NAMES, rotation=45, ha="right"), ax.set_yticks(range(k), CLASS_NAMES)
ax.set(xlabel="closest mean", ylabel="true class", title="the nearest-mean classifier on the test set")
fig.colorbar(im, label="test images")
plt.show()
off = confusion.clone().fill_diagonal_(0)                    # the mistakes only
print(f"right on {(predicted == test_y).float().mean():.0%} of the test images (guessing: {1 / k:.0%}); "
      f"best on {CLASS_NAMES[per_class.argmax()]} ({per_class.max():.0%}), worst on "
      f"{CLASS_NAMES[per_class.argmin()]} ({per_class.min():.0%})")
top = off.flatten().argsort(descending=True)[:3]
print("the most common mistakes:", "; ".join(f"{off.flatten()[i]} {CLASS_NAMES[i // k]} images closest to the "
                                             f"{CLASS_NAMES[i % k]} mean" for i in top.tolist()))

# %% [markdown]
# The bright cells off the diagonal are the classes that look alike to a ruler laid over pixels.
# Which classes are they, and are they the ones that shared a silhouette in the class averages?
# Classes that look alike are the ones a generator mixes up most easily. Notebook 06 asks the same
# question ("which class is this?") of a trained network, the judge of the generated images.

# %% [markdown]
# ## What we learned
# - Diffusion in one sentence: noise real garments step by step, train a network to undo a step,
#   then generate by undoing all the steps from pure noise. The real model does it on 4×7×7
#   latents (notebooks 02–05).
# - Where a noisy input cannot say which garment it was, the best guess is the average of the
#   garments it could have been: blurry.
# - Fashion-MNIST is 70,000 grey 28×28 garments in 10 balanced classes; `fmnist_ldm.data` finds the
#   files and never invents data. Much of each image is background (0); the models see [-1, 1].
# - A class's mean shows its shape, its spread shows where its garments differ: what a generator
#   must vary.
# - Nearest means confuse the classes that share a silhouette: the hard classes for the generator
#   and for its judge (notebook 06).
#
# ## Check your understanding
# 1. Why is the average sandal so faint next to the average trouser, and what would you expect
#    the sandal's spread image to look like?
# 2. A generator that outputs the class-average image for every sample would get the class right.
#    What would be wrong with it, and which kind of score would catch it?
# 3. In the top row of the first figure, at which step can you no longer tell the garment's class?
#    Why must the network be told t, the step number, as well as the noisy image?

# %%
from fmnist_ldm.course.notebook import say_elapsed
say_elapsed();
