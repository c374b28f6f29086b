"""Noise schedules, the forward process and the training target and loss, by hand.
(The reverse steps are the samplers', one per file in samplers/; the loop that chains them,
and guidance, are in sampling.py.)

Notation (Ho et al. 2020): abar_t = prod_{s<=t} (1 - beta_s), t = 0..T-1;
alpha_t = sqrt(abar_t) (signal), sigma_t = sqrt(1 - abar_t) (noise). Works for any tensor
shape, so the same code diffuses latents (C x 7 x 7) and pixels (1 x 28 x 28).
"""
from __future__ import annotations

import math
import torch
import torch.nn.functional as F

from .config import PREDICTIONS, SCHEDULES, one_of


def _check_prediction(prediction: str) -> None:
    # a typo must not silently train (and sample) the other target
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be {one_of(PREDICTIONS)}, not {prediction!r}")


class NoiseSchedule:
    def __init__(self, kind: str = "cosine", timesteps: int = 1000):
        T = timesteps
        if kind == "linear":       # Ho et al. 2020: beta from 1e-4 to 0.02
            betas = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)
        elif kind == "cosine":     # Nichol & Dhariwal 2021, eq. 17: abar(t) = f(t)/f(0), beta <= 0.999
            f = lambda t: math.cos((t / T + 0.008) / 1.008 * math.pi / 2) ** 2
            betas = torch.tensor([min(1 - f(i + 1) / f(i), 0.999) for i in range(T)], dtype=torch.float64)
        else:
            raise ValueError(f"schedule must be {one_of(SCHEDULES)}, not {kind!r}")
        self.kind, self.T, self.betas = kind, T, betas
        self.alphas_cumprod = torch.cumprod(1 - betas, 0)           # abar_t, float64
        self._snr = self.alphas_cumprod / (1 - self.alphas_cumprod)  # SNR_t, float64 (see snr)
        self._tables = {}                                           # abar with t = -1 in front, per device

    def _at(self, values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """values[t] (t = -1 means 'clean': abar = 1), shaped to broadcast against `like`.
        The table is copied once to the device of `like` (float32 on MPS, which has no float64)."""
        key = (id(values), like.device)
        if key not in self._tables:
            dtype = torch.float32 if like.device.type == "mps" else torch.float64
            self._tables[key] = torch.cat([values.new_ones(1), values]).to(like.device, dtype)
        v = self._tables[key][t.to(like.device).long() + 1]
        return v.to(like.dtype).view(-1, *[1] * (like.dim() - 1))

    def abar(self, t, like):
        return self._at(self.alphas_cumprod, t, like)

    def abar_at(self, t: int) -> float:
        """abar_t as a Python float, 1.0 for t = -1 (the clean end of every sampler)."""
        return float(self.alphas_cumprod[t]) if t >= 0 else 1.0

    def snr(self) -> torch.Tensor:
        """Signal-to-noise ratio abar / (1 - abar) per timestep (Kingma et al. 2021)."""
        return self._snr.clone()

    def snr_at(self, t: torch.Tensor) -> torch.Tensor:
        """SNR_t for a batch of timesteps t >= 0, float32 on t's device (the table is copied there once)."""
        return self._at(self._snr, t, t.float()).view(-1)

    # q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I)  (Ho et al. eq. 4)
    def q_sample(self, x0, t, noise):
        a = self.abar(t, x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def target(self, x0, noise, t, prediction: str):
        """What the network learns: eps, or v = alpha_t eps - sigma_t x0 (Salimans & Ho 2022)."""
        _check_prediction(prediction)
        if prediction == "eps":
            return noise
        a = self.abar(t, x0)
        return a.sqrt() * noise - (1 - a).sqrt() * x0

    def split(self, out, x_t, t, prediction: str):
        """Network output -> (x0_hat, eps_hat), inverting the two equations above."""
        _check_prediction(prediction)
        a = self.abar(t, x_t)
        if prediction == "eps":
            eps = out
            x0 = (x_t - (1 - a).sqrt() * eps) / a.sqrt()
        else:
            x0 = a.sqrt() * x_t - (1 - a).sqrt() * out
            eps = (1 - a).sqrt() * x_t + a.sqrt() * out
        return x0, eps

    def timesteps(self, steps: int, t_start: int | None = None) -> list[int]:
        """`steps` timesteps from t_start (default T-1) down, evenly spaced, then -1 (clean):
        t_i = round(N (steps - i) / steps) - 1 for i = 0..steps-1, N = t_start + 1, i.e. "trailing"
        spacing (Lin et al. 2024, table 2): exactly `steps` distinct values in [0, t_start].

        For t_start = T-1 these are diffusers' DDIMScheduler(timestep_spacing="trailing") timesteps,
        np.round(np.arange(N, 0, -N / steps)) - 1, to the last tie: numpy computes the i-th value
        as N + i * delta in float64, delta = (N - N / steps) - N, and rounds half to even, and so
        do we. Only the length differs: numpy takes it from a float division and, for 62 of the
        step counts 1..1000 (61 is one), adds an extra element that rounds to -1; ours comes from
        the integer index i, so there is no step to or from a timestep below 0."""
        t_start = self.T - 1 if t_start is None else t_start
        if not 0 <= t_start < self.T:
            raise ValueError(f"t_start must be between 0 and {self.T - 1}, not {t_start}")
        if steps < 1 or steps > t_start + 1:
            raise ValueError(f"steps must be between 1 and {t_start + 1}, not {steps}")
        n = t_start + 1
        delta = (n - n / steps) - n              # numpy's arange step, as it computes it
        return [round(n + i * delta) - 1 for i in range(steps)] + [-1]


def noising_path(schedule: NoiseSchedule, x0, keep, generator=None) -> list:
    """One sample path of the forward process, step by step (Ho et al. eq. 2):
    x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps_t, fresh noise at every t.
    Returns the states at the timesteps in `keep`, in order. Each has the law q(x_t | x_0) of
    eq. 4 (q_sample), but together they are one trajectory, where q_sample with one shared noise
    draw would only slide one fixed image from x0 towards that noise."""
    keep, out, x = set(int(t) for t in keep), [], x0
    for t in range(max(keep) + 1):
        beta = float(schedule.betas[t])
        x = math.sqrt(1 - beta) * x + math.sqrt(beta) * noise_like(x, generator)
        if t in keep:
            out.append(x)
    return out


def training_loss(model, schedule: NoiseSchedule, x0, y, prediction: str, p_uncond: float,
                  num_classes: int, generator=None, min_snr_gamma: float | None = None):
    """Ho et al. Algorithm 1 with label dropout: with probability p_uncond the class becomes the
    null class, so the one network learns both p(x|y) and p(x) (classifier-free guidance).

    min_snr_gamma: Min-SNR-gamma weighting (Hang et al. 2023). In x0 terms the eps loss weighs
    timestep t by SNR_t and the v loss by SNR_t + 1; both spend most of the gradient on nearly
    clean inputs. Clamping the x0 weight at gamma, i.e. weighting the loss by
    min(SNR_t, gamma) / SNR_t (eps) or min(SNR_t, gamma) / (SNR_t + 1) (v), evens that out."""
    b, dev = x0.shape[0], x0.device          # `generator` lives on the same device as the data
    t = torch.randint(0, schedule.T, (b,), generator=generator, device=dev)
    noise = torch.randn(x0.shape, generator=generator, device=dev)
    drop = torch.rand(b, generator=generator, device=dev) < p_uncond
    y = torch.where(drop, torch.full_like(y, num_classes), y)
    out = model(schedule.q_sample(x0, t, noise), t, y)
    target = schedule.target(x0, noise, t, prediction)
    if min_snr_gamma is None:
        return F.mse_loss(out.float(), target)
    weight = min_snr_weight(schedule.snr_at(t), min_snr_gamma, prediction)
    per_example = (out.float() - target).square().flatten(1).mean(1)
    return (weight * per_example).mean()


def min_snr_weight(snr: torch.Tensor, gamma: float, prediction: str) -> torch.Tensor:
    """Min-SNR-gamma's factor on each example's MSE (Hang et al. 2023), from SNR_t per example.
    In x0 terms the plain v-MSE weighs |x0 - x0_hat|^2 by SNR_t + 1 and the eps-MSE by SNR_t;
    the factor turns that weight into min(SNR_t, gamma):
        v:   min(SNR_t, gamma) / (SNR_t + 1),   eps: min(SNR_t, gamma) / SNR_t."""
    _check_prediction(prediction)
    return snr.clamp(max=gamma) / (snr + 1 if prediction == "v" else snr)


def noise_like(x, generator=None):
    """Fresh N(0, I) noise shaped like x. `generator` is a torch.Generator on x's device (or None:
    the global RNG), or a callable x -> noise such as device.PerImageNoise, which makes each
    image's noise depend on its seed and index only, not on the batching."""
    if callable(generator):
        return generator(x)
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def noised(schedule: NoiseSchedule, x0, t: int, generator=None):
    """x0 noised to timestep t with fresh noise (q_sample at one integer t), or x0 itself at
    t = -1, the clean end of every sampler."""
    if t < 0:
        return x0
    a = schedule.abar_at(t)
    return math.sqrt(a) * x0 + math.sqrt(1 - a) * noise_like(x0, generator)
