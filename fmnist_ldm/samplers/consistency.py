"""The distilled student's sampler: multistep consistency sampling (Song et al. 2023, Algorithm 1;
distill.py, eq. 2). The student maps any state of the teacher's run straight to where that run
ends; each further step noises that guess back to a later timestep and guesses again."""
from __future__ import annotations

from ..checks import whole
from ..diffusion import noised
from .base import Sampler


def _learned(n: int) -> str:
    """Why the student takes at most n steps, for the error messages."""
    return f" for the distilled sampler (it learned the teacher's {n} timesteps)"


def student_timesteps(teacher_ts: list[int], steps: int) -> list[int]:
    """`steps` of the teacher's timesteps (without its final -1), evenly by index from the first:
    1 -> [999], 2 -> [999, 499], 4 -> [999, 749, 499, 249] for the 20-step teacher."""
    n = len(teacher_ts) - 1
    whole("steps", steps, 1, n, _learned(n))
    return [teacher_ts[i * n // steps] for i in range(steps)]


class Consistency(Sampler):
    """teacher_timesteps: the teacher run's timesteps the student learned, ending with -1 (the
    student file records them); it is only ever asked at those."""

    name = "distilled"
    network = "student"
    guided = False
    edits = False
    options = ("teacher_timesteps",)
    default_steps = 4      # the step count it is benchmarked at

    def __init__(self, schedule, generator=None, teacher_timesteps=None):
        super().__init__(schedule, generator)
        if teacher_timesteps is None:
            raise ValueError("the distilled sampler needs teacher_timesteps: the timesteps the student learned")
        self.teacher_timesteps = list(teacher_timesteps)

    def step_range(self, t_start=None):
        n = len(self.teacher_timesteps) - 1
        return n, _learned(n)

    def timesteps(self, steps, t_start=None):
        return student_timesteps(self.teacher_timesteps, steps) + [-1]

    def step(self, x, x0, eps, t, t_next):
        # z_{t'} = sqrt(abar_{t'}) z0_hat + sqrt(1 - abar_{t'}) eps', fresh eps'; at t' = -1: z0_hat itself
        return noised(self.schedule, x0, t_next, self.generator)
