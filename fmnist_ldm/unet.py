"""The denoiser: a small UNet (Ronneberger et al. 2015, in the form of Ho et al. 2020 and
Dhariwal & Nichol 2021) over latents (C x 7 x 7) or pixels (1 x 28 x 28).

Resolution goes down and back up (7 -> 4 -> 7 for latents) with skip connections; the
timestep enters every residual block; the class enters through cross-attention to a few
learned tokens per class, or by adding a class embedding to the timestep embedding, or both
(as SDXL adds a pooled text embedding to the timestep embedding beside its cross-attention).
Class index `num_classes` is the learned null class used for
classifier-free guidance (Ho & Salimans 2022).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import CONDITIONINGS, one_of  # CONDITIONINGS: how the class gets in (see above)
from .vae import norm


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding (Vaswani et al. 2017, used by Ho et al. 2020) of timesteps [N] -> [N, dim]:
        emb[:, i] = cos(t / P^(i/half)),   emb[:, half + i] = sin(t / P^(i/half)),   i < half = dim // 2,
    P = max_period: the cosines in the first half and the sines in the second, not interleaved as
    in Vaswani et al. (the same features in another order; the shipped weights expect this one)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class ResBlock(nn.Module):
    """GN-SiLU-conv, add the (time [+ class]) embedding per channel, GN-SiLU-conv, plus skip."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int):
        super().__init__()
        self.in_layers = nn.Sequential(norm(c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1))
        self.emb = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, c_out))
        self.out_layers = nn.Sequential(norm(c_out), nn.SiLU(), nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x, emb):
        h = self.in_layers(x) + self.emb(emb)[:, :, None, None]
        return self.skip(x) + self.out_layers(h)


class Attention(nn.Module):
    """softmax(Q K^T / sqrt(d)) V with queries from the feature map. Keys and values come from
    the feature map itself (self-attention) or from `context` tokens (cross-attention)."""

    def __init__(self, c: int, context_dim: int | None = None, heads: int = 4):
        super().__init__()
        self.heads, self.norm = heads, norm(c)
        self.q = nn.Linear(c, c)
        self.kv = nn.Linear(context_dim or c, 2 * c)
        self.out = nn.Linear(c, c)

    def _qkv(self, x, context):
        tokens = self.norm(x).flatten(2).transpose(1, 2)               # [B, HW, C]
        src = tokens if context is None else context                    # [B, K, C_ctx]
        split = lambda t: t.unflatten(-1, (self.heads, -1)).transpose(1, 2)
        return (split(self.q(tokens)), *map(split, self.kv(src).chunk(2, dim=-1)))

    def forward(self, x, context=None):
        b, c, h, w = x.shape
        out = F.scaled_dot_product_attention(*self._qkv(x, context)).transpose(1, 2).flatten(2)
        return x + self.out(out).transpose(1, 2).reshape(b, c, h, w)

    def weights(self, x, context=None):
        """The attention map softmax(QK^T/sqrt(d)), [B, heads, HW, keys], for plotting."""
        q, k, _ = self._qkv(x, context)
        return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)


class Level(nn.Module):
    """One residual block, then optional self-attention and cross-attention to the class tokens."""

    def __init__(self, c_in, c_out, emb_dim, attention: bool, context_dim: int | None):
        super().__init__()
        self.res = ResBlock(c_in, c_out, emb_dim)
        self.attn = Attention(c_out) if attention else None
        self.xattn = Attention(c_out, context_dim) if attention and context_dim else None

    def forward(self, x, emb, context):
        x = self.res(x, emb)
        if self.attn is not None:
            x = self.attn(x)
        if self.xattn is not None:
            x = self.xattn(x, context)
        return x


class UNet(nn.Module):
    def __init__(self, in_channels=4, channels=(64, 128), blocks=1, attention=(False, True),
                 num_classes=10, conditioning="both", class_tokens=4):
        super().__init__()
        if conditioning not in CONDITIONINGS:
            raise ValueError(f"conditioning must be {one_of(CONDITIONINGS)}, not {conditioning!r}")
        self.num_classes, self.conditioning = num_classes, conditioning
        self.base, emb_dim = channels[0], 4 * channels[0]
        self.time_mlp = nn.Sequential(nn.Linear(self.base, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        ctx_dim = None
        if conditioning in ("cross_attention", "both"):
            # K tokens per class (+ the null class): softmax over one token would be the constant 1,
            # i.e. a bias; over K tokens each position chooses what part of the class to read.
            ctx_dim, self.class_tokens = channels[-1], class_tokens
            self.class_emb = nn.Embedding(num_classes + 1, class_tokens * ctx_dim)
        if conditioning in ("time_embedding", "both"):  # a per-channel shift in every residual block, 7x7 too
            self.class_time_emb = nn.Embedding(num_classes + 1, emb_dim)

        self.conv_in = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        self.down, skips, c = nn.ModuleList(), [channels[0]], channels[0]
        for i, c_out in enumerate(channels):
            for _ in range(blocks):
                self.down.append(Level(c, c_out, emb_dim, attention[i], ctx_dim))
                c = c_out
                skips.append(c)
            if i < len(channels) - 1:
                self.down.append(nn.Conv2d(c, c, 3, stride=2, padding=1))   # 7 -> 4, 28 -> 14
                skips.append(c)
        self.mid = nn.ModuleList([Level(c, c, emb_dim, True, ctx_dim), Level(c, c, emb_dim, False, None)])
        self.up = nn.ModuleList()
        for i in reversed(range(len(channels))):
            for _ in range(blocks + 1):
                self.up.append(Level(c + skips.pop(), channels[i], emb_dim, attention[i], ctx_dim))
                c = channels[i]
            if i > 0:
                self.up.append(nn.Upsample(scale_factor=2, mode="nearest"))  # cropped to the skip's size
        self.out = nn.Sequential(norm(c), nn.SiLU(), nn.Conv2d(c, in_channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight), nn.init.zeros_(self.out[-1].bias)

    def forward(self, x, t, y):
        """x: noisy input [B,C,H,W]; t: timesteps [B] in 0..T-1; y: classes [B], num_classes = null."""
        emb = self.time_mlp(timestep_embedding(t, self.base).to(x.dtype))
        context = None
        if self.conditioning in ("cross_attention", "both"):
            context = self.class_emb(y).unflatten(-1, (self.class_tokens, -1))
        if self.conditioning in ("time_embedding", "both"):
            emb = emb + self.class_time_emb(y)
        h, hs = self.conv_in(x), []
        hs.append(h)
        for layer in self.down:
            h = layer(h, emb, context) if isinstance(layer, Level) else layer(h)
            hs.append(h)
        for layer in self.mid:
            h = layer(h, emb, context)
        for layer in self.up:
            if isinstance(layer, Level):
                h = layer(torch.cat([h, hs.pop()], dim=1), emb, context)
            else:  # nearest upsample, cropped so that 4 -> 8 -> 7 matches the skip
                h = layer(h)[..., : hs[-1].shape[-2], : hs[-1].shape[-1]]
        return self.out(h)


def layer_shapes(unet: UNet, sample_shape) -> list[dict]:
    """The UNet's layers in the order forward runs them, traced on one zero input of
    sample_shape [C, H, W]: one dict per layer with
      name   its name in the model ("conv_in", "down.1", "mid.0", "up.2", "out"),
      path   "in", "down", "mid", "up" or "out";  kind  "conv", "level", "downsample", "upsample";
      parts  for a level, what it holds: ("res",) + ("attn",) + ("xattn",) as present;
      inp, out  the shapes [C, H, W] it takes and gives (an up level takes [h, skip] concatenated;
             an upsample's out is after the crop to its skip's size, uncropped before it);
      skip   for an up level: the name of the layer whose output it concatenates.
    The skip rule is forward's: conv_in's and every down layer's output are pushed on a stack,
    and each level on the way up pops the last one pushed (last in, first out)."""
    rows, hooks = [], []

    def record(name, path, kind):
        def hook(module, args, output):
            parts = () if kind != "level" else ("res",) + ("attn",) * (module.attn is not None) \
                + ("xattn",) * (module.xattn is not None)
            rows.append(dict(name=name, path=path, kind=kind, parts=parts,
                             inp=tuple(args[0].shape[1:]), out=tuple(output.shape[1:])))
        return hook

    def kind_of(module):
        return "level" if isinstance(module, Level) else "upsample" if isinstance(module, nn.Upsample) \
            else "downsample"

    layers = [("conv_in", "in", "conv", unet.conv_in)]
    layers += [(f"{p}.{i}", p, kind_of(m), m) for p in ("down", "mid", "up") for i, m in enumerate(getattr(unet, p))]
    layers += [("out", "out", "conv", unet.out)]
    for name, path, kind, module in layers:
        hooks.append(module.register_forward_hook(record(name, path, kind)))
    was_training = unet.training
    try:
        unet.eval()
        p = next(unet.parameters())
        with torch.no_grad():
            unet(torch.zeros(1, *sample_shape, dtype=p.dtype, device=p.device),
                 torch.zeros(1, dtype=torch.long, device=p.device), torch.zeros(1, dtype=torch.long, device=p.device))
    finally:
        for h in hooks:
            h.remove()
        unet.train(was_training)
    stack = []
    for i, row in enumerate(rows):
        if row["path"] in ("in", "down"):
            stack.append(row["name"])
        elif row["path"] == "up" and row["kind"] == "level":
            row["skip"] = stack.pop()
        if row["kind"] == "upsample":                  # forward crops it to the next level's skip
            row["uncropped"], row["out"] = row["out"], row["out"][:1] + rows[i + 1]["inp"][1:]
    return rows
