"""The hand-written schedule and samplers, checked against identities and against diffusers."""
import math

import pytest
import torch

from fmnist_ldm.diffusion import NoiseSchedule
from fmnist_ldm.sampling import GuidedDenoiser, sample

diffusers = pytest.importorskip("diffusers")
DIFFUSERS_SCHEDULE = {"linear": "linear", "cosine": "squaredcos_cap_v2"}
SIGMA_DATA = 0.5


def gaussian_denoiser(schedule, prediction="eps"):
    """The exact denoiser for data ~ N(0, SIGMA_DATA^2): E[eps | x_t] = sqrt(1-abar) x_t / var(x_t).
    Every sampler must turn N(0, 1) noise into samples with std SIGMA_DATA."""
    def eps_fn(x, t):
        a = schedule.abar_at(int(t))
        return math.sqrt(1 - a) * x / (a * SIGMA_DATA ** 2 + 1 - a)

    def denoise(x, t):
        tt = torch.full((x.shape[0],), t)
        return schedule.split(eps_fn(x, t), x, tt, "eps")
    return eps_fn, denoise


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_schedule_matches_diffusers(kind):
    ours = NoiseSchedule(kind)
    ref = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule=DIFFUSERS_SCHEDULE[kind])
    torch.testing.assert_close(ours.betas.float(), ref.betas, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(ours.alphas_cumprod.float(), ref.alphas_cumprod, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_schedule_identities(kind):
    s = NoiseSchedule(kind)
    abar = s.alphas_cumprod
    assert torch.all(abar[1:] < abar[:-1]) and 0.99 < abar[0] < 1 and abar[-1] < 1e-3
    snr = s.snr()
    assert torch.all(snr[1:] < snr[:-1])


def test_cosine_abar_is_the_closed_form():
    """Nichol & Dhariwal eq. 17, written out here and not through the schedule's betas:
    abar_t = f(t + 1) / f(0), f(u) = cos^2((u / T + s) / (1 + s) pi / 2), s = 0.008, t = 0..T-1.
    Clipping beta at 0.999 changes only the last step (f(T) is ~0): abar_{T-1} = 0.001 abar_{T-2}."""
    T = 1000
    f = lambda u: math.cos((u / T + 0.008) / 1.008 * math.pi / 2) ** 2
    assert [t for t in range(T) if 1 - f(t + 1) / f(t) > 0.999] == [T - 1]
    expected = [f(t + 1) / f(0) for t in range(T - 1)]
    expected.append(expected[-1] * (1 - 0.999))
    torch.testing.assert_close(NoiseSchedule("cosine", T).alphas_cumprod,
                               torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=0)


def test_linear_abar_is_the_product_of_the_written_out_betas():
    """Ho et al.: beta_t from 1e-4 to 0.02 in T equal steps; abar_t = prod_{i<=t} (1 - beta_i), here
    summed in log space from betas written out by hand, and abar_{T-1} = 4.04e-5 as in DDPM."""
    T = 1000
    betas = [1e-4 + (0.02 - 1e-4) * i / (T - 1) for i in range(T)]
    expected = [math.exp(math.fsum(math.log1p(-b) for b in betas[:t + 1])) for t in range(T)]
    abar = NoiseSchedule("linear", T).alphas_cumprod
    torch.testing.assert_close(abar, torch.tensor(expected, dtype=torch.float64), rtol=1e-10, atol=0)
    assert abs(abar[-1].item() - 4.0358e-5) < 1e-8


def test_forward_process_moments():
    s = NoiseSchedule("cosine")
    x0 = torch.full((200_000,), 0.7)
    for t in (0, 250, 600, 999):
        xt = s.q_sample(x0, torch.full((len(x0),), t), torch.randn(len(x0), generator=torch.Generator().manual_seed(t)))
        a = s.abar_at(t)
        assert abs(xt.mean().item() - math.sqrt(a) * 0.7) < 0.01
        assert abs(xt.var().item() - (1 - a)) < 0.01


def test_an_unknown_prediction_is_refused_not_trained_as_v():
    from fmnist_ldm.diffusion import training_loss
    s = NoiseSchedule("cosine")
    x0, t = torch.randn(2, 4, 7, 7), torch.tensor([3, 700])
    for call in (lambda: s.target(x0, x0, t, "x0"), lambda: s.split(x0, x0, t, "x0"),
                 lambda: training_loss(lambda x, t, y: x, s, x0, torch.tensor([0, 1]), "x0", 0.0, 10)):
        with pytest.raises(ValueError, match="prediction must be 'eps' or 'v', not 'x0'"):
            call()


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_targets_invert(prediction):
    s = NoiseSchedule("cosine")
    x0, noise = torch.randn(8, 4, 7, 7), torch.randn(8, 4, 7, 7)
    t = torch.randint(0, 1000, (8,))
    xt = s.q_sample(x0, t, noise)
    x0_hat, eps_hat = s.split(s.target(x0, noise, t, prediction), xt, t, prediction)
    torch.testing.assert_close(x0_hat, x0, atol=2e-3, rtol=1e-3)
    torch.testing.assert_close(eps_hat, noise, atol=1e-4, rtol=1e-4)


def _check_timesteps(ts, steps, t_start):
    """`steps` distinct timesteps, strictly descending from t_start, all in [0, t_start], then -1."""
    assert len(ts) == steps + 1 and ts[-1] == -1, (steps, t_start, ts[-3:])
    body = ts[:-1]
    assert body[0] == t_start and body[-1] >= 0, (steps, t_start, body[-3:])
    assert all(a > b for a, b in zip(body, body[1:])), (steps, t_start)


def test_timesteps_are_diffusers_trailing_at_every_step_count():
    """Every step count 1..T, not only 10/20/50: diffusers' own list has one element too many
    (a trailing -1) for 62 of them, e.g. 61, so we compare with its first `steps` elements."""
    s = NoiseSchedule()
    ref = diffusers.DDIMScheduler(timestep_spacing="trailing")
    for steps in range(1, 1001):
        ts = s.timesteps(steps)
        _check_timesteps(ts, steps, 999)
        ref.set_timesteps(steps)
        assert ts[:-1] == ref.timesteps.tolist()[:steps], steps


@pytest.mark.parametrize("t_start", [0, 1, 2, 59, 60, 61, 299, 500, 998, 999])
def test_timesteps_from_any_start_at_every_step_count(t_start):
    s = NoiseSchedule()
    for steps in range(1, t_start + 2):
        _check_timesteps(s.timesteps(steps, t_start), steps, t_start)
    for steps in (0, -1, t_start + 2):
        with pytest.raises(ValueError, match="steps must be between 1 and"):
            s.timesteps(steps, t_start)


def test_timesteps_refuse_a_start_outside_the_schedule():
    s = NoiseSchedule(timesteps=1000)
    for t_start in (-1, 1000):
        with pytest.raises(ValueError, match="t_start must be between 0 and 999"):
            s.timesteps(1, t_start)


@pytest.mark.parametrize("sampler", ["ddim", "dpmpp2m"])
def test_61_steps_sample_finite_and_never_call_the_model_at_minus_1(sampler):
    """61 steps used to end the list with 15, -1, -1: DDIM divided by zero (1 - abar_{-1} = 0)
    and DPM-Solver++ spent a model call on the clean end."""
    s = NoiseSchedule("cosine")
    _, exact = gaussian_denoiser(s)
    seen = []

    def denoise(x, t):
        seen.append(t)
        return exact(x, t)
    x = torch.randn(64, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    out = sample(denoise, s, x, sampler, 61)
    assert torch.isfinite(out).all()
    assert len(seen) == 61 and min(seen) >= 0


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_ddim_matches_diffusers(kind):
    s = NoiseSchedule(kind)
    eps_fn, denoise = gaussian_denoiser(s)
    ref = diffusers.DDIMScheduler(beta_schedule=DIFFUSERS_SCHEDULE[kind], clip_sample=False,
                                  timestep_spacing="trailing", set_alpha_to_one=True)
    ref.set_timesteps(20)
    x = torch.randn(16, 4, 7, 7, generator=torch.Generator().manual_seed(0))
    ours, traj = sample(denoise, s, x, "ddim", 20, return_trajectory=True)
    y = x
    for i, t in enumerate(ref.timesteps):
        y = ref.step(eps_fn(y, t), t, y, eta=0.0).prev_sample
        torch.testing.assert_close(traj["x"][i + 1], y, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours, y, rtol=1e-4, atol=1e-5)


def test_ddpm_matches_diffusers():
    s = NoiseSchedule("linear")
    eps_fn, denoise = gaussian_denoiser(s)
    ref = diffusers.DDPMScheduler(beta_schedule="linear", clip_sample=False, variance_type="fixed_small")
    ref.set_timesteps(1000)
    x = torch.randn(8, 4, 7, 7, generator=torch.Generator().manual_seed(0))
    ours = sample(denoise, s, x, "ddpm", generator=torch.Generator().manual_seed(1))
    gen, y = torch.Generator().manual_seed(1), x
    for t in ref.timesteps:
        y = ref.step(eps_fn(y, t), t, y, generator=gen).prev_sample
    torch.testing.assert_close(ours, y, rtol=1e-3, atol=1e-4)


def test_dpmpp2m_matches_diffusers():
    # The linear schedule: at the cosine schedule's t = 999, abar ~ 1e-9 and diffusers' float32
    # sigmas = sqrt((1 - abar) / abar) alone move the first step by 4e-4 (we compute in float64).
    s = NoiseSchedule("linear")
    eps_fn, denoise = gaussian_denoiser(s)
    ref = diffusers.DPMSolverMultistepScheduler(
        beta_schedule="linear", algorithm_type="dpmsolver++", solver_order=2,
        timestep_spacing="trailing", final_sigmas_type="zero", prediction_type="epsilon")
    ref.set_timesteps(10)
    x = torch.randn(16, 4, 7, 7, generator=torch.Generator().manual_seed(0))
    ours = sample(denoise, s, x, "dpmpp2m", 10)
    y = x
    for t in ref.timesteps:
        y = ref.step(eps_fn(y, t), t, y).prev_sample
    torch.testing.assert_close(ours, y, rtol=1e-4, atol=1e-4)


def test_ddim_eta1_all_steps_is_ddpm():
    s = NoiseSchedule("cosine")
    _, denoise = gaussian_denoiser(s)
    x = torch.randn(8, 4, 7, 7, generator=torch.Generator().manual_seed(0))
    ddpm = sample(denoise, s, x, "ddpm", generator=torch.Generator().manual_seed(3))
    ddim = sample(denoise, s, x, "ddim", 1000, eta=1.0, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(ddim, ddpm, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("sampler,steps", [("ddpm", 1000), ("ddim", 200), ("dpmpp2m", 20)])
def test_samplers_recover_the_data_distribution(sampler, steps):
    """With the exact denoiser of N(0, 0.25) data every sampler must produce std 0.5 (DDIM, first
    order, needs ~200 steps for 1 %; second-order DPM-Solver++(2M) gets there in 20)."""
    s = NoiseSchedule("cosine")
    _, denoise = gaussian_denoiser(s)
    x = torch.randn(20_000, 1, 1, 1, generator=torch.Generator().manual_seed(0))
    out = sample(denoise, s, x, sampler, steps, eta=0.0, generator=torch.Generator().manual_seed(1))
    assert abs(out.std().item() - SIGMA_DATA) < 0.01
    assert abs(out.mean().item()) < 0.01


def test_trajectory_shapes_and_pixel_space():
    s = NoiseSchedule("linear")
    _, denoise = gaussian_denoiser(s)
    x = torch.randn(3, 1, 28, 28)
    out, traj = sample(denoise, s, x, "dpmpp2m", 5, return_trajectory=True)
    assert out.shape == x.shape and traj["x"].shape == (6, 3, 1, 28, 28) and traj["x0"].shape == (5, 3, 1, 28, 28)
    assert traj["t"] == [999, 799, 599, 399, 199, -1]


def test_guidance_combines_conditional_and_unconditional():
    s = NoiseSchedule("cosine")

    class Toy(torch.nn.Module):
        def forward(self, x, t, y):   # output = class index, so guidance is checkable by hand
            return y.float().view(-1, 1, 1, 1).expand_as(x)
    y = torch.tensor([2, 4])
    x = torch.zeros(2, 1, 2, 2)
    # out = uncond + w (cond - uncond) = 10 + 3 (y - 10); eps = sqrt(1-abar) x + sqrt(abar) out for v
    _, eps = GuidedDenoiser(Toy(), s, "v", y, guidance=3.0)(x, 500)
    expected = math.sqrt(s.abar_at(500)) * (10 + 3 * (y.float() - 10))
    torch.testing.assert_close(eps[:, 0, 0, 0], expected)
    _, eps_out = GuidedDenoiser(Toy(), s, "v", y, guidance=3.0, interval=(600, 900))(x, 500)
    torch.testing.assert_close(eps_out[:, 0, 0, 0], math.sqrt(s.abar_at(500)) * y.float())


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_min_snr_loss_matches_diffusers(prediction):
    """Min-SNR-gamma weighting against diffusers' training scripts (train_text_to_image.py):
    compute_snr, min(snr, gamma) / snr (epsilon) or / (snr + 1) (v_prediction), per-example mean."""
    import torch.nn.functional as F
    from diffusers.training_utils import compute_snr
    from fmnist_ldm.diffusion import training_loss
    ours = NoiseSchedule("cosine")
    ref = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                                  prediction_type="epsilon" if prediction == "eps" else "v_prediction")
    model = lambda x, t, y: 0.3 * x + 0.01 * t[:, None, None, None] / 1000   # any fixed function
    x0, y, gamma = torch.randn(64, 4, 7, 7), torch.randint(0, 10, (64,)), 5.0
    loss = training_loss(model, ours, x0, y, prediction, 0.0, 10, torch.Generator().manual_seed(1), gamma)
    g = torch.Generator().manual_seed(1)              # the same draws, in the same order
    t = torch.randint(0, 1000, (64,), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    x_t = ref.add_noise(x0, noise, t)
    target = noise if prediction == "eps" else ref.get_velocity(x0, noise, t)
    snr = compute_snr(ref, t)
    weights = torch.stack([snr, gamma * torch.ones_like(snr)], dim=1).min(dim=1)[0]
    weights = weights / snr if prediction == "eps" else weights / (snr + 1)
    expected = (F.mse_loss(model(x_t, t, y), target, reduction="none").mean(dim=(1, 2, 3)) * weights).mean()
    torch.testing.assert_close(loss, expected, rtol=1e-4, atol=1e-6)
    plain = training_loss(model, ours, x0, y, prediction, 0.0, 10, torch.Generator().manual_seed(1))
    assert not torch.isclose(plain, loss)              # the weighting changes the loss
