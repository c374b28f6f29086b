"""The samplers and their variants, in one place: guidance (classifier-free, with a negative
class), the reverse-process loops (DDPM, DDIM, DPM-Solver++(2M)) with inpainting, the distilled
student's multistep consistency sampling, DDIM inversion, and spherical interpolation of noise.

Everything here works on states and a `denoise(x, t) -> (x0_hat, eps_hat)` callable, so it is
the same for latents and pixels, any model and any device; the Pipeline composes these with its
models, and the one-step maths (Ho et al., Song et al., Lu et al.) is in diffusion.py.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from .config import NUM_CLASSES
from .diffusion import NoiseSchedule, _noise_like, ddim_step, ddpm_step, dpmpp2m_step

# The settings we recommend (measured in benchmarks/; see the README's results table).
# guidance 5 only for t in [300, 700]: >= 97 % class accuracy at the best FID we measured for it
# (guiding above t = 800 or below 200 costs FID), and 8 of the 20 steps run the UNet twice, not 12.
DEFAULTS = dict(sampler="dpmpp2m", steps=20, guidance=5.0, guidance_interval=(300, 700))


def guided_denoiser(model, schedule, prediction, y, guidance: float = 1.0,
                    interval: tuple[int, int] | None = None, null_class: int = NUM_CLASSES,
                    conditional: bool | None = None, negative: torch.Tensor | None = None) -> Callable:
    """(x_t, t) -> (x0_hat, eps_hat) with classifier-free guidance (Ho & Salimans 2022):

        out = out_neg + w * (out_cond - out_neg),

    where out_neg is the model's output for the null class (plain CFG), or for a `negative` class
    per image: a negative prompt, as diffusers' negative_prompt does it. Guidance then pushes away
    from what the negative class looks like as much as towards y. Guidance is linear in the
    output, so guiding eps or v is the same. Outside `interval` (t_lo, t_hi) it is skipped, which
    saves the second evaluation and keeps diversity (Kynkaenniemi et al. 2024).
    conditional: whether any label in y is a class rather than the null class (an unconditional
    batch has nothing to guide: one pass a step); None reads it from y, once, here: reading y on
    a GPU waits for it, so it is not done at every step."""
    away = torch.full_like(y, null_class) if negative is None else negative
    if conditional is None:
        conditional = bool((y != null_class).any())

    def denoise(x, t: int):
        tt = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        use = guidance != 1.0 and (interval is None or interval[0] <= t <= interval[1])
        if use and conditional:
            both = model(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([y, away]))
            cond, neg = both.float().chunk(2)
            out = neg + guidance * (cond - neg)
        else:
            out = model(x, tt, y).float()
        return schedule.split(out, x, tt, prediction)
    return denoise


def _noised(schedule: NoiseSchedule, x0, t: int, generator):
    """x0 noised to timestep t (q_sample with fresh noise), or x0 itself at t = -1 (clean)."""
    if t < 0:
        return x0
    a = schedule.abar_at(t)
    return math.sqrt(a) * x0 + math.sqrt(1 - a) * _noise_like(x0, generator)


@torch.no_grad()
def sample(denoise, schedule: NoiseSchedule, x, sampler: str = "dpmpp2m", steps: int = 20,
           eta: float = 0.0, t_start: int | None = None, generator=None, return_trajectory=False,
           known=None, keep=None):
    """Run a reverse process from x (pure noise at t_start, or a noised image) to t = -1.

    sampler: "ddpm" (ancestral, every timestep, so `steps` is ignored),
             "ddim" (any step count; eta = 0 deterministic, eta = 1 DDPM-like),
             "dpmpp2m" (second order: good images in 10-20 steps).
    denoise(x, t) -> (x0_hat, eps_hat), e.g. from guided_denoiser.
    generator: the stochastic steps' noise source (a torch.Generator or a callable, see _noise_like).
    known, keep: inpainting. Where keep is 1 the state is replaced, at the start and after every
    step, by the clean `known` noised to that step's timestep (Lugmayr et al. 2022, "RePaint",
    without its resampling), so only the cells where keep is 0 are drawn, and they are drawn to
    fit around the kept ones: the model sees both at every step. The last step puts `known`
    itself back, so the kept cells end exactly equal to it.
    Returns the final x, and with return_trajectory also a dict with "t" (the timesteps visited),
    "x" (the states, [S+1, B, ...]) and "x0" (the clean predictions along the way, [S, B, ...]).
    """
    if sampler == "ddpm":
        steps = schedule.T if t_start is None else t_start + 1
    elif sampler not in ("ddim", "dpmpp2m"):
        raise ValueError(f"sampler must be 'ddpm', 'ddim' or 'dpmpp2m', not {sampler!r}")
    ts = schedule.timesteps(steps, t_start)
    paste = (lambda x, t: x) if known is None else \
        (lambda x, t: keep * _noised(schedule, known, t, generator) + (1 - keep) * x)
    x = paste(x, ts[0])
    xs, x0s, prev = [x], [], None
    for t, t_next in zip(ts[:-1], ts[1:]):
        x0, eps = denoise(x, t)
        if sampler == "ddpm":
            x = ddpm_step(schedule, x, x0, t, generator)
        elif sampler == "ddim":
            x = ddim_step(schedule, x, x0, eps, t, t_next, eta, generator)
        else:
            x, prev = dpmpp2m_step(schedule, x, x0, t, t_next, prev)
        x = paste(x, t_next)
        if return_trajectory:
            xs.append(x), x0s.append(x0)
    if return_trajectory:
        return x, {"t": ts, "x": torch.stack(xs), "x0": torch.stack(x0s)}
    return x


@torch.no_grad()
def ddim_invert(denoise, schedule: NoiseSchedule, x0, steps: int = 50, t_end: int | None = None):
    """Run deterministic DDIM (eta = 0) backwards, from a clean x0 up to t_end (default T-1), so
    that sampling with DDIM and the same steps from the result returns x0 (Song et al. 2021,
    sec. 4.3; Dhariwal & Nichol 2021, app. F). Each step is the DDIM step read the other way:

        x_{t'} = sqrt(abar_{t'}) x0_hat + sqrt(1 - abar_{t'}) eps_hat,   t' > t,
        x0_hat = (x_t - sqrt(1 - abar_t) eps_hat) / sqrt(abar_t),

    with eps_hat taken at the next, noisier timestep t' (the model is not defined at t = -1, and
    the state changes little in one step): the approximation that makes inversion inexact, less
    so the more steps. Returns the state at t_end."""
    ts = schedule.timesteps(steps, t_end)[::-1]           # -1, then up to t_end
    x = x0
    for t, t_next in zip(ts[:-1], ts[1:]):
        _, eps = denoise(x, t_next)
        x = ddim_invert_step(x, eps, schedule.abar_at(t), schedule.abar_at(t_next))
    return x


def ddim_invert_step(x, eps, abar, abar_next: float):
    """One step of DDIM inversion: from x at the level abar to the noisier level abar_next
    (abar_next < abar), with the model's noise guess eps held fixed:

        x0_hat = (x - sqrt(1 - abar) eps) / sqrt(abar)                  (x = sqrt(abar) x0 + sqrt(1 - abar) eps, solved)
        x_next = sqrt(abar_next) x0_hat + sqrt(1 - abar_next) eps       (the DDIM step, to the noisier level)
    """
    x0_hat = (x - math.sqrt(1 - abar) * eps) / math.sqrt(abar)
    return math.sqrt(abar_next) * x0_hat + math.sqrt(1 - abar_next) * eps


def slerp(a: torch.Tensor, b: torch.Tensor, w) -> torch.Tensor:
    """Spherical interpolation between noises a and b ([B, ...] each), at weights w in [0, 1]
    (a float, or a tensor of B weights): (sin((1-w) theta) a + sin(w theta) b) / sin(theta), theta
    the angle between a and b per image. Gaussian noise in d dimensions has norm close to
    sqrt(d): it lives near a sphere, where slerp stays. A straight line cuts through the inside:
    halfway between two independent noises its norm is about 0.71 sqrt(d), a state too quiet for
    its timestep, which the model turns into a grey, washed-out garment."""
    flat_a, flat_b = a.flatten(1).double(), b.flatten(1).double()
    w = torch.as_tensor(w, dtype=torch.float64, device=a.device).reshape(-1, 1)
    cos = (flat_a * flat_b).sum(1, keepdim=True) / (flat_a.norm(dim=1, keepdim=True) * flat_b.norm(dim=1, keepdim=True))
    theta = torch.arccos(cos.clamp(-1, 1))
    sin = torch.sin(theta)
    parallel = sin.abs() < 1e-6                            # (anti)parallel: the straight line is the arc
    wa = torch.where(parallel, 1 - w, torch.sin((1 - w) * theta) / torch.where(parallel, 1.0, sin))
    wb = torch.where(parallel, w, torch.sin(w * theta) / torch.where(parallel, 1.0, sin))
    return (wa * flat_a + wb * flat_b).to(a.dtype).reshape(a.shape)


def student_timesteps(teacher_ts: list[int], steps: int) -> list[int]:
    """`steps` of the teacher's timesteps (without its final -1), evenly by index from the first:
    1 -> [999], 2 -> [999, 499], 4 -> [999, 749, 499, 249] for the 20-step teacher."""
    n = len(teacher_ts) - 1
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= n:
        raise ValueError(f"steps must be a whole number from 1 to {n} for the distilled sampler "
                         f"(it learned the teacher's {n} timesteps), not {steps!r}")
    return [teacher_ts[i * n // steps] for i in range(steps)]


@torch.no_grad()
def consistency_sample(denoise, schedule: NoiseSchedule, x, timesteps: list[int], generator=None,
                       return_trajectory: bool = False):
    """distill.py's eq. (2), Song et al. 2023 Algorithm 1: x is pure noise at timesteps[0];
    denoise(x, t) -> (z0_hat, eps_hat) is the distilled student (one UNet pass). Returns the last
    z0_hat, and with return_trajectory the same dict as sample ("t" ends with -1, "x" the states
    the student saw and then its final guess, "x0" its guesses)."""
    xs, x0s, x0 = [x], [], None
    for k, t in enumerate(timesteps):
        if k > 0:
            x = _noised(schedule, x0, t, generator)
            xs.append(x)
        x0, _ = denoise(x, t)
        x0s.append(x0)
    if return_trajectory:
        return x0, {"t": list(timesteps) + [-1], "x": torch.stack(xs + [x0]), "x0": torch.stack(x0s)}
    return x0
