"""Exercises of notebook 07 (distillation): one `check_<name>(student_fn)` each."""
from __future__ import annotations

import math

import torch

from ...diffusion import NoiseSchedule
from ...samplers.consistency import Consistency
from ...sampling import sample
from .grading import Verdict, gen, grade

__all__ = ["check_consistency_sampling", "check_v_target", "check_consistency_gap"]

AXES = ("image", "channel", "row", "column")
SCHEDULE = NoiseSchedule("cosine", 1000)


def _toy_student(z, t):
    """A stand-in for the student's guess z0_hat = f(z_t, t): nonlinear in z and different at every
    t, so that a guess taken at the wrong state or the wrong t cannot match by luck."""
    return torch.tanh(0.8 * z + t / 700) * (1 - t / 2500)


def check_consistency_sampling(fn) -> Verdict:
    """fn(denoise, abar, noise, timesteps) -> the last guess of multistep consistency sampling
    (distill.py eq. 2; Song et al. 2023, Algorithm 1): z0_hat = denoise(noise[0], timesteps[0]), then
    for k >= 1: z = sqrt(abar(t_k)) z0_hat + sqrt(1 - abar(t_k)) noise[k]; z0_hat = denoise(z, t_k)."""
    g = gen(21)
    ts = [999, 700, 350, 120]                        # 4 steps, not evenly spaced
    noise = [torch.randn(5, 3, 6, 7, generator=g) for _ in ts]
    fresh = iter(noise[1:])
    student = Consistency(SCHEDULE, lambda like: next(fresh), teacher_timesteps=ts + [-1])   # every one of ts
    expected = sample(lambda z, t: (_toy_student(z, t), None), SCHEDULE, noise[0], student, steps=len(ts))
    f, a = _toy_student, SCHEDULE.abar_at

    def loop(renoise, noises=noise[1:], abar_ts=ts[1:], last_state=False):
        """The sampler with one part swapped out: renoise(guess, state, t_abar, eps) -> the next state."""
        z = noise[0]
        z0 = f(z, ts[0])
        for t, ta, eps in zip(ts[1:], abar_ts, noises):
            z = renoise(z0, z, ta, eps)
            z0 = f(z, t)
        return z if last_state else z0

    right = lambda z0, z, t, eps: math.sqrt(a(t)) * z0 + math.sqrt(1 - a(t)) * eps
    return grade("multistep consistency sampling",
                 lambda: fn(_toy_student, SCHEDULE.abar_at, [n.clone() for n in noise], list(ts)), expected, [
        (f(noise[0], ts[0]), "that is the first guess only: for each later timestep, re-noise the guess and guess again."),
        (loop(lambda z0, z, t, eps: math.sqrt(a(t)) * z + math.sqrt(1 - a(t)) * eps),
         "you re-noised the previous state z_t; eq. (2) noises the student's guess z0_hat back to t."),
        (loop(lambda z0, z, t, eps: z0), "the guess is passed back without re-noising: bring it to t with "
                                         "sqrt(abar_t) z0_hat + sqrt(1 - abar_t) noise first."),
        (loop(right, noises=[noise[1]] * 3), "the same noise at every step: step k takes fresh noise, noise[k]."),
        (loop(right, noises=noise[:-1]), "noise[0] is the starting noise; the fresh noise of step k is noise[k]."),
        (loop(right, abar_ts=ts[:-1]), "abar of the previous timestep: re-noise with abar of the timestep you go to."),
        (loop(lambda z0, z, t, eps: a(t) * z0 + (1 - a(t)) * eps), "the square roots are missing: "
                                                                   "sqrt(abar_t) z0_hat + sqrt(1 - abar_t) noise."),
        (loop(right, last_state=True), "you returned the last state z_t; the sample is the student's last guess."),
    ], axes=AXES)


def check_v_target(fn) -> Verdict:
    """fn(z_t, abar_t, z_end) -> the v that makes the student's guess sqrt(abar) z_t - sqrt(1 - abar) v
    equal z_end: v* = (sqrt(abar) z_t - z_end) / sqrt(1 - abar). Expected from the library: the
    v-target of diffusion.NoiseSchedule.target with z_end as x0 and the noise that z_t then holds."""
    g = gen(22)
    z, end = torch.randn(5, 3, 6, 7, generator=g), torch.randn(5, 3, 6, 7, generator=g)
    t = torch.tensor([930, 610, 402, 155, 40])
    a = SCHEDULE.abar(t, z)                                        # [5, 1, 1, 1]
    eps = (z - a.sqrt() * end) / (1 - a).sqrt()                    # z_t = sqrt(a) z_end + sqrt(1 - a) eps, solved
    expected = SCHEDULE.target(end, eps, t, "v")
    assert torch.allclose(SCHEDULE.split(expected, z, t, "v")[0], end, atol=1e-5)   # it lands on the end
    return grade("v target", lambda: fn(z.clone(), a.clone(), end.clone()), expected, [
        ((end - a.sqrt() * z) / (1 - a).sqrt(), "the sign is flipped: from z0 = sqrt(abar) z_t - sqrt(1 - abar) v, "
                                                "v = (sqrt(abar) z_t - z0) / sqrt(1 - abar)."),
        ((a * z - end) / (1 - a), "the square roots are missing: sqrt(abar) and sqrt(1 - abar)."),
        ((z - a.sqrt() * end) / (1 - a).sqrt(), "that is the noise eps the state holds, not v."),
        (a.sqrt() * z - end, "solve for v: divide by sqrt(1 - abar) too."),
        ((a.sqrt() * z - end) / a.sqrt(), "divide by sqrt(1 - abar), the factor in front of v, not by sqrt(abar)."),
    ], axes=AXES)


def check_consistency_gap(fn) -> Verdict:
    """fn(denoise, states, timesteps) -> [S - 1]: for each pair of neighbouring states k, k + 1 of the
    runs (states [R, S + 1, C, H, W], the last the runs' end; timesteps S + 1 ending with -1), the mean
    squared difference between the student's guesses denoise(states[:, k], t_k) and
    denoise(states[:, k + 1], t_k+1), averaged over runs, channels and pixels."""
    g = gen(23)
    ts = [999, 830, 640, 470, 300, 130, -1]                        # S = 6 steps, 7 states
    states = torch.randn(4, len(ts), 3, 6, 9, generator=g)          # 4 runs, 3 channels, 6 x 9
    f, S = _toy_student, len(ts) - 1
    guesses = torch.stack([f(states[:, k], ts[k]) for k in range(S)], 1)     # [R, S, C, H, W]
    pair = lambda x: (x[:, :-1] - x[:, 1:]).pow(2)                            # neighbours k, k + 1
    expected = pair(guesses).mean((0, 2, 3, 4))
    with_end = torch.stack([f(states[:, k], ts[k]) for k in range(S + 1)], 1)
    off_by_one = torch.stack([f(states[:, k], ts[k + 1]) for k in range(S)], 1)
    return grade("consistency gap", lambda: fn(_toy_student, states.clone(), list(ts)), expected, [
        ((guesses - states[:, -1:]).pow(2).mean((0, 2, 3, 4)),
         "each guess is compared with the runs' end: that is eq. (1) at each t. Compare two guesses, "
         "from neighbouring states."),
        (pair(states[:, :S]).mean((0, 2, 3, 4)), "those are the states: they differ by their noise. Compare the "
                                                 "student's guesses from them."),
        (pair(states).mean((0, 2, 3, 4)), "those are the states: they differ by their noise. Compare the "
                                          "student's guesses from them."),
        (pair(with_end).mean((0, 2, 3, 4)), "the last entry of states is the runs' end (t = -1), not a state to "
                                            "guess from: S states give S - 1 neighbouring pairs."),
        (pair(off_by_one).mean((0, 2, 3, 4)), "the timestep is off by one: state k was recorded at timesteps[k]."),
        (pair(guesses).mean(), "one number per pair of neighbouring states, not one in all: average over runs, "
                               "channels, rows and columns only."),
        (pair(guesses).sum((0, 2, 3, 4)), "average the squared differences (mean), do not sum them."),
        (pair(guesses).mean((2, 3, 4)), "one number per pair of neighbouring states: average over the runs too."),
        (pair(guesses).mean((1, 2, 3, 4)), "one number per pair of neighbouring states, not per run: average over "
                                           "runs, channels, rows and columns."),
    ], axes=("pair of neighbouring states",))
