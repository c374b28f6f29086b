"""Exercises of notebook 05 (using the model): one `check_<name>(student_fn)` each."""
from __future__ import annotations

import math

import torch

from ..diffusion import NoiseSchedule, ddim_step
from .grading import gen, grade

__all__ = ["check_cfg", "check_ddim_step", "check_majority_cells"]


def check_cfg(fn) -> bool:
    """fn(out_uncond, out_cond, w) -> out_uncond + w (out_cond - out_uncond) (Ho & Salimans 2022)."""
    g = gen(7)
    u, c = torch.randn(3, 4, 7, 7, generator=g), torch.randn(3, 4, 7, 7, generator=g)
    w = 3.0
    return grade("classifier-free guidance", lambda: fn(u.clone(), c.clone(), w), u + w * (c - u), [
        (c + w * (c - u), "start from the unconditional output: uncond + w (cond - uncond), so that w = 1 gives cond."),
        (u + w * (u - c), "the direction is flipped: move towards the conditional output, (cond - uncond)."),
        (w * c, "scaling the conditional output is not guidance: uncond + w (cond - uncond)."),
        (u + (w - 1) * (c - u), "this is w - 1: with this convention w = 1 must give the plain conditional output."),
    ])


def check_ddim_step(fn) -> bool:
    """fn(x0_hat, eps_hat, abar_next) -> the deterministic DDIM step (eta = 0, Song et al. 2021
    eq. 12): sqrt(abar_next) x0_hat + sqrt(1 - abar_next) eps_hat."""
    sched = NoiseSchedule("cosine", 1000)
    g = gen(8)
    x, x0, eps = (torch.randn(2, 4, 7, 7, generator=g) for _ in range(3))
    t, t_next = 500, 450
    an = sched.abar_at(t_next)
    expected = ddim_step(sched, x, x0, eps, t, t_next, 0.0, None)
    return grade("DDIM step", lambda: fn(x0.clone(), eps.clone(), an), expected, [
        (an * x0 + (1 - an) * eps, "the square roots are missing: sqrt(abar_next) x0 + sqrt(1 - abar_next) eps."),
        (math.sqrt(an) * eps + math.sqrt(1 - an) * x0, "x0 and eps are swapped: the clean guess gets sqrt(abar_next)."),
        (math.sqrt(sched.abar_at(t)) * x0 + math.sqrt(1 - sched.abar_at(t)) * eps,
         "that is the current level: the step lands on abar_next."),
    ])


def check_majority_cells(fn) -> bool:
    """fn(mask [N, 28, 28] bool, True = redraw) -> float [N, 1, 7, 7]: 1 for the latent cells (4 x 4
    pixels each) of which more than half the pixels are masked, 0 elsewhere (the notebook's
    inpainting redraws a cell if any of its pixels is masked)."""
    g = gen(9)
    mask = torch.rand(3, 28, 28, generator=g) < torch.tensor([0.2, 0.5, 0.8]).view(3, 1, 1)
    mask[0, :8, :8] = True                                    # whole cells, and cells exactly half masked
    mask[1, :, :2] = True
    mask[1, :, 2:4] = False
    share = torch.nn.functional.avg_pool2d(mask[:, None].float(), 4)
    return grade("majority cell mask", lambda: fn(mask.clone()), (share > 0.5).float(), [
        ((share > 0).float(), "that is the notebook's 'any pixel' rule: redraw a cell when more than half of its 16 pixels are masked."),
        ((share >= 0.5).float(), "a cell with exactly half its pixels masked (8 of 16) is not a majority: use > 0.5."),
        ((share == 1).float(), "that redraws only fully masked cells: more than half is enough."),
        ((share <= 0.5).float(), "that is the cells to keep: return 1 where the cell is redrawn."),
        ((share > 0.5).float()[:, 0], "keep the channel axis: [N, 1, 7, 7], so that it broadcasts over the 4 latent channels."),
    ])
