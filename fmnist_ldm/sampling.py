"""The reverse-process loop and what it is composed with: classifier-free guidance (with a
negative class), inpainting, and spherical interpolation of noise.

Everything here works on states and a `denoise(x, t) -> (x0_hat, eps_hat)` callable, so it is
the same for latents and pixels, any model and any device. The steps themselves are the
samplers', one per file in samplers/; the Pipeline composes these with its models.
"""
from __future__ import annotations

import numbers

import torch

from .config import NUM_CLASSES
from .diffusion import NoiseSchedule, noised
from .samplers import Sampler, make_sampler

# The settings we recommend (measured in benchmarks/; see the README's results table).
# guidance 5 only for t in [300, 700]: >= 97 % class accuracy at the best FID we measured for it
# (guiding above t = 800 or below 200 costs FID), and 8 of the 20 steps run the UNet twice, not 12.
DEFAULTS = dict(sampler="dpmpp2m", steps=20, guidance=5.0, guidance_interval=(300, 700))


class GuidedDenoiser:
    """(x_t, t) -> (x0_hat, eps_hat) with classifier-free guidance (Ho & Salimans 2022):

        out = out_neg + w * (out_cond - out_neg),

    where out_neg is the model's output for the null class (plain CFG), or for a `negative` class
    per image: a negative prompt, as diffusers' negative_prompt does it. Guidance then pushes away
    from what the negative class looks like as much as towards y. Guidance is linear in the
    output, so guiding eps or v is the same. Outside `interval` (t_lo, t_hi) it is skipped, which
    saves the second evaluation and keeps diversity (Kynkaenniemi et al. 2024).

    model(x, t, y) -> the network's raw output (eps or v, as `prediction` says).
    conditional: whether any label in y is a class rather than the null class (an unconditional
    batch has nothing to guide: one pass a step); None reads it from y, once, here: reading y on
    a GPU waits for it, so it is not done at every step.

    It also counts what ran, so that no number about cost is computed from the arguments: `calls`
    (network calls, one per step), `rows` (images evaluated, a guided step's doubled batch
    counted twice), and `finite`: (t, whether the guess was finite) per call, kept on the device
    and read once after the run (reading at every step would wait for the GPU)."""

    def __init__(self, model, schedule: NoiseSchedule, prediction: str, y: torch.Tensor, guidance: float = 1.0,
                 interval: tuple[int, int] | None = None, null_class: int = NUM_CLASSES,
                 conditional: bool | None = None, negative: torch.Tensor | None = None):
        self.model, self.schedule, self.prediction, self.y = model, schedule, prediction, y
        self.guidance, self.interval = guidance, interval
        self.away = torch.full_like(y, null_class) if negative is None else negative
        self.conditional = bool((y != null_class).any()) if conditional is None else conditional
        self.calls, self.rows, self.finite = 0, 0, []

    def guides(self, t: int) -> bool:
        """Whether step t runs the guided, doubled batch."""
        inside = self.interval is None or self.interval[0] <= t <= self.interval[1]
        return self.guidance != 1.0 and inside and self.conditional

    def __call__(self, x: torch.Tensor, t: int):
        tt = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        guided = self.guides(t)
        if guided:
            both = self.model(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([self.y, self.away]))
            cond, neg = both.float().chunk(2)
            out = neg + self.guidance * (cond - neg)
        else:
            out = self.model(x, tt, self.y).float()
        self.calls += 1
        self.rows += x.shape[0] * (2 if guided else 1)
        x0, eps = self.schedule.split(out, x, tt, self.prediction)
        self.finite.append((t, torch.isfinite(x0).all()))
        return x0, eps


@torch.no_grad()
def sample(denoise, schedule: NoiseSchedule, x, sampler: str | Sampler = "dpmpp2m", steps: int = 20,
           eta: float = 0.0, t_start: int | None = None, generator=None, return_trajectory=False,
           known=None, keep=None):
    """Run a reverse process from x (pure noise at t_start, or a noised image) to t = -1.

    sampler: a name from samplers.SAMPLERS ("ddpm" takes every timestep, so `steps` does not
    apply; "ddim" takes eta: 0 deterministic, 1 DDPM-like; "dpmpp2m": good images in 10-20
    steps), or a Sampler made for this run (e.g. the distilled student's, which needs the
    teacher's timesteps).
    denoise(x, t) -> (x0_hat, eps_hat), e.g. a GuidedDenoiser.
    generator: the stochastic steps' noise source (a torch.Generator or a callable, see
    diffusion.noise_like).
    known, keep: inpainting. Where keep is 1 the state is replaced, at the start and after every
    step, by the clean `known` noised to that step's timestep (Lugmayr et al. 2022, "RePaint",
    without its resampling), so only the cells where keep is 0 are drawn, and they are drawn to
    fit around the kept ones: the model sees both at every step. The last step puts `known`
    itself back, so the kept cells end exactly equal to it.
    Returns the final x, and with return_trajectory also a dict with "t" (the timesteps visited),
    "x" (the states, [S+1, B, ...]) and "x0" (the clean predictions along the way, [S, B, ...]).
    """
    if not isinstance(sampler, Sampler):
        sampler = make_sampler(sampler, schedule, generator, eta=eta)
    ts = sampler.timesteps(steps, t_start)
    paste = (lambda x, t: x) if known is None else \
        (lambda x, t: keep * noised(schedule, known, t, generator) + (1 - keep) * x)
    x = paste(x, ts[0])
    xs, x0s = [x], []
    for t, t_next in zip(ts[:-1], ts[1:]):
        x0, eps = denoise(x, t)
        x = paste(sampler.step(x, x0, eps, t, t_next), t_next)
        if return_trajectory:
            xs.append(x), x0s.append(x0)
    if return_trajectory:
        return x, {"t": ts, "x": torch.stack(xs), "x0": torch.stack(x0s)}
    return x


def slerp(a: torch.Tensor, b: torch.Tensor, w) -> torch.Tensor:
    """Spherical interpolation between noises a and b ([B, ...] each), at weights w in [0, 1]
    (a float, or a tensor of B weights): (sin((1-w) theta) a + sin(w theta) b) / sin(theta), theta
    the angle between a and b per image. Gaussian noise in d dimensions has norm close to
    sqrt(d): it lives near a sphere, where slerp stays. A straight line cuts through the inside:
    halfway between two independent noises its norm is about 0.71 sqrt(d), a state too quiet for
    its timestep, which the model turns into a grey, washed-out garment."""
    _check_slerp(a, b, w)
    flat_a, flat_b = a.flatten(1).double(), b.flatten(1).double()
    w = torch.as_tensor(w, dtype=torch.float64, device=a.device).reshape(-1, 1)
    cos = (flat_a * flat_b).sum(1, keepdim=True) / (flat_a.norm(dim=1, keepdim=True) * flat_b.norm(dim=1, keepdim=True))
    theta = torch.arccos(cos.clamp(-1, 1))
    sin = torch.sin(theta)
    parallel = sin.abs() < 1e-6                            # (anti)parallel: the straight line is the arc
    wa = torch.where(parallel, 1 - w, torch.sin((1 - w) * theta) / torch.where(parallel, 1.0, sin))
    wb = torch.where(parallel, w, torch.sin(w * theta) / torch.where(parallel, 1.0, sin))
    return (wa * flat_a + wb * flat_b).to(a.dtype).reshape(a.shape)


def _check_slerp(a, b, w) -> None:
    """slerp's inputs: two float tensors of one shape [B, ...], nonzero and finite, and weights in
    [0, 1], one or one per image; else a ValueError naming the argument."""
    for name, v in (("a", a), ("b", b)):
        if not isinstance(v, torch.Tensor) or not v.is_floating_point() or v.dim() < 2:
            got = f"{v.dtype} {tuple(v.shape)}" if isinstance(v, torch.Tensor) else type(v).__name__
            raise ValueError(f"{name} must be a float tensor [B, ...] (a batch of noises), not {got}")
        if not torch.isfinite(v).all():
            raise ValueError(f"{name} holds NaN or infinite values")
        if (v.flatten(1).norm(dim=1) == 0).any():
            raise ValueError(f"{name} holds an all-zero noise: its angle to the other is undefined")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have one shape, not {tuple(a.shape)} and {tuple(b.shape)}")
    ws = w.detach().cpu().reshape(-1).tolist() if isinstance(w, torch.Tensor) else [w]
    if len(ws) not in (1, a.shape[0]) or any(isinstance(v, bool) or not isinstance(v, numbers.Real)
                                             or not 0 <= v <= 1 for v in ws):
        raise ValueError(f"w must be a weight from 0 to 1, or one per image ({a.shape[0]}), not {w!r}")
