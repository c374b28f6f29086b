"""Checks for the notebooks' exercises: one `check_<name>(student_fn)` per exercise.

Each check calls the student's function on a few fixed inputs and compares the result with the
library's own implementation, the one the rest of the course runs (torch.testing.assert_close).
It prints one line and returns True when they agree. When they do not, it returns False and
prints a hint: the result is compared with the usual mistakes (a missing square root, a sign,
sin and cos swapped, an off-by-one t) and the matching one is named. A student function that
raises is a wrong answer with its error shown, never a crash of the checker.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from .diffusion import NoiseSchedule, ddim_step

__all__ = ["check_to_model_range", "check_class_means", "check_reparameterize", "check_kl",
           "check_timestep_embedding", "check_attention", "check_cosine_abar", "check_q_sample",
           "check_v_to_x0_eps", "check_cfg", "check_ddim_step", "check_majority_cells", "check_frechet_distance",
           "check_precision", "check_renoise", "check_distill_loss"]


def _close(a, b, rtol=1e-4, atol=1e-5) -> bool:
    try:
        torch.testing.assert_close(torch.as_tensor(a).double(), torch.as_tensor(b).double(), rtol=rtol, atol=atol)
        return True
    except (AssertionError, TypeError, ValueError, RuntimeError):
        return False


def _grade(title: str, attempt: Callable, expected, mistakes=(), rtol=1e-4, atol=1e-5) -> bool:
    """Run attempt(); compare with expected; name the first mistake whose result it matches.
    mistakes: (what that mistake computes, hint) pairs."""
    try:
        got = attempt()
    except NotImplementedError:
        print(f"✗ {title}: not written yet (the function raises NotImplementedError).")
        return False
    except Exception as e:                       # the student's error, shown, not the checker's
        print(f"✗ {title}: your function raised {type(e).__name__}: {str(e)[:300]}")
        return False
    if got is None or got is Ellipsis:
        print(f"✗ {title}: your function returned {got!r}; return the result.")
        return False
    if isinstance(expected, tuple):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            print(f"✗ {title}: return {len(expected)} values as a tuple, not {type(got).__name__}.")
            return False
        pairs = list(zip(got, expected))
    else:
        pairs = [(got, expected)]
    try:
        pairs = [(torch.as_tensor(g), torch.as_tensor(e)) for g, e in pairs]
    except Exception as e:
        print(f"✗ {title}: return tensors; got {type(got).__name__} ({str(e)[:200]}).")
        return False
    if all(_close(g, e, rtol, atol) for g, e in pairs):
        print(f"✓ {title}: matches the library.")
        return True
    for wrong, hint in mistakes:                 # a known mistake, whatever its shape
        wrong = wrong if isinstance(wrong, tuple) else (wrong,)
        if len(wrong) == len(pairs) and all(_close(g, w, rtol, atol) for (g, _), w in zip(pairs, wrong)):
            print(f"✗ {title}: {hint}")
            return False
    for g, e in pairs:
        if g.shape != e.shape:
            print(f"✗ {title}: shape {tuple(g.shape)}, expected {tuple(e.shape)}.")
            return False
    worst = max(float((g.double() - e.double()).abs().max()) for g, e in pairs)
    print(f"✗ {title}: the shape is right but the values differ (largest difference {worst:.3g}). "
          "Compare your line with the equation above it.")
    return False


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --- 01: data ---------------------------------------------------------------------------------

def check_to_model_range(fn) -> bool:
    """fn(images_uint8 [N,28,28]) -> float [N,1,28,28] in [-1, 1] (0 -> -1, 255 -> 1)."""
    from .data import to_model_range
    x = torch.randint(0, 256, (5, 28, 28), generator=_gen(), dtype=torch.uint8)
    x[0, 0, 0], x[0, 0, 1] = 0, 255
    f = x.float()
    return _grade("to_model_range", lambda: fn(x.clone()), to_model_range(x), [
        ((f / 255)[:, None], "that is [0, 1]; the models see [-1, 1]: x / 127.5 - 1."),
        ((f / 127.5 - 1), "the values are right, but the models take a channel axis: [N, 1, 28, 28] (unsqueeze(1))."),
        ((1 - f / 127.5)[:, None], "the sign is flipped: 0 must map to -1 and 255 to +1."),
    ])


def check_class_means(fn) -> bool:
    """fn(images_uint8 [N,28,28], labels [N]) -> float [10,28,28], the mean image of each class."""
    g = _gen(1)
    x = torch.randint(0, 256, (200, 28, 28), generator=g, dtype=torch.uint8)
    y = torch.arange(200) % 10
    expected = torch.stack([x[y == c].float().mean(0) for c in range(10)])
    return _grade("class means", lambda: fn(x.clone(), y.clone()), expected, [
        (expected / 255, "scaled to [0, 1]: keep the pixel values 0..255, as the images are."),
        (x.float().mean(0).expand(10, 28, 28), "every class got the mean of all images: select each class with images[labels == c]."),
    ])


# --- 02: the VAE ------------------------------------------------------------------------------

def check_reparameterize(fn) -> bool:
    """fn(mean, logvar, eps) -> z = mean + sigma * eps, sigma = exp(logvar / 2)."""
    g = _gen(2)
    mean, logvar, eps = (torch.randn(3, 4, 7, 7, generator=g) for _ in range(3))
    return _grade("reparameterisation", lambda: fn(mean.clone(), logvar.clone(), eps.clone()),
                  mean + torch.exp(0.5 * logvar) * eps, [
        (mean + torch.exp(logvar) * eps, "exp(logvar) is the variance sigma²; scale eps by sigma = exp(logvar / 2)."),
        (mean + logvar * eps, "logvar is log sigma², not sigma: sigma = exp(logvar / 2)."),
        (mean + torch.exp(-0.5 * logvar) * eps, "exp(-logvar / 2) is 1 / sigma: the sign in the exponent is flipped."),
        (mean + torch.exp(0.5 * logvar), "the noise is missing: z = mean + sigma * eps."),
        (torch.exp(0.5 * logvar) * eps, "the mean is missing: z = mean + sigma * eps."),
    ])


def check_kl(fn) -> bool:
    """fn(mean, logvar) -> KL(N(mean, exp(logvar)) || N(0, I)), summed over latent entries,
    averaged over the batch: the VAE's KL term (vae.VAE.kl)."""
    from .vae import VAE
    g = _gen(3)
    mean, logvar = torch.randn(6, 4, 7, 7, generator=g), 0.5 * torch.randn(6, 4, 7, 7, generator=g)
    per_entry = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar)
    return _grade("KL term", lambda: fn(mean.clone(), logvar.clone()), VAE.kl(mean, logvar), [
        (2 * per_entry.flatten(1).sum(1).mean(), "twice the KL: the 1/2 in front is missing."),
        (per_entry.mean(), "averaged over every entry: sum over the latent entries of an image, average over images."),
        (per_entry.sum(), "summed over the batch too: average over images (.mean() after the per-image sum)."),
        (0.5 * (mean.pow(2) + logvar.exp() - 1 + logvar).flatten(1).sum(1).mean(), "the sign of log sigma² is flipped: ... - 1 - logvar."),
        (0.5 * (mean.pow(2) + logvar - 1 - logvar.exp()).flatten(1).sum(1).mean(), "logvar and exp(logvar) are swapped: sigma² = exp(logvar)."),
    ])


# --- 03: the UNet -----------------------------------------------------------------------------

def check_timestep_embedding(fn) -> bool:
    """fn(t [N] int, dim) -> [N, dim]: [cos | sin] halves of t times frequencies
    exp(-ln(10000) * i / half), i = 0..half-1 (unet.timestep_embedding)."""
    from .unet import timestep_embedding
    t, dim = torch.tensor([0, 1, 10, 250, 999]), 32
    half = dim // 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(half) / half)
    args = t.float()[:, None] * freqs
    slow = t.float()[:, None] * torch.exp(-math.log(10_000) * torch.arange(half) / dim)   # exponent over dim
    return _grade("timestep embedding", lambda: fn(t.clone(), dim), timestep_embedding(t, dim), [
        (torch.cat([args.sin(), args.cos()], -1), "sin and cos are swapped: [cos | sin]."),
        (torch.cat([slow.cos(), slow.sin()], -1),
         "the exponent divides by dim; it divides by half = dim // 2, so the slowest frequency is 1/10000."),
        (torch.stack([args.cos(), args.sin()], -1).flatten(1), "cos and sin are interleaved; the library puts all cosines first, then all sines."),
    ])


def check_attention(fn) -> bool:
    """fn(q [B,H,N,d], k [B,H,M,d], v [B,H,M,d]) -> softmax(q k^T / sqrt(d)) v, [B,H,N,d]."""
    import torch.nn.functional as F
    g = _gen(4)
    q, k, v = torch.randn(2, 4, 16, 8, generator=g), torch.randn(2, 4, 4, 8, generator=g), torch.randn(2, 4, 4, 8, generator=g)
    s = q @ k.transpose(-1, -2)
    return _grade("attention", lambda: fn(q.clone(), k.clone(), v.clone()), F.scaled_dot_product_attention(q, k, v), [
        (torch.softmax(s, -1) @ v, "the scores are not scaled: divide q k^T by sqrt(d), d = q.shape[-1]."),
        (torch.softmax(s / 8, -1) @ v, "scaled by d; the scale is sqrt(d)."),
        (torch.softmax(s / math.sqrt(8), -2) @ v, "softmax over the wrong axis: each query's weights over the keys sum to 1 (dim=-1)."),
    ])


# --- 04: diffusion ----------------------------------------------------------------------------

def check_cosine_abar(fn) -> bool:
    """fn(T) -> abar_t for t = 0..T-1 of the cosine schedule (Nichol & Dhariwal 2021, eq. 17):
    abar_t = f(t + 1) / f(0), f(t) = cos((t / T + s) / (1 + s) * pi / 2)^2, s = 0.008
    (t = 0 is the first noising step, so it already has abar < 1)."""
    T = 1000
    ref = NoiseSchedule("cosine", T).alphas_cumprod
    f = lambda t: torch.cos((t / T + 0.008) / 1.008 * math.pi / 2) ** 2
    t = torch.arange(T, dtype=torch.float64)
    return _grade("cosine schedule", lambda: fn(T), ref, [
        (f(t) / f(torch.tensor(0.0)), "off by one step: abar at t = 0 is f(1) / f(0), after the first noising step (use t + 1)."),
        (f(t + 1), "not normalised: divide by f(0), so that abar starts just below 1."),
        (torch.cos((t + 1) / T * math.pi / 2) ** 2, "the offset s = 0.008 is missing (it keeps the first betas from being tiny)."),
        (torch.cos(((t + 1) / T + 0.008) / 1.008 * math.pi / 2) / math.cos(0.008 / 1.008 * math.pi / 2),
         "the cosine is not squared."),
    ], rtol=1e-4, atol=1e-6)


def check_q_sample(fn) -> bool:
    """fn(x0, t [N] int, noise, abar [T]) -> x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise,
    abar_t picked per image and broadcast over its C x H x W."""
    sched = NoiseSchedule("cosine", 1000)
    g = _gen(5)
    x0, noise = torch.randn(4, 4, 7, 7, generator=g), torch.randn(4, 4, 7, 7, generator=g)
    t = torch.tensor([0, 300, 700, 999])
    a = sched.abar(t, x0)                                   # abar_t per image, [4, 1, 1, 1]
    return _grade("q_sample", lambda: fn(x0.clone(), t.clone(), noise.clone(), sched.alphas_cumprod.float().clone()),
                  sched.q_sample(x0, t, noise), [
        (a * x0 + (1 - a) * noise, "the square roots are missing: sqrt(abar_t) x0 + sqrt(1 - abar_t) noise."),
        (a.sqrt() * noise + (1 - a).sqrt() * x0, "x0 and the noise are swapped: the signal gets sqrt(abar_t)."),
        (a.sqrt() * x0 + a.sqrt() * noise, "the noise is scaled by sqrt(1 - abar_t), not sqrt(abar_t)."),
    ])


def check_v_to_x0_eps(fn) -> bool:
    """fn(v, x_t, abar_t) -> (x0, eps) with alpha = sqrt(abar_t), sigma = sqrt(1 - abar_t):
    x0 = alpha x_t - sigma v, eps = sigma x_t + alpha v (invert v = alpha eps - sigma x0)."""
    sched = NoiseSchedule("cosine", 1000)
    g = _gen(6)
    v, x_t = torch.randn(4, 4, 7, 7, generator=g), torch.randn(4, 4, 7, 7, generator=g)
    t = torch.tensor([10, 300, 700, 990])
    a = sched.abar(t, v)
    al, si = a.sqrt(), (1 - a).sqrt()
    return _grade("v -> (x0, eps)", lambda: fn(v.clone(), x_t.clone(), a.clone()), sched.split(v, x_t, t, "v"), [
        ((si * x_t + al * v, al * x_t - si * v), "x0 and eps are swapped: return (x0, eps)."),
        ((al * x_t + si * v, si * x_t - al * v), "the signs of the v terms are flipped: x0 = alpha x_t - sigma v."),
        ((a * x_t - (1 - a) * v, (1 - a) * x_t + a * v), "use alpha = sqrt(abar_t) and sigma = sqrt(1 - abar_t), not abar_t itself."),
    ])


# --- 05: sampling -----------------------------------------------------------------------------

def check_cfg(fn) -> bool:
    """fn(out_uncond, out_cond, w) -> out_uncond + w (out_cond - out_uncond) (Ho & Salimans 2022)."""
    g = _gen(7)
    u, c = torch.randn(3, 4, 7, 7, generator=g), torch.randn(3, 4, 7, 7, generator=g)
    w = 3.0
    return _grade("classifier-free guidance", lambda: fn(u.clone(), c.clone(), w), u + w * (c - u), [
        (c + w * (c - u), "start from the unconditional output: uncond + w (cond - uncond), so that w = 1 gives cond."),
        (u + w * (u - c), "the direction is flipped: move towards the conditional output, (cond - uncond)."),
        (w * c, "scaling the conditional output is not guidance: uncond + w (cond - uncond)."),
        (u + (w - 1) * (c - u), "this is w - 1: with this convention w = 1 must give the plain conditional output."),
    ])


def check_ddim_step(fn) -> bool:
    """fn(x0_hat, eps_hat, abar_next) -> the deterministic DDIM step (eta = 0, Song et al. 2021
    eq. 12): sqrt(abar_next) x0_hat + sqrt(1 - abar_next) eps_hat."""
    sched = NoiseSchedule("cosine", 1000)
    g = _gen(8)
    x, x0, eps = (torch.randn(2, 4, 7, 7, generator=g) for _ in range(3))
    t, t_next = 500, 450
    an = sched.abar_at(t_next)
    expected = ddim_step(sched, x, x0, eps, t, t_next, 0.0, None)
    return _grade("DDIM step", lambda: fn(x0.clone(), eps.clone(), an), expected, [
        (an * x0 + (1 - an) * eps, "the square roots are missing: sqrt(abar_next) x0 + sqrt(1 - abar_next) eps."),
        (math.sqrt(an) * eps + math.sqrt(1 - an) * x0, "x0 and eps are swapped: the clean guess gets sqrt(abar_next)."),
        (math.sqrt(sched.abar_at(t)) * x0 + math.sqrt(1 - sched.abar_at(t)) * eps,
         "that is the current level: the step lands on abar_next."),
    ])


def check_majority_cells(fn) -> bool:
    """fn(mask [N, 28, 28] bool, True = redraw) -> float [N, 1, 7, 7]: 1 for the latent cells (4 x 4
    pixels each) of which more than half the pixels are masked, 0 elsewhere (the notebook's
    inpainting redraws a cell if any of its pixels is masked)."""
    g = _gen(9)
    mask = torch.rand(3, 28, 28, generator=g) < torch.tensor([0.2, 0.5, 0.8]).view(3, 1, 1)
    mask[0, :8, :8] = True                                    # whole cells, and cells exactly half masked
    mask[1, :, :2] = True
    mask[1, :, 2:4] = False
    share = torch.nn.functional.avg_pool2d(mask[:, None].float(), 4)
    return _grade("majority cell mask", lambda: fn(mask.clone()), (share > 0.5).float(), [
        ((share > 0).float(), "that is the notebook's 'any pixel' rule: redraw a cell when more than half of its 16 pixels are masked."),
        ((share >= 0.5).float(), "a cell with exactly half its pixels masked (8 of 16) is not a majority: use > 0.5."),
        ((share == 1).float(), "that redraws only fully masked cells: more than half is enough."),
        ((share <= 0.5).float(), "that is the cells to keep: return 1 where the cell is redrawn."),
        ((share > 0.5).float()[:, 0], "keep the channel axis: [N, 1, 7, 7], so that it broadcasts over the 4 latent channels."),
    ])


# --- 06: evaluation ---------------------------------------------------------------------------

def check_frechet_distance(fn) -> bool:
    """fn(mu1, sigma1, mu2, sigma2) -> ||mu1 - mu2||² + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)),
    float64 (what torchmetrics computes for FID)."""
    from torchmetrics.image.fid import _compute_fid
    g = _gen(9)
    a, b = torch.randn(200, 8, generator=g, dtype=torch.float64), 1.3 * torch.randn(200, 8, generator=g, dtype=torch.float64) + 0.2
    mu1, mu2, s1, s2 = a.mean(0), b.mean(0), torch.cov(a.T), torch.cov(b.T)
    root = torch.linalg.eigvals(s1 @ s2).sqrt().real.sum()
    mean_term, tr = (mu1 - mu2).pow(2).sum(), torch.trace(s1) + torch.trace(s2)
    return _grade("Fréchet distance", lambda: fn(mu1.clone(), s1.clone(), mu2.clone(), s2.clone()),
                  _compute_fid(mu1, s1, mu2, s2), [
        ((mu1 - mu2).norm() + tr - 2 * root, "the mean term is the squared distance, ||mu1 - mu2||²."),
        (mean_term + tr - root, "the matrix square root term is counted twice: - 2 Tr((sigma1 sigma2)^(1/2))."),
        (mean_term + tr - 2 * torch.trace(s1 @ s2), "the square root of sigma1 sigma2 is missing (its eigenvalues' square roots)."),
        (mean_term, "the covariance term is missing."),
    ], rtol=1e-6, atol=1e-6)


def check_precision(fn) -> bool:
    """fn(real [N,D], fake [M,D], k) -> precision (Kynkaanniemi et al. 2019): the share of fake
    points within the k-th-nearest-neighbour radius of at least one real point (metrics.precision_recall)."""
    from .metrics import precision_recall
    g = _gen(10)
    real, fake = torch.randn(300, 6, generator=g), 1.4 * torch.randn(200, 6, generator=g) + 0.3
    d_rr = torch.cdist(real, real)
    d = torch.cdist(fake, real)
    wrong_k = (d <= d_rr.kthvalue(5, dim=1).values[None]).any(1).float().mean()
    return _grade("precision", lambda: fn(real.clone(), fake.clone(), 5),
                  torch.tensor(precision_recall(real, fake, 5)["precision"]), [
        (wrong_k, "each real point is its own nearest neighbour (distance 0): the k-th neighbour is kthvalue(k + 1)."),
        (torch.tensor(precision_recall(real, fake, 5)["recall"]), "that is recall (real points inside fake balls); precision asks which fakes fall in real balls."),
    ], rtol=0, atol=1e-9)


# --- 07: distillation -------------------------------------------------------------------------

def check_renoise(fn) -> bool:
    """fn(z0_hat, abar_t, noise) -> sqrt(abar_t) z0_hat + sqrt(1 - abar_t) noise: the multistep
    consistency sampler's way back up to timestep t (Song et al. 2023, Algorithm 1; distill.py eq. 2)."""
    from .sampling import consistency_sample
    sched = NoiseSchedule("cosine", 1000)
    g = _gen(11)
    z0, noise = torch.randn(2, 4, 7, 7, generator=g), torch.randn(2, 4, 7, 7, generator=g)
    a = sched.abar_at(499)
    # the library's sampler, asked for two steps whose first guess is z0: its second state is the re-noised z0
    _, run = consistency_sample(lambda x, t: (z0, None), sched, torch.zeros_like(z0), [999, 499],
                                lambda like: noise, return_trajectory=True)
    return _grade("re-noising", lambda: fn(z0.clone(), a, noise.clone()), run["x"][1], [
        (a * z0 + (1 - a) * noise, "the square roots are missing: sqrt(abar_t) z0 + sqrt(1 - abar_t) noise."),
        (math.sqrt(a) * noise + math.sqrt(1 - a) * z0, "z0 and the noise are swapped: the guess gets sqrt(abar_t)."),
        (z0 + math.sqrt(1 - a) * noise, "the guess must be scaled down too, by sqrt(abar_t), so that z_t has unit variance."),
    ])


def check_distill_loss(fn) -> bool:
    """fn(v_student, z_t, abar_t, z_end) -> mean squared error between the student's z0, from its v
    output (z0 = sqrt(abar) z_t - sqrt(1 - abar) v), and where the teacher's run ended (distill.py eq. 1)."""
    g = _gen(12)
    v, z, end = (torch.randn(3, 4, 7, 7, generator=g) for _ in range(3))
    a = torch.tensor([0.05, 0.4, 0.9]).view(-1, 1, 1, 1)
    z0 = a.sqrt() * z - (1 - a).sqrt() * v
    mse = lambda x: (x - end).pow(2).mean()
    return _grade("distillation loss", lambda: fn(v.clone(), z.clone(), a.clone(), end.clone()), mse(z0), [
        (mse(v), "the student outputs v, not z0: turn it into z0 = sqrt(abar) z_t - sqrt(1 - abar) v first."),
        (mse((1 - a).sqrt() * z + a.sqrt() * v), "that is eps from v; the teacher's end point is a clean z0."),
        ((z0 - end).pow(2).sum(), "average the squared error (mean), do not sum it."),
        (mse(a * z - (1 - a) * v), "the square roots are missing: sqrt(abar) z_t - sqrt(1 - abar) v."),
    ])
