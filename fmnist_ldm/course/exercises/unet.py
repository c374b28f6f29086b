"""Exercises of notebook 03 (the UNet): one `check_<name>(student_fn)` each."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .grading import Verdict, grade

__all__ = ["check_resblock_params", "check_embedding_similarity", "check_up_level_inputs"]


def _as_rows(results):
    """The student's answers for several inputs as one tensor; None (a forgotten return) stays None."""
    if any(r is None for r in results):
        return None
    return torch.as_tensor([torch.as_tensor(r).tolist() for r in results])


def _listed(result):
    """A list of shapes as one [levels, 3] tensor; None (a forgotten return) stays None."""
    return None if result is None else _as_rows(list(result))


# ResBlock(c_in, c_out, emb_dim): three layouts, one with c_in == c_out (its skip is the identity)
RESBLOCKS = [(24, 40, 96), (40, 40, 160), (56, 32, 200)]


def _resblock_count(c_in, c_out, emb, kernel=9, biases=True, norms=True, skip="when needed", emb_layer=True):
    b = int(biases)
    n = kernel * c_in * c_out + b * c_out + kernel * c_out * c_out + b * c_out       # the two 3x3 convs
    n += (emb * c_out + b * c_out) * emb_layer                                     # Linear(emb_dim, c_out)
    n += 2 * (c_in + c_out) * norms                                                # GroupNorm: scale, shift
    if skip == "always" or (skip == "when needed" and c_in != c_out):
        n += c_in * c_out + b * c_out                                              # the 1x1 conv on the skip
    return n


def check_resblock_params(fn) -> Verdict:
    """fn(c_in, c_out, emb_dim) -> the number of parameters of unet.ResBlock(c_in, c_out, emb_dim)."""
    from ...unet import ResBlock
    expected = torch.tensor([sum(p.numel() for p in ResBlock(*a).parameters()) for a in RESBLOCKS])
    wrong = lambda **kw: torch.tensor([_resblock_count(*a, **kw) for a in RESBLOCKS])
    return grade("ResBlock parameters", lambda: _as_rows([fn(*a) for a in RESBLOCKS]), expected, [
        (wrong(biases=False), "the biases are missing: every conv and Linear adds c_out of them."),
        (wrong(norms=False), "the GroupNorms are missing: each learns a scale and a shift per channel, 2 × its channels."),
        (wrong(skip="never"), "the skip is missing: when c_in != c_out it is a 1×1 conv, c_in·c_out weights + c_out biases."),
        (wrong(skip="always"), "when c_in == c_out the skip is the identity, with no parameters; only c_in != c_out needs the 1×1 conv."),
        (wrong(emb_layer=False), "the embedding's Linear(emb_dim, c_out) is missing: that is how the time gets into the block."),
        (wrong(kernel=3), "a 3×3 kernel has 9 weights per input and output channel, not 3."),
    ], rtol=0, atol=0, axes=("block",))


def check_embedding_similarity(fn) -> Verdict:
    """fn(t [N], k [K], dim) -> [N, K]: the cosine similarity of emb(t) and emb(t + k),
    emb = unet.timestep_embedding(., dim)."""
    from ...unet import timestep_embedding
    t, k, dim = torch.tensor([0, 7, 130, 500, 871]), torch.tensor([0, 1, 3, 10, 40, 100]), 40
    emb = lambda s: timestep_embedding(s.flatten(), dim).unflatten(0, s.shape)
    now, later = emb(t)[:, None], emb(t[:, None] + k)                                   # [N, 1, dim], [N, K, dim]
    expected = F.cosine_similarity(now, later, dim=-1)
    return grade("similarity of timestep embeddings", lambda: fn(t.clone(), k.clone(), dim), expected, [
        ((now * later).sum(-1), "that is the dot product: divide it by the two lengths (each is sqrt(dim / 2)) for the cosine."),
        (F.cosine_similarity(now, emb(k)[None], dim=-1), "that compares emb(t) with emb(k); compare it with emb(t + k)."),
        ((now - later).norm(dim=-1), "that is the distance between the embeddings; the cosine similarity is a·b / (|a| |b|)."),
    ], axes=("t", "k"))


def _up_inputs(channels, blocks, size, round_up=True, conv_in_skip=True, downsample_skip=True,
               up_blocks=None, concat=True):
    """The inputs [C, H, W] of the UNet's levels on the way up, worked out from the rules (some
    rules can be switched off: the checker's typical mistakes). The right answer comes from the model."""
    skips, (h, w), c = [], size, channels[0]
    if conv_in_skip:
        skips.append((c, h, w))
    sizes = [(h, w)]
    for i, c_out in enumerate(channels):
        for _ in range(blocks):
            c = c_out
            skips.append((c, h, w))
        if i < len(channels) - 1:
            h, w = ((h + 1) // 2, (w + 1) // 2) if round_up else (h // 2, w // 2)
            sizes.append((h, w))
            if downsample_skip:
                skips.append((c, h, w))
    out = []
    for i in reversed(range(len(channels))):
        for _ in range(blocks + 1 if up_blocks is None else up_blocks):
            s = skips.pop() if skips else (0, h, w)
            out.append((c + s[0] if concat else c, h, w))
            c = channels[i]
        if i > 0:
            h, w = sizes[i - 1]
    return torch.tensor(out)


def check_up_level_inputs(fn) -> Verdict:
    """fn(channels, blocks, height, width) -> [(C, H, W), ...]: the input shape of every level on
    the way up, in order, of unet.UNet(in_channels, channels, blocks) run on height × width."""
    from ...unet import UNet, layer_shapes
    channels, blocks, size = (24, 40, 56), 2, (13, 9)
    unet = UNet(3, channels, blocks, (False,) * len(channels), conditioning="time_embedding")
    expected = torch.tensor([r["inp"] for r in layer_shapes(unet, (3, *size)) if r["path"] == "up" and r["kind"] == "level"])
    wrong = lambda **kw: _up_inputs(channels, blocks, size, **kw)
    return grade("inputs of the levels on the way up", lambda: _listed(fn(channels, blocks, *size)), expected, [
        (wrong(round_up=False), "a stride-2 conv with padding 1 rounds up: 13 -> 7, not 6 ((H + 1) // 2)."),
        (wrong(concat=False), "each level on the way up takes [h, skip] concatenated: their channels add."),
        (wrong(up_blocks=blocks), "the way up has blocks + 1 levels per resolution, one more than the way down."),
        (wrong(downsample_skip=False), "the downsampling conv's output is kept as a skip too (forward keeps every down layer's output)."),
        (wrong(conv_in_skip=False), "conv_in's output is the first skip kept; the last level on the way up takes it."),
    ], rtol=0, atol=0, axes=("level", "C/H/W"))
