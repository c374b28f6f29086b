"""Notebook 03's exercises, answered: right answers written as a student would (the
solution cells hold the same), and one typical mistake each with a word its hint must contain."""
import torch
import torch.nn.functional as F

from fmnist_ldm.unet import timestep_embedding


def resblock_params(c_in, c_out, emb_dim, skip_always=False):
    convs = (9 * c_in * c_out + c_out) + (9 * c_out * c_out + c_out)   # two 3x3 convs, weights + biases
    norms = 2 * c_in + 2 * c_out                                       # two GroupNorms: scale + shift
    emb = emb_dim * c_out + c_out                                      # Linear(emb_dim, c_out)
    skip = c_in * c_out + c_out if c_in != c_out or skip_always else 0  # 1x1 conv, only if widths differ
    return convs + norms + emb + skip


def embedding_similarity(t, k, dim, shift=True):
    now = timestep_embedding(t, dim)                                   # [N, dim]
    later = timestep_embedding((t[:, None] + k if shift else k.expand(len(t), -1)).flatten(), dim)
    return F.cosine_similarity(now[:, None], later.view(len(t), len(k), dim), dim=-1)


def up_level_inputs(channels, blocks, height, width, round_up=True):
    h, w = height, width
    skips, sizes = [(channels[0], h, w)], [(h, w)]                     # conv_in's output
    for i, c in enumerate(channels):
        skips += [(c, h, w)] * blocks                                  # each level on the way down
        if i < len(channels) - 1:
            h, w = ((h + 1) // 2, (w + 1) // 2) if round_up else (h // 2, w // 2)
            sizes.append((h, w))
            skips.append((c, h, w))                                    # the stride-2 conv's output
    shapes, c = [], channels[-1]
    for i in reversed(range(len(channels))):
        h, w = sizes[i]
        for _ in range(blocks + 1):
            shapes.append((c + skips.pop()[0], h, w))                  # [h, skip] concatenated
            c = channels[i]
    return shapes


RIGHT = {
    "check_resblock_params": resblock_params,
    "check_embedding_similarity": embedding_similarity,
    "check_up_level_inputs": up_level_inputs,
}

WRONG = {
    "check_resblock_params": (lambda c_in, c_out, e: resblock_params(c_in, c_out, e, skip_always=True), "identity"),
    "check_embedding_similarity": (lambda t, k, dim: embedding_similarity(t, k, dim, shift=False), "t + k"),
    "check_up_level_inputs": (lambda ch, b, h, w: up_level_inputs(ch, b, h, w, round_up=False), "rounds up"),
}
