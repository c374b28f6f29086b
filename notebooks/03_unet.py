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
# The UNet takes a noisy latent $z_t$, the timestep $t$ and a class $y$, and predicts
# $v = \sqrt{\bar\alpha_t}\,\epsilon - \sqrt{1-\bar\alpha_t}\,z_0$ (notebook 04 explains why).
# This notebook opens it up using the shipped weights in `model/`.

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
import math
import torch
from fmnist_ldm.notebook import notebook_preset
from fmnist_ldm.data import CLASS_NAMES, load_fashion_mnist, to_model_range
from fmnist_ldm.pipeline import Pipeline
from fmnist_ldm.unet import Level, timestep_embedding

cfg = notebook_preset()
pipe = Pipeline.from_pretrained(device="cpu")   # the shipped weights; single forward passes: the CPU is plenty
unet = pipe.unet

# %% [markdown]
# ## Telling the network the time: sinusoidal embeddings
# $\mathrm{emb}(t) = [\cos(t\,\omega_i), \sin(t\,\omega_i)]$ with $\omega_i = 10000^{-i/(d/2)}$:
# fast frequencies tell nearby timesteps apart, slow ones give the coarse position.
# An MLP turns it into the vector every residual block adds to its features.
#
# A word on drawing it. The left image has 1,000 columns, one per timestep, but is drawn a few
# hundred screen pixels wide. Drawn naively (nearest-neighbour: one column picked per pixel), the
# fastest rows, whose period is 2π ≈ 6 timesteps, i.e. a few pixels, would show slow stripes that
# are not in the data (aliasing, a moiré). So it is drawn with antialiasing, which averages the
# columns that share a pixel: the fastest rows fade towards their mean instead. The middle panel
# zooms in on the first 100 timesteps, where every timestep gets several pixels and those rows
# are resolved. The arcs across the rows are real: each row's period is 10000^(1/24) ≈ 1.47 times
# the one above, so neighbouring rows fall in and out of phase.

# %%
emb = timestep_embedding(torch.arange(1000), 48)
fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(15, 3.5), gridspec_kw={"width_ratios": [3, 1.6, 2]})
im = a1.imshow(emb.T, aspect="auto", cmap="RdBu_r", interpolation="antialiased")
a1.set(xlabel="timestep t", ylabel="embedding dimension",
       title="sinusoidal timestep embedding (cos half on top, sin half below)")
a2.imshow(emb[:100].T, aspect="auto", cmap="RdBu_r", interpolation="nearest", extent=(-0.5, 99.5, 47.5, -0.5))
a2.set(xlabel="timestep t", title="zoom: t < 100")
fig.colorbar(im, ax=a2)
for d in (6, 10, 14, 18):
    a3.plot(emb[:, d], label=f"dim {d}: period {2 * torch.pi / 10000 ** (-d / 24):.0f} steps")
a3.set(xlabel="timestep t", title="four cos dimensions, fast to slow"); a3.legend(fontsize=8, loc="lower left")
plt.tight_layout(); plt.show()

# %% [markdown]
# The embedding by hand, at the width the UNet uses (`unet.base` numbers), checked against
# `timestep_embedding`, the function the UNet calls. The frequencies are written as
# $\exp(-\ln 10000 \cdot i/h)$, which is $10000^{-i/h}$ computed the way the library computes it.
# Computing the power directly rounds differently and gives results that differ by about $3\cdot10^{-5}$ at t = 999.

# %%
t = torch.tensor([0, 1, 10, 300, 999])                  # a few timesteps
half = unet.base // 2                                   # h: the number of frequencies
omega = torch.exp(-math.log(10000) * torch.arange(half) / half)     # omega_i = 10000^(-i/h)
by_hand = torch.cat([torch.cos(t[:, None] * omega), torch.sin(t[:, None] * omega)], dim=1)
torch.testing.assert_close(by_hand, timestep_embedding(t, unet.base))
print(f"{tuple(by_hand.shape)}: the cosines, then the sines; periods from {2 * math.pi / omega[0]:.1f} "
      f"to {2 * math.pi / omega[-1]:,.0f} timesteps")

# %% [markdown]
# ## A walk through the shapes
# Resolution goes down (7×7 → 4×4) and back up; skip connections carry the fine detail across.
# 7 is odd: the stride-2 convolution rounds up to 4×4, upsampling doubles that to 8×8, and the
# UNet crops it to 7×7 so that it lines up with the skip connection from the way down.

# %%
shapes = []
hooks = [m.register_forward_hook(lambda m, i, o, n=n: shapes.append((n, type(m).__name__, tuple(o.shape))))
         for n, m in unet.named_modules() if n.count(".") == 1 or n in ("conv_in", "out")]
with torch.no_grad():
    unet(torch.randn(1, *pipe.cfg.sample_shape), torch.tensor([500]), torch.tensor([7]))
for h in hooks:
    h.remove()
for name, kind, shape in shapes:
    print(f"{name:10s} {kind:10s} -> {shape}")

# %% [markdown]
# ## Parameter counts

# %%
for name, child in unet.named_children():
    print(f"{name:12s} {sum(p.numel() for p in child.parameters()):>9,}")
print(f"{'total':12s} {sum(p.numel() for p in unet.parameters()):>9,}")

# %% [markdown]
# ## How the class gets in: cross-attention to class tokens
# Each class owns 4 learned tokens (and the null class, used for guidance, owns 4 more).
# Cross-attention lets every position of the 4×4 feature map decide how much to read from
# each token: softmax over **one** token would always be 1 — a constant bias — so a single
# token would not really be attention. The attention has 4 heads, each with its own queries and
# keys, so each head makes its own choice. Below: for a real sneaker's latent noised to t = 300,
# the weights of each head (rows) on each of the 4 tokens (columns) at each of the 16 positions,
# in the first cross-attention. White is 1/4, what uniform attention over 4 tokens would give;
# red is more, blue less.
#
# The class also takes a second, plainer route: a class embedding added to the timestep embedding,
# so it shifts the channels of every residual block, the 7×7 ones too (which have no attention). SDXL
# does the same with a pooled text embedding. With both routes the shipped UNet scored a lower FID
# than with cross-attention alone at the same training budget (`benchmarks/README.md`, "What moved FID next").

# %%
from matplotlib.colors import TwoSlopeNorm
levels = [m for m in unet.modules() if isinstance(m, Level) and m.xattn is not None]
test_x, test_y = load_fashion_mnist("test", cfg.data_dir)

@torch.no_grad()
def cross_attention(image, c, t, level=levels[0]):
    """Attention weights [heads, 16 positions, 4 tokens] of one cross-attention layer, for an
    image's latent noised to timestep t, with class c as the prompt."""
    seen = {}
    hook = level.xattn.register_forward_pre_hook(lambda m, args: seen.update(inp=args[0]))
    noise = torch.randn(1, 4, 7, 7, generator=torch.Generator().manual_seed(0))
    z_t = pipe.schedule.q_sample(pipe.encode(to_model_range(image)), torch.tensor([t]), noise)
    unet(z_t, torch.tensor([t]), torch.tensor([c]))
    hook.remove()
    context = unet.class_emb(torch.tensor([c])).unflatten(-1, (unet.class_tokens, -1))
    return level.xattn.weights(seen["inp"], context)[0], z_t

sneaker = test_x[test_y == 7][:1]
w, z_t = cross_attention(sneaker, 7, 300)
fig = plt.figure(figsize=(12, 5.2))
grid = fig.add_gridspec(4, 7, width_ratios=[1.4, 1.4, 0.3, 1, 1, 1, 1], hspace=0.3)
for r, (img, title) in enumerate(((sneaker[0], "the sneaker"), (pipe.decode(z_t)[0, 0], "noised, t = 300"))):
    ax = fig.add_subplot(grid[2 * r:2 * r + 2, 0:2]); ax.imshow(img, cmap="gray"); ax.set_title(title); ax.axis("off")
norm = TwoSlopeNorm(vmin=0, vcenter=0.25, vmax=1)       # white = uniform over the 4 tokens
for h in range(w.shape[0]):
    for k in range(w.shape[2]):
        ax = fig.add_subplot(grid[h, 3 + k])
        im = ax.imshow(w[h, :, k].reshape(4, 4), cmap="RdBu_r", norm=norm)
        ax.set_xticks([]); ax.set_yticks([])
        if h == 0: ax.set_title(f"token {k}", fontsize=9)
        if k == 0: ax.set_ylabel(f"head {h}", fontsize=9)
fig.colorbar(im, ax=fig.axes[2:], shrink=0.8, label="attention weight", ticks=[0, 0.25, 0.5, 0.75, 1])
fig.suptitle(f"cross-attention to the '{CLASS_NAMES[7]}' tokens, per head, at each 4×4 position")
plt.show()
print("Each position's weights sum to 1 in every head:", torch.allclose(w.sum(-1), torch.ones(4, 16)))
print(f"one head's weights range from {w.min():.2f} to {w.max():.2f}; "
      f"averaged over the 4 heads, from {w.mean(0).min():.2f} to {w.mean(0).max():.2f}")

# %% [markdown]
# Each head is far from uniform: at a given position it reads mostly one or two tokens, and which
# ones changes across the 4×4 map. Averaged over the heads, though, the weights sit near 1/4
# (printed above): the heads prefer different tokens and their preferences cancel in the mean. So
# look at attention per head; a head-averaged map can look uniform while every head is sharp.
# Where a map *is* uniform, the layer adds the average of the class's value vectors: the same
# class-dependent shift at every position, like the plainer route above.
#
# The same for other garments and noise levels (the first cross-attention layer, each image with its
# own class as the prompt): how far each head is from uniform, as the share of its weight it would
# have to move to become uniform (total variation distance, 0 = uniform, 0.75 = all on one token),
# averaged over positions.

# %%
ts = [50, 300, 600, 900, 999]
fig, ax = plt.subplots(figsize=(8, 3.2))
for c, color in ((0, "C0"), (7, "C1"), (9, "C2")):
    image = test_x[test_y == c][:1]
    ws = torch.stack([cross_attention(image, c, t)[0] for t in ts])          # [t, heads, positions, tokens]
    per_head = (ws - 0.25).abs().sum(-1).mean(-1).mean(-1) / 2               # each head, then their mean
    averaged = (ws.mean(1) - 0.25).abs().sum(-1).mean(-1) / 2                # the head-averaged map
    ax.plot(ts, per_head, "o-", color=color, label=f"{CLASS_NAMES[c]}: one head (mean of 4)")
    ax.plot(ts, averaged, "o:", color=color, label=f"{CLASS_NAMES[c]}: heads averaged first")
ax.set(xlabel="t", ylabel="distance from uniform", ylim=(0, 0.75), title="how sharp the cross-attention is")
ax.legend(fontsize=7, ncol=2); plt.show()

# %% [markdown]
# At every noise level and for all three garments, a single head puts roughly a quarter to a
# third of its weight away from uniform; averaging the heads first leaves about a tenth. How sharp
# the attention is barely depends on t.

# %% [markdown]
# Inside that first cross-attention layer, by hand, for the noised sneaker from above. The 16 positions of
# the normalised 4×4 feature map give the queries $Q$, and the class's 4 tokens give the keys $K$ and values $V$.
# Each of the 4 heads computes $\mathrm{softmax}(QK^\top/\sqrt d)\,V$ on its own slice of $d$ = C/4
# channels. The heads' outputs are put side by side, projected, and *added* to the feature map
# (a residual). The weights are the ones plotted above, and the output is what the layer returns.

# %%
layer = levels[0].xattn                                 # the first cross-attention, as in the plots
seen = {}
hook = layer.register_forward_pre_hook(lambda m, args: seen.update(x=args[0]))
with torch.no_grad():
    unet(z_t, torch.tensor([300]), torch.tensor([7]))   # the noised sneaker again, to catch the layer's input
    hook.remove()
    x = seen["x"]                                       # [1, C, 4, 4] feature map
    context = unet.class_emb(torch.tensor([7])).unflatten(-1, (unet.class_tokens, -1))   # [1, 4 tokens, C]
    tokens = layer.norm(x).flatten(2).transpose(1, 2)   # [1, 16 positions, C]
    split = lambda a: a.unflatten(-1, (layer.heads, -1)).transpose(1, 2)   # -> [1, heads, n, d]
    q, (k, v) = split(layer.q(tokens)), map(split, layer.kv(context).chunk(2, dim=-1))
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)   # [1, heads, 16, 4]
    out = layer.out((weights @ v).transpose(1, 2).flatten(2))                         # heads side by side
    by_hand = x + out.transpose(1, 2).reshape(x.shape)  # the residual: the layer adds what it read
    torch.testing.assert_close(weights, layer.weights(x, context))
    torch.testing.assert_close(by_hand, layer(x, context))
    print(f"queries {tuple(q.shape)}, keys {tuple(k.shape)}, values {tuple(v.shape)}: by hand = the layer, "
          f"largest difference {(by_hand - layer(x, context)).abs().max():.1e}")

# %% [markdown]
# ## Your turn
# Write each function below where it says so, then run its cell: the checker compares it with
# the library's own implementation on a few inputs and says what is wrong if it is. The
# solution is in the hidden cell under each exercise (click to show it); it runs, and is checked, too.

# %% [markdown]
# **Exercise 1: The timestep embedding.** The UNet learns what to do at each noise level from $t$, turned into `dim` numbers: with
# $h = \text{dim}/2$ frequencies $\omega_i = 10000^{-i/h}$, $i = 0..h-1$, the embedding is
# $[\cos(t\,\omega_0), …, \cos(t\,\omega_{h-1}), \sin(t\,\omega_0), …, \sin(t\,\omega_{h-1})]$.

# %%
from fmnist_ldm.exercises import check_timestep_embedding

def my_timestep_embedding(t, dim):
    """t: int [N] -> float [N, dim], the cosines first, then the sines."""
    raise NotImplementedError   # your code here

check_timestep_embedding(my_timestep_embedding)

# %% tags=["solution"] cellView="form" jupyter={"source_hidden": true}
#@title Solution (hidden in Jupyter and Colab: click to show)
def timestep_embedding(t, dim):
    """t: int [N] -> float [N, dim], the cosines first, then the sines."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half) / half)   # 10000^(-i/half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.cos(), args.sin()], dim=-1)


assert check_timestep_embedding(timestep_embedding)

# %% [markdown]
# **Exercise 2: Attention.** Each query reads from the keys in proportion to how well they match:
# $\mathrm{softmax}(Q K^\top / \sqrt d)\, V$, the softmax over the keys, $d$ the size of one head.
# (In the UNet's cross-attention the queries are the 16 positions of the 4×4 map and the keys the
# class's 4 tokens.)

# %%
from fmnist_ldm.exercises import check_attention

def my_attention(q, k, v):
    """q [B, heads, N, d], k and v [B, heads, M, d] -> [B, heads, N, d]."""
    raise NotImplementedError   # your code here

check_attention(my_attention)

# %% tags=["solution"] cellView="form" jupyter={"source_hidden": true}
#@title Solution (hidden in Jupyter and Colab: click to show)
def attention(q, k, v):
    """q [B, heads, N, d], k and v [B, heads, M, d] -> [B, heads, N, d]."""
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
    return weights @ v


assert check_attention(attention)

# %% [markdown]
# ## What we learned
# - The UNet takes $(z_t, t, y)$: the timestep enters as a sinusoidal embedding through an MLP, the
#   class through cross-attention to 4 learned tokens and through the same embedding.
# - It goes 7×7 → 4×4 → 7×7 with skip connections; the odd 7 is handled by cropping after upsampling.
# - An image drawn with fewer screen pixels than data columns can show patterns that are not in
#   the data (aliasing): filter, or zoom in, before reading fine structure.
# - Attention heads each choose their own tokens; averaging heads hides it.
#
# ## Check your understanding
# 1. Why does a single class token make cross-attention pointless, and what would the layer
#    compute instead?
# 2. Dimension 0 of the timestep embedding has a period of about 6 timesteps. Which part of the
#    network's job needs such a fast frequency, and which the slow ones?
# 3. If every head's attention were exactly uniform, could the network still tell a sneaker from a
#    boot through this layer? Through the UNet as a whole?
