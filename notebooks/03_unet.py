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
# # 03 · The denoiser: a small UNet
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/fmnist-ldm/fmnist-ldm/blob/main/notebooks/03_unet.ipynb)
#
# *In Colab, pick a GPU first: Runtime → Change runtime type → GPU. The first cell then fetches the
# course and its shipped weights; on a GPU the notebooks train the `full` recipe, on a CPU the
# small `fast` one, and each says which before it trains.*
#
# The UNet is the network that does the work of a diffusion model. It takes three things: a
# *noisy latent* $z_t$ (a 4×7×7 latent of notebook 02's VAE with noise mixed in), the *step* $t$,
# a number from 0 to 999 that says how much noise (the larger, the more), and the *class* $y$ of
# the garment we want. It returns one tensor of the latent's shape, 4×7×7. What that tensor is
# trained to be, and how the noise is mixed in, is notebook 04's subject. Here we open the network
# up and look inside, using the trained weights shipped in `model/`; nothing is trained.

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
import inspect
import math
import matplotlib.pyplot as plt
import torch
from fmnist_ldm.course.notebook import notebook_preset
from fmnist_ldm.data import CLASS_NAMES, load_fashion_mnist, to_model_range
from fmnist_ldm.course.diagram import pipeline_diagram, unet_diagram
from fmnist_ldm.pipeline import Pipeline
from fmnist_ldm.unet import Attention, Level, ResBlock, layer_shapes, timestep_embedding

cfg = notebook_preset()
pipe = Pipeline.from_pretrained(device="cpu")   # the shipped weights; single forward passes: the CPU is plenty
unet = pipe.unet
print(f"This notebook opens the shipped UNet (widths {pipe.cfg.unet_channels}); the one notebook 04 "
      f"trains in this mode has widths {cfg.unet_channels}, the same layout.")

# %%
pipeline_diagram("03"); plt.show()

# %% [markdown]
# The highlighted box is the UNet. The same network also does the "removes noise, step by step" of
# the generating row (notebooks 04 and 05 run it so). This notebook teaches:
# 1. **The shape of the network**: it shrinks the 7×7 latent to 4×4 and grows it back, and *skip
#    connections* hand what the way down saw to the way up.
# 2. **The residual block and the time**: the step $t$ becomes a vector of sines and cosines, and
#    every residual block adds it to its channels.
# 3. **How the class gets in**: cross-attention to a few learned tokens per class, and a class
#    embedding added to the time's.
# 4. **Where the parameters are.**

# %% [markdown]
# ## The network at a glance
# The picture below is drawn from the model itself (`unet_diagram` runs one input through it and
# records what each layer gives), so it shows what the code does. Read it left to right, in the
# order the layers run. Each box is a layer, with its output's shape, channels × height × width,
# in bold; a box's row is its resolution. The grey brackets are the skip connections: a layer's
# output is kept, and a level on the way up gets it glued (concatenated, along the channels) to
# its own input. The orange line is the time: every residual block gets it. The purple line is the
# class: the blocks with cross-attention read it.

# %%
unet_diagram(unet, pipe.cfg.sample_shape); plt.show()

# %% [markdown]
# ## A walk through the shapes
# The same trace as a table: each layer's input and output, and for a level on the way up, whose
# output it concatenates. Watch the odd 7: the stride-2 convolution (a 3×3 convolution that moves
# two pixels at a time, with one pixel of padding) rounds 7 up to 4; upsampling doubles 4 to 8, and
# the UNet crops that to 7 so that it lines up with the skip connection from the way down.

# %% tags=["nbval-check-output"]
shapes = layer_shapes(unet, pipe.cfg.sample_shape)
fmt = lambda s: "×".join(map(str, s))
for r in shapes:
    what = r["kind"] + (" (" + " + ".join(r["parts"]) + ")" if r["parts"] else "")
    skip = f"   [h, skip from {r['skip']}]" if "skip" in r else ""
    crop = f"   (upsampled to {fmt(r['uncropped'])}, then cropped)" if "uncropped" in r else ""
    print(f"{r['name']:8s} {what:28s} {fmt(r['inp']):>9s} -> {fmt(r['out']):9s}{skip}{crop}")

# %% [markdown]
# The skips are used last in, first out: the first level on the way up takes the output kept last
# on the way down, and the last level takes `conv_in`'s. That is why the brackets in the picture
# nest, and why the way up has one more level per resolution than the way down: at each
# resolution the way down keeps its levels' outputs and one more, `conv_in`'s at the top, the
# downsampling convolution's below it.
#
# ## Inside a level: the residual block
# Every box marked ResBlock is this module. Its forward pass is two lines: normalise, SiLU and a
# 3×3 convolution; add the embedding, one number per channel, the same at every pixel; normalise,
# SiLU, convolve again; and add the input back (through a 1×1 convolution when the channel count
# changes). Here is the first block on the way up, which takes the 4×4 features and a skip glued
# together and gives fewer channels, and the code of its forward pass:

# %% tags=["nbval-check-output"]
print(unet.up[0].res)
print(inspect.getsource(ResBlock.forward))

# %% [markdown]
# `GroupNorm` normalises groups of channels (like batch norm, but per image); `emb` is the
# time (+ class) vector of the picture's orange line, turned into one shift per channel by a
# `Linear`. So the time does not enter once at the start: every block hears it.

# %% [markdown]
# ## Telling the network the time: sinusoidal embeddings
# A single number $t$ is a poor input for a network: it has to work at $t = 3$ and at $t = 900$,
# and nearby steps should look nearby. So $t$ becomes a vector of cosines and sines at many
# frequencies, $\mathrm{emb}(t) = [\cos(t\,\omega_i), \sin(t\,\omega_i)]$ with
# $\omega_i = 10000^{-i/h}$, $i = 0..h-1$, $h$ = half the length: fast frequencies tell nearby
# steps apart, slow ones give the coarse position. An MLP turns it into the vector every residual
# block adds. Below, the embedding for all 1000 steps (a zoom on the first 100 beside it, where
# each step gets several pixels), and four of its rows as curves. Each row's period is a fixed
# factor longer than the one above, so neighbouring rows drift in and out of phase: the arcs.
# (Why the left image is drawn smoothed: "Going further" at the end.)

# %%
dim = unet.base                                         # the UNet's embedding length
emb = timestep_embedding(torch.arange(1000), dim)
fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(15, 3.5), gridspec_kw={"width_ratios": [3, 1.6, 2]})
im = a1.imshow(emb.T, aspect="auto", cmap="RdBu_r", interpolation="antialiased")
a1.set(xlabel="timestep t", ylabel="embedding dimension",
       title="sinusoidal timestep embedding (cos half on top, sin half below)")
a2.imshow(emb[:100].T, aspect="auto", cmap="RdBu_r", interpolation="nearest", extent=(-0.5, 99.5, dim - 0.5, -0.5))
a2.set(xlabel="timestep t", title="zoom: t < 100")
fig.colorbar(im, ax=a2)
for d in (6, 10, 14, 18):
    a3.plot(emb[:, d], label=f"dim {d}: period {2 * math.pi / 10000 ** (-d / (dim // 2)):.0f} steps")
a3.set(xlabel="timestep t", title="four cos dimensions, fast to slow"); a3.legend(fontsize=8, loc="lower left")
plt.tight_layout(); plt.show()

# %% [markdown]
# The embedding by hand, at the UNet's length (`unet.base` numbers), checked against
# `timestep_embedding`, the function the UNet calls. The frequencies are written as
# $\exp(-\ln 10000 \cdot i/h)$, which is $10000^{-i/h}$ computed the way the library computes it
# (the power computed directly rounds a little differently).

# %% tags=["nbval-check-output"]
t = torch.tensor([0, 1, 10, 300, 999])                  # a few timesteps
half = unet.base // 2                                   # h: the number of frequencies
omega = torch.exp(-math.log(10000) * torch.arange(half) / half)     # omega_i = 10000^(-i/h)
by_hand = torch.cat([torch.cos(t[:, None] * omega), torch.sin(t[:, None] * omega)], dim=1)
torch.testing.assert_close(by_hand, timestep_embedding(t, unet.base))
print(f"{tuple(by_hand.shape)}: the cosines, then the sines; periods from {2 * math.pi / omega[0]:.1f} "
      f"to {2 * math.pi / omega[-1]:,.0f} timesteps")

# %% [markdown]
# ## How the class gets in: cross-attention to class tokens
# Each class owns a few learned vectors, its *tokens* (one more index, after the ten classes, is a
# learned "no class", whose tokens classifier-free guidance uses: notebook 05). Cross-attention lets every position of
# the 4×4 feature map decide how much to read from each token: its *query* (a vector made from
# that position's features) is compared with each token's *key*, the softmax of the scores gives
# weights that sum to 1, and the position reads the weighted sum of the tokens' *values*. Over
# **one** token the softmax would always be 1, a constant, so there are several. The attention has
# 4 heads, each with its own queries and keys, so each head makes its own choice.
#
# To see it at work we need a noisy latent: a real sneaker, encoded, with the noise of step
# t = 300 mixed in by `pipe.schedule.q_sample` (its formula is where notebook 04 starts). Below,
# the weights each head (rows) gives each token (columns) at each of the 16 positions, in the
# first cross-attention. White is the uniform share, 1 over the number of tokens; red is more,
# blue less.

# %%
from matplotlib.colors import TwoSlopeNorm
levels = [m for m in unet.modules() if isinstance(m, Level) and m.xattn is not None]
test_x, test_y = load_fashion_mnist("test", cfg.data_dir)
K = unet.class_tokens                                   # tokens per class

@torch.no_grad()
def cross_attention(image, c, t, level=levels[0]):
    """Attention weights [heads, 16 positions, K tokens] of one cross-attention layer, for an
    image's latent noised to timestep t, with class c as the prompt."""
    seen = {}
    hook = level.xattn.register_forward_pre_hook(lambda m, args: seen.update(inp=args[0]))
    noise = torch.randn(1, *pipe.cfg.sample_shape, generator=torch.Generator().manual_seed(0))
    z_t = pipe.schedule.q_sample(pipe.encode(to_model_range(image)), torch.tensor([t]), noise)
    unet(z_t, torch.tensor([t]), torch.tensor([c]))
    hook.remove()
    context = unet.class_emb(torch.tensor([c])).unflatten(-1, (K, -1))
    return level.xattn.weights(seen["inp"], context)[0], z_t

sneaker = test_x[test_y == 7][:1]
w, z_t = cross_attention(sneaker, 7, 300)
heads = w.shape[0]
fig = plt.figure(figsize=(12, 5.2))
grid = fig.add_gridspec(heads, 3 + K, width_ratios=[1.4, 1.4, 0.3] + [1] * K, hspace=0.3)
for r, (img, title) in enumerate(((sneaker[0], "the sneaker"), (pipe.decode(z_t)[0, 0], "noised, t = 300"))):
    ax = fig.add_subplot(grid[2 * r:2 * r + 2, 0:2]); ax.imshow(img, cmap="gray"); ax.set_title(title); ax.axis("off")
norm = TwoSlopeNorm(vmin=0, vcenter=1 / K, vmax=1)      # white = uniform over the K tokens
for h in range(heads):
    for k in range(K):
        ax = fig.add_subplot(grid[h, 3 + k])
        im = ax.imshow(w[h, :, k].reshape(4, 4), cmap="RdBu_r", norm=norm)
        ax.set_xticks([]); ax.set_yticks([])
        if h == 0: ax.set_title(f"token {k}", fontsize=9)
        if k == 0: ax.set_ylabel(f"head {h}", fontsize=9)
fig.colorbar(im, ax=fig.axes[2:], shrink=0.8, label="attention weight")
fig.suptitle(f"cross-attention to the '{CLASS_NAMES[7]}' tokens, per head, at each 4×4 position")
plt.show()
favourite = w.argmax(-1)                                # [heads, positions]: the token each position reads most
changes = int((favourite != favourite[:, :1]).any(-1).sum())
one_head, averaged = w.max(-1).values.mean(), w.mean(0).max(-1).values.mean()
print(f"Each position's weights sum to 1 in every head: {torch.allclose(w.sum(-1), torch.ones(heads, 16))}.")
print(f"In one head, a position gives its favourite token {one_head:.2f} of its weight on average (uniform "
      f"would be {1 / K:.2f}); in {changes} of the {heads} heads the favourite token changes across the map.")
print(f"Averaged over the {heads} heads first, the favourite token gets {averaged:.2f}: averaging moved "
      f"{(one_head - averaged) / (one_head - 1 / K):.0%} of the way back to uniform.")

# %% [markdown]
# Compare the lines above: how much a single head's favourite token gets, against the uniform
# share, and how much of that is left once the heads are averaged. Heads that prefer different
# tokens partly cancel in the mean, so look at attention per head: a head-averaged map looks
# flatter than any of the heads that make it. Where a map *is* uniform, the layer adds the average of
# the class's value vectors: the same class-dependent shift at every position.
#
# The class also takes a second, plainer route: a class embedding added to the time embedding (the
# "+ class embedding" on the picture's orange line), so it shifts the channels of every residual
# block, the 7×7 ones too, which have no attention. SDXL does the same with a pooled text
# embedding. With both routes the shipped UNet scored better than with cross-attention alone at the
# same training budget (`benchmarks/README.md`, "What moved FID next"), measured by FID, a
# distance between the statistics of generated and real images, lower is better (notebook 06).
#
# Inside that first cross-attention layer, by hand, for the noised sneaker. The 16 positions of the
# normalised 4×4 feature map give the queries $Q$, and the class's tokens give the keys $K$ and
# values $V$. Each head computes $\mathrm{softmax}(QK^\top/\sqrt d)\,V$ on its own slice of $d$ =
# C / heads channels (dividing by $\sqrt d$ keeps the scores from growing with $d$). The heads'
# outputs are put side by side, projected, and *added* to the feature map (a residual). The
# weights are the ones plotted above, and the output is what the layer returns.

# %%
layer = levels[0].xattn                                 # the first cross-attention, as in the plots
seen = {}
hook = layer.register_forward_pre_hook(lambda m, args: seen.update(x=args[0]))
with torch.no_grad():
    unet(z_t, torch.tensor([300]), torch.tensor([7]))   # the noised sneaker again, to catch the layer's input
    hook.remove()
    x = seen["x"]                                       # [1, C, 4, 4] feature map
    context = unet.class_emb(torch.tensor([7])).unflatten(-1, (K, -1))   # [1, K tokens, C]
    tokens = layer.norm(x).flatten(2).transpose(1, 2)   # [1, 16 positions, C]
    split = lambda a: a.unflatten(-1, (layer.heads, -1)).transpose(1, 2)   # -> [1, heads, n, d]
    q, (k, v) = split(layer.q(tokens)), map(split, layer.kv(context).chunk(2, dim=-1))
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)   # [1, heads, 16, K]
    out = layer.out((weights @ v).transpose(1, 2).flatten(2))                         # heads side by side
    by_hand = x + out.transpose(1, 2).reshape(x.shape)  # the residual: the layer adds what it read
    torch.testing.assert_close(weights, layer.weights(x, context))
    torch.testing.assert_close(by_hand, layer(x, context))
    print(f"queries {tuple(q.shape)}, keys {tuple(k.shape)}, values {tuple(v.shape)}: by hand = the layer, "
          f"largest difference {(by_hand - layer(x, context)).abs().max():.1e}")

# %% [markdown]
# ## Where the parameters are
# Each top-level part's parameter count, then the residual blocks, the attention layers and the
# rest summed over the whole network:

# %% tags=["nbval-check-output"]
count = lambda m: sum(p.numel() for p in m.parameters())
total = count(unet)
for name, child in unet.named_children():
    print(f"{name:14s} {count(child):>9,}")
print(f"{'total':14s} {total:>9,}")
res = sum(count(m) for m in unet.modules() if isinstance(m, ResBlock))
attn = sum(count(m) for m in unet.modules() if isinstance(m, Attention))      # self- and cross-attention
print(f"\nresidual blocks {res / total:.0%}, attention layers {attn / total:.0%}, the rest "
      f"(input and output convolutions, up/down sampling, time MLP, class embeddings) {1 - (res + attn) / total:.0%}")

# %% [markdown]
# ## Your turn
# Write each function below where it says so, then run its cell: the checker compares it with
# what the library's model does on inputs of its own and says what is wrong if it is. The
# solution is in the hidden cell under each exercise (click to show it); it runs, and is checked, too.
#
# **Exercise 1: The shapes of a bigger UNet.** Predict, without building the network, the input
# shape (C, H, W) of every level on the way up, in order, for a UNet with three resolutions of
# widths `channels`, `blocks` levels per resolution on the way down (so `blocks + 1` on the way up),
# run on a height × width input that need not be square. Use the rules of the shape walk above:
# what each layer's output is, which outputs are kept, and in which order the way up takes them.

# %% tags=["nbval-check-output"]
from fmnist_ldm.course.exercises import check_up_level_inputs

def my_up_level_inputs(channels, blocks, height, width):
    """channels: widths per resolution, e.g. (24, 40, 56) -> list of (C, H, W), one per level on the way up."""
    raise NotImplementedError   # your code here

check_up_level_inputs(my_up_level_inputs)

# %% tags=["solution", "nbval-check-output"] cellView="form" jupyter={"source_hidden": true}
#@title Solution (hidden in Jupyter and Colab: click to show)
def up_level_inputs(channels, blocks, height, width):
    h, w = height, width
    skips, sizes = [(channels[0], h, w)], [(h, w)]      # conv_in's output is kept first
    for i, c in enumerate(channels):
        skips += [(c, h, w)] * blocks                   # each level on the way down
        if i < len(channels) - 1:
            h, w = (h + 1) // 2, (w + 1) // 2           # stride 2, padding 1: rounds up
            sizes.append((h, w))
            skips.append((c, h, w))                     # the downsampling conv's output is kept too
    shapes, c = [], channels[-1]
    for i in reversed(range(len(channels))):
        h, w = sizes[i]                                 # upsampled, then cropped to the skip's size
        for _ in range(blocks + 1):
            shapes.append((c + skips.pop()[0], h, w))   # [h, skip]: channels add; last kept, first used
            c = channels[i]
    return shapes


assert check_up_level_inputs(up_level_inputs)

# %% [markdown]
# **Exercise 2: A residual block's parameters, by hand.** Count the learned numbers of a
# `ResBlock(c_in, c_out, emb_dim)` from what the block holds (printed in "Inside a level" above):
# weights and biases of each layer, and the GroupNorms' too. The checker asks for a few blocks,
# some that change the channel count and some that do not, and counts the real module's.

# %% tags=["nbval-check-output"]
from fmnist_ldm.course.exercises import check_resblock_params

def my_resblock_params(c_in, c_out, emb_dim):
    """-> int, the number of parameters of ResBlock(c_in, c_out, emb_dim)."""
    raise NotImplementedError   # your code here

check_resblock_params(my_resblock_params)

# %% tags=["solution", "nbval-check-output"] cellView="form" jupyter={"source_hidden": true}
#@title Solution (hidden in Jupyter and Colab: click to show)
def resblock_params(c_in, c_out, emb_dim):
    convs = (9 * c_in * c_out + c_out) + (9 * c_out * c_out + c_out)   # two 3x3 convs: weights + biases
    norms = 2 * c_in + 2 * c_out                                       # two GroupNorms: a scale and a shift per channel
    emb = emb_dim * c_out + c_out                                      # Linear(emb_dim, c_out)
    skip = c_in * c_out + c_out if c_in != c_out else 0               # 1x1 conv; the identity has none
    return convs + norms + emb + skip


assert check_resblock_params(resblock_params)
block = unet.up[0].res                                                 # the block printed above
conv = block.in_layers[2]
by_hand = resblock_params(conv.in_channels, conv.out_channels, block.emb[1].in_features)
print(f"the shipped UNet's first block on the way up: {by_hand:,} by hand, {count(block):,} in the model")

# %% [markdown]
# **Exercise 3: How alike are two steps?** How similar does the network find step $t$ and step
# $t + k$, before its MLP? Write the cosine similarity (the dot product divided by both lengths)
# of $\mathrm{emb}(t)$ and $\mathrm{emb}(t + k)$ for every $t$ in `t` and every $k$ in `k`, using the
# library's `timestep_embedding`. Then print it for `t = torch.tensor([0, 500])` and a few `k`:
# what do you notice about the rows?

# %% tags=["nbval-check-output"]
from fmnist_ldm.course.exercises import check_embedding_similarity

def my_embedding_similarity(t, k, dim):
    """t: int [N], k: int [K] -> [N, K], the cosine similarity of emb(t) and emb(t + k)."""
    raise NotImplementedError   # your code here

check_embedding_similarity(my_embedding_similarity)

# %% tags=["solution", "nbval-check-output"] cellView="form" jupyter={"source_hidden": true}
#@title Solution (hidden in Jupyter and Colab: click to show)
import torch.nn.functional as F

def embedding_similarity(t, k, dim):
    now = timestep_embedding(t, dim)                                   # [N, dim]
    later = timestep_embedding((t[:, None] + k).flatten(), dim).view(len(t), len(k), dim)   # [N, K, dim]
    return F.cosine_similarity(now[:, None], later, dim=-1)            # [N, K]


assert check_embedding_similarity(embedding_similarity)
print(embedding_similarity(torch.tensor([0, 500]), torch.tensor([0, 1, 5, 20, 100]), unet.base))

# %% [markdown]
# ## Going further
# ### Drawing the embedding: aliasing
# The embedding image above has 1,000 columns, one per timestep, but is drawn a few hundred screen
# pixels wide. Drawn naively (nearest-neighbour: one column picked per screen pixel), the fastest
# rows, whose period is only a few timesteps, a pixel or two, can show slow stripes that are not in
# the data: aliasing, a moiré. Antialiasing averages the columns that share a pixel, which shows
# less of them. The two side by side: compare their top rows with each other, and with the zoom
# on t < 100 further up, where every timestep gets several pixels and the fast rows simply
# alternate.

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 3))
for ax, how in zip(axes, ("nearest", "antialiased")):
    ax.imshow(emb.T, aspect="auto", cmap="RdBu_r", interpolation=how)
    ax.set(xlabel="timestep t", ylabel="embedding dimension", title=f"interpolation='{how}'")
plt.tight_layout(); plt.show()

# %% [markdown]
# Whenever an image has more data columns than screen pixels, filter (or zoom in) before reading
# fine structure from it.
#
# ### How sharp is the cross-attention, at each noise level?
# The same measurement as for the sneaker, for three garments and five noise levels (the first
# cross-attention layer, each image with its own class as the prompt): how far each head is from
# uniform, as the share of its weight it would have to move to become uniform (total variation
# distance: 0 = uniform, 1 − 1/K = all on one token), averaged over positions; solid for one head
# (the mean over heads of that distance), dotted for the head-averaged map.

# %%
ts = [50, 300, 600, 900, 999]
fig, ax = plt.subplots(figsize=(8, 3.2))
sharp = {}
for c, color in ((0, "C0"), (7, "C1"), (9, "C2")):
    image = test_x[test_y == c][:1]
    ws = torch.stack([cross_attention(image, c, t)[0] for t in ts])          # [t, heads, positions, tokens]
    per_head = (ws - 1 / K).abs().sum(-1).mean(-1).mean(-1) / 2              # each head, then their mean
    averaged = (ws.mean(1) - 1 / K).abs().sum(-1).mean(-1) / 2               # the head-averaged map
    sharp[CLASS_NAMES[c]] = per_head, averaged
    ax.plot(ts, per_head, "o-", color=color, label=f"{CLASS_NAMES[c]}: one head (mean of {heads})")
    ax.plot(ts, averaged, "o:", color=color, label=f"{CLASS_NAMES[c]}: heads averaged first")
ax.set(xlabel="t", ylabel="distance from uniform", ylim=(0, 1 - 1 / K), title="how sharp the cross-attention is")
ax.legend(fontsize=7, ncol=2); plt.show()
one = torch.stack([p for p, _ in sharp.values()]); avg = torch.stack([a for _, a in sharp.values()])
print(f"one head: from {one.min():.2f} to {one.max():.2f}; heads averaged first: from {avg.min():.2f} "
      f"to {avg.max():.2f}, over the {len(sharp)} garments and {len(ts)} noise levels")
print(f"one head is sharper than the head-averaged map in {int((one > avg).sum())} of {one.numel()} cases; the "
      f"most any one curve moves across t: {max((one.amax(1) - one.amin(1)).max(), (avg.amax(1) - avg.amin(1)).max()):.2f}")

# %% [markdown]
# Read from the prints: whether one head stays above the head-averaged map at every noise level,
# and how much either moves with $t$ compared with the gap between them.
#
# ## What we learned
# - The UNet takes $(z_t, t, y)$ and returns a tensor of the latent's shape; what it is trained to
#   return is notebook 04's subject.
# - It goes 7×7 → 4×4 → 7×7. Every output on the way down is kept and handed, last in first out,
#   to a level on the way up, which concatenates it; the odd 7 is handled by cropping after
#   upsampling.
# - The step $t$ enters as a sinusoidal embedding through an MLP, added per channel inside every
#   residual block.
# - The class enters twice: through cross-attention to a few learned tokens per class, and through
#   an embedding added to the time's. Attention heads each choose their own tokens; averaging the
#   heads hides it.
#
# ## Check your understanding
# 1. Why does a single class token make cross-attention pointless, and what would the layer
#    compute instead?
# 2. In Exercise 3 the rows for t = 0 and t = 500 came out the same. Why must the cosine
#    similarity of emb(t) and emb(t + k) depend on k only? (Hint: cos a cos b + sin a sin b.)
# 3. If every head's attention were exactly uniform, could the network still tell a sneaker from a
#    boot through this layer? Through the UNet as a whole?

# %%
from fmnist_ldm.course.notebook import say_elapsed; say_elapsed()
