"""Exercises of notebook 03 (the UNet): one `check_<name>(student_fn)` each."""
from __future__ import annotations

import math

import torch

from .grading import gen, grade

__all__ = ["check_timestep_embedding", "check_attention"]


def check_timestep_embedding(fn) -> bool:
    """fn(t [N] int, dim) -> [N, dim]: [cos | sin] halves of t times frequencies
    exp(-ln(10000) * i / half), i = 0..half-1 (unet.timestep_embedding)."""
    from ..unet import timestep_embedding
    t, dim = torch.tensor([0, 1, 10, 250, 999]), 32
    half = dim // 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(half) / half)
    args = t.float()[:, None] * freqs
    slow = t.float()[:, None] * torch.exp(-math.log(10_000) * torch.arange(half) / dim)   # exponent over dim
    return grade("timestep embedding", lambda: fn(t.clone(), dim), timestep_embedding(t, dim), [
        (torch.cat([args.sin(), args.cos()], -1), "sin and cos are swapped: [cos | sin]."),
        (torch.cat([slow.cos(), slow.sin()], -1),
         "the exponent divides by dim; it divides by half = dim // 2, so the slowest frequency is 1/10000."),
        (torch.stack([args.cos(), args.sin()], -1).flatten(1), "cos and sin are interleaved; the library puts all cosines first, then all sines."),
    ])


def check_attention(fn) -> bool:
    """fn(q [B,H,N,d], k [B,H,M,d], v [B,H,M,d]) -> softmax(q k^T / sqrt(d)) v, [B,H,N,d]."""
    import torch.nn.functional as F
    g = gen(4)
    q, k, v = torch.randn(2, 4, 16, 8, generator=g), torch.randn(2, 4, 4, 8, generator=g), torch.randn(2, 4, 4, 8, generator=g)
    s = q @ k.transpose(-1, -2)
    return grade("attention", lambda: fn(q.clone(), k.clone(), v.clone()), F.scaled_dot_product_attention(q, k, v), [
        (torch.softmax(s, -1) @ v, "the scores are not scaled: divide q k^T by sqrt(d), d = q.shape[-1]."),
        (torch.softmax(s / 8, -1) @ v, "scaled by d; the scale is sqrt(d)."),
        (torch.softmax(s / math.sqrt(8), -2) @ v, "softmax over the wrong axis: each query's weights over the keys sum to 1 (dim=-1)."),
    ])
