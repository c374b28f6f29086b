"""What every sampler is: the timesteps it visits, and one step from the state and the model's
guess. The loop that chains the steps is sampling.sample; guidance is sampling.GuidedDenoiser."""
from __future__ import annotations

import torch

from ..checks import whole
from ..diffusion import NoiseSchedule


class Sampler:
    """A reverse process, one step at a time (the interface diffusers' schedulers share):

        ts = sampler.timesteps(steps, t_start)          # t_0 > t_1 > ... > t_{S-1}, then -1 (clean)
        for t, t_next in zip(ts[:-1], ts[1:]):
            x0_hat, eps_hat = denoise(x, t)              # the network's guess at t
            x = sampler.step(x, x0_hat, eps_hat, t, t_next)

    One instance per run: a multistep sampler keeps what it needs of earlier steps. `generator`
    is the source of the noise a stochastic step adds (diffusion.noise_like)."""

    name = ""
    network = "unet"       # whose guess it steps with: the UNet, or the distilled "student"
    guided = True          # classifier-free guidance applies (the student has it folded in)
    edits = True           # can start from a given state x_start at t_start (SDEdit, inpainting)
    options: tuple = ()    # keyword options of its constructor beyond schedule and generator
    default_steps = None   # the command line's step count for it; None: sampling.DEFAULTS["steps"]

    def __init__(self, schedule: NoiseSchedule, generator=None):
        self.schedule, self.generator = schedule, generator

    def step_range(self, t_start: int | None = None) -> tuple[int, str]:
        """The largest step count it takes from t_start, and why, for the error message."""
        if t_start is None:
            return self.schedule.T, f" (this model has {self.schedule.T} timesteps)"
        return t_start + 1, f" (the timesteps from t_start = {t_start} down)"

    def check_steps(self, steps, t_start: int | None = None) -> None:
        """A ValueError starting with "steps" unless `steps` is a step count it can take."""
        most, why = self.step_range(t_start)
        whole("steps", steps, 1, most, why)

    def timesteps(self, steps: int, t_start: int | None = None) -> list[int]:
        """The timesteps visited, from t_start (default T-1) down, then -1."""
        return self.schedule.timesteps(steps, t_start)

    def step(self, x: torch.Tensor, x0: torch.Tensor, eps: torch.Tensor, t: int, t_next: int) -> torch.Tensor:
        """The state at t_next, from the state x at t and the network's guesses x0_hat, eps_hat."""
        raise NotImplementedError
