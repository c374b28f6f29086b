"""Exercises of notebook 05 (using the model): one `check_<name>(student_fn)` each."""
from __future__ import annotations

import math

import torch

from ...diffusion import NoiseSchedule
from ...samplers.ddim import ddim_invert_step
from ...sampling import GuidedDenoiser
from .grading import Verdict, gen, grade

__all__ = ["check_interval_guidance", "check_majority_cells", "check_ddim_invert_step"]

AXES = ("image", "channel", "row", "column")


def _library_interval_guidance(v_cond, v_null, t, w, interval):
    """The library's rule, image by image: sampling.GuidedDenoiser on a stand-in model that
    answers v_cond for the class and v_null for the null class. With prediction "eps" its eps_hat
    is the guided output itself."""
    schedule, out = NoiseSchedule("cosine", 1000), []
    for i in range(len(t)):
        def model(x, tt, y, i=i):
            return torch.where((y == 10).view(-1, 1, 1, 1), v_null[i:i + 1], v_cond[i:i + 1])
        denoise = GuidedDenoiser(model, schedule, "eps", torch.tensor([3]), w, interval)
        out.append(denoise(torch.zeros_like(v_cond[i:i + 1]), int(t[i]))[1])
    return torch.cat(out)


def check_interval_guidance(fn) -> Verdict:
    """fn(v_cond, v_null, t, w, interval) -> the guided output image by image, each image at its
    own timestep t[i]: v_null + w (v_cond - v_null) where lo <= t <= hi, v_cond elsewhere."""
    g = gen(7)
    c, u = torch.randn(5, 3, 6, 7, generator=g), torch.randn(5, 3, 6, 7, generator=g)
    t = torch.tensor([950, 700, 512, 300, 120])          # outside, both edges, inside, outside
    w, (lo, hi) = 4.0, (300, 700)
    expected = _library_interval_guidance(c, u, t, w, (lo, hi))
    inside = ((t >= lo) & (t <= hi)).view(-1, 1, 1, 1)
    strict = ((t > lo) & (t < hi)).view(-1, 1, 1, 1)
    guided = u + w * (c - u)
    return grade("guidance on an interval of t", lambda: fn(c.clone(), u.clone(), t.clone(), w, (lo, hi)), expected, [
        (guided, "every image is guided: only those with lo <= t <= hi are; the others keep v_cond."),
        (torch.where(inside, c, guided), "the interval is inverted: guide inside [lo, hi], not outside it."),
        (torch.where(strict, guided, c), "the interval's ends count: t = lo and t = hi are guided (<=, not <)."),
        (torch.where(inside, guided, u), "outside the interval the output is the plain conditional one, v_cond, not v_null."),
        (torch.where(inside, c + w * (c - u), c), "start from the unconditional output: v_null + w (v_cond - v_null)."),
    ], axes=AXES)


def check_majority_cells(fn) -> Verdict:
    """fn(mask [N, H, W] bool, True = redraw) -> float [N, 1, H/4, W/4]: 1 for the latent cells (4 x 4
    pixels each) of which more than half the pixels are masked, 0 elsewhere (the notebook's
    inpainting redraws a cell if any of its pixels is masked)."""
    g = gen(9)
    mask = torch.rand(3, 24, 20, generator=g) < torch.tensor([0.2, 0.5, 0.8]).view(3, 1, 1)
    mask[0, :8, :8] = True                                    # whole cells, and cells exactly half masked
    mask[1, :, :2] = True
    mask[1, :, 2:4] = False
    share = torch.nn.functional.avg_pool2d(mask[:, None].float(), 4)
    return grade("majority cell mask", lambda: fn(mask.clone()), (share > 0.5).float(), [
        ((share > 0).float(), "that is the notebook's 'any pixel' rule: redraw a cell when more than half of its 16 pixels are masked."),
        ((share >= 0.5).float(), "a cell with exactly half its pixels masked (8 of 16) is not a majority: use > 0.5."),
        ((share == 1).float(), "that redraws only fully masked cells: more than half is enough."),
        ((share <= 0.5).float(), "that is the cells to keep: return 1 where the cell is redrawn."),
        ((share > 0.5).float()[:, 0], "keep the channel axis: [N, 1, H/4, W/4], so that it broadcasts over the 4 latent channels."),
        ((share.transpose(2, 3) > 0.5).float(), "rows and columns are swapped: cell (i, j) covers rows 4i..4i+3, columns 4j..4j+3."),
    ], axes=AXES)


def check_ddim_invert_step(fn) -> Verdict:
    """fn(x, eps_hat, abar, abar_next) -> x at the noisier level abar_next (samplers.ddim.ddim_invert_step):
    x0_hat = (x - sqrt(1 - abar) eps) / sqrt(abar), then sqrt(abar_next) x0_hat + sqrt(1 - abar_next) eps."""
    sched = NoiseSchedule("cosine", 1000)
    g = gen(8)
    x, eps = torch.randn(5, 3, 6, 7, generator=g), torch.randn(5, 3, 6, 7, generator=g)
    a, an = sched.abar_at(449), sched.abar_at(499)
    expected = ddim_invert_step(x, eps, a, an)
    x0 = (x - math.sqrt(1 - a) * eps) / math.sqrt(a)                     # the half-way mistake
    return grade("DDIM inversion step", lambda: fn(x.clone(), eps.clone(), a, an), expected, [
        (math.sqrt(an) * x + math.sqrt(1 - an) * eps,
         "x is not the clean guess: first solve x = sqrt(abar) x0 + sqrt(1 - abar) eps for x0_hat."),
        (ddim_invert_step(x, eps, an, a), "abar and abar_next are swapped: that steps towards less noise."),
        (math.sqrt(an) * (x + math.sqrt(1 - a) * eps) / math.sqrt(a) + math.sqrt(1 - an) * eps,
         "the sign in x0_hat: x0_hat = (x - sqrt(1 - abar) eps) / sqrt(abar)."),
        (an * (x - (1 - a) * eps) / a + (1 - an) * eps, "the square roots are missing."),
        (x0, "that is x0_hat, the clean guess: put it back together at the noisier level abar_next."),
    ], axes=AXES)
