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
# (In the image on the left the top rows oscillate faster than one pixel per timestep, so they
# show a moiré pattern; the curves on the right show the real shapes of four dimensions.)

# %%
emb = timestep_embedding(torch.arange(1000), 48)
fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 3.5), gridspec_kw={"width_ratios": [3, 2]})
im = a1.imshow(emb.T, aspect="auto", cmap="RdBu_r", interpolation="nearest")
a1.set(xlabel="timestep t", ylabel="embedding dimension",
       title="sinusoidal timestep embedding (cos half on top, sin half below)")
fig.colorbar(im, ax=a1)
for d in (6, 10, 14, 18):
    a2.plot(emb[:, d], label=f"dim {d}: period {2 * torch.pi / 10000 ** (-d / 24):.0f} steps")
a2.set(xlabel="timestep t", title="four cos dimensions, fast to slow"); a2.legend(fontsize=8, loc="lower left")
plt.tight_layout(); plt.show()

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
# token would not really be attention. Below: for a real sneaker's latent noised to t = 300,
# how much each of the 16 positions attends to each of the 4 tokens (averaged over heads) in the
# first cross-attention.
#
# The class also takes a second, plainer route: a class embedding added to the timestep embedding,
# so it shifts the channels of every residual block, the 7×7 ones too (which have no attention). SDXL
# does the same with a pooled text embedding. With both routes the shipped UNet scored a lower FID
# than with cross-attention alone at the same training budget (model card, "What moved FID").

# %%
levels = [m for m in unet.modules() if isinstance(m, Level) and m.xattn is not None]
seen = {}
hook = levels[0].register_forward_hook(lambda m, i, o: seen.update(x=o))
hook_in = levels[0].xattn.register_forward_pre_hook(lambda m, args: seen.update(inp=args[0]))
test_x, test_y = load_fashion_mnist("test", cfg.data_dir)
sneaker = test_x[test_y == 7][:1]
t = torch.tensor([300])
noise = torch.randn(1, *pipe.cfg.sample_shape, generator=torch.Generator().manual_seed(0))
z_t = pipe.schedule.q_sample(pipe.encode(to_model_range(sneaker)), t, noise)   # scaled latent at t
y = torch.tensor([7])
with torch.no_grad():
    unet(z_t, t, y)
    context = unet.class_emb(y).unflatten(-1, (unet.class_tokens, -1))
    w = levels[0].xattn.weights(seen["inp"], context)[0].mean(0)        # [16 positions, 4 tokens]
hook.remove(); hook_in.remove()
fig, axes = plt.subplots(1, 6, figsize=(14, 2.8))
axes[0].imshow(sneaker[0], cmap="gray"); axes[0].set_title("the sneaker")
axes[1].imshow(pipe.decode(z_t)[0, 0], cmap="gray"); axes[1].set_title("noised, t = 300")
for k, ax in enumerate(axes[2:]):
    im = ax.imshow(w[:, k].reshape(4, 4), vmin=0, vmax=1, cmap="viridis")
    ax.set_title(f"token {k}")
for ax in axes:
    ax.axis("off")
fig.colorbar(im, ax=axes[2:], shrink=0.8)
fig.suptitle(f"attention to the '{CLASS_NAMES[7]}' tokens at each 4×4 position")
plt.show()
print("Each position's weights sum to 1:", torch.allclose(w.sum(1), torch.ones(16)))
