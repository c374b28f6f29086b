"""What students try next with a diffusion model: negative prompts, inpainting, interpolation
between noises, DDIM inversion (sampling.py and their Pipeline methods)."""
import re

import pytest
import torch

from fmnist_ldm.config import NUM_CLASSES
from fmnist_ldm.data import load_fashion_mnist, to_model_range
from fmnist_ldm.diffusion import NoiseSchedule
from fmnist_ldm.pipeline import Pipeline
from fmnist_ldm.samplers.ddim import ddim_invert
from fmnist_ldm.sampling import GuidedDenoiser, sample, slerp


class ClassModel(torch.nn.Module):
    """Output depends on x, t and the class, so guidance towards or away from one shows."""

    def forward(self, x, t, y):
        return 0.3 * x + 0.05 * y.view(-1, 1, 1, 1) - 1e-4 * t.view(-1, 1, 1, 1)


def test_a_negative_null_class_is_exactly_cfg():
    schedule, x = NoiseSchedule(), torch.randn(3, 4, 7, 7, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([1, 6, 8])
    plain = GuidedDenoiser(ClassModel(), schedule, "v", y, 5.0)(x, 500)
    null = GuidedDenoiser(ClassModel(), schedule, "v", y, 5.0, negative=torch.full_like(y, NUM_CLASSES))(x, 500)
    assert all(torch.equal(a, b) for a, b in zip(plain, null))
    away = GuidedDenoiser(ClassModel(), schedule, "v", y, 5.0, negative=torch.tensor([0, 0, 0]))(x, 500)
    assert not torch.equal(plain[0], away[0])
    # out = neg + w (cond - neg): with the negative the same as the class, guidance cancels out
    same = GuidedDenoiser(ClassModel(), schedule, "v", y, 5.0, negative=y)(x, 500)
    unguided = GuidedDenoiser(ClassModel(), schedule, "v", y, 1.0)(x, 500)
    torch.testing.assert_close(same, unguided)


def test_pipeline_negative(cheap_pipe):
    labels = [6, 6, 3]
    plain = cheap_pipe.generate(labels, steps=4, seed=2)
    assert torch.equal(plain.images, cheap_pipe.generate(labels, steps=4, seed=2, negative="none").images)
    away = cheap_pipe.generate(labels, steps=4, seed=2, negative="T-shirt", guidance_interval=None)
    per_image = cheap_pipe.generate(labels, steps=4, seed=2, negative=[0, 0, 0], guidance_interval=None)
    assert torch.equal(away.images, per_image.images) and not torch.equal(away.images, plain.images)
    for bad, msg in ((["sock"], "negative: unknown class 'sock'"), ([0, 1], "one class, or one per label (3), not 2"),
                     ([11], "negative must be classes 0-9")):
        with pytest.raises(ValueError, match=re.escape(msg)):
            cheap_pipe.generate(labels, steps=4, negative=bad)


def test_cli_negative(tiny_model_dir, tmp_path, capsys):
    from fmnist_ldm.cli import main
    out = tmp_path / "s.png"
    main(["sample", "--model-dir", str(tiny_model_dir), "--class", "Shirt", "--negative", "T-shirt",
          "--n-per-class", "2", "--steps", "3", "--guidance-interval", "none", "--out", str(out)])
    assert out.is_file() and "away from 'T-shirt/top'" in capsys.readouterr().out
    for argv, msg in ((["--negative", "sock"], "argument --negative: unknown class 'sock'"),
                      (["--negative", "Coat", "--sampler", "distilled"], "--negative does not apply to --sampler distilled")):
        with pytest.raises(SystemExit) as e:
            main(["sample", "--model-dir", str(tiny_model_dir), "--out", str(tmp_path / "t.png"), *argv])
        err = capsys.readouterr().err
        assert e.value.code == 2 and msg in err and err.count("\n") == 1


@pytest.mark.parametrize("sampler", ["ddim", "dpmpp2m", "ddpm"])
def test_inpainting_ends_with_the_kept_cells_equal_to_the_known_ones(sampler):
    schedule, gen = NoiseSchedule(), torch.Generator().manual_seed(1)
    known = torch.randn(2, 4, 7, 7, generator=gen)
    keep = torch.zeros(2, 4, 7, 7)
    keep[:, :, :3] = 1                                         # keep the top three rows of cells
    denoise = GuidedDenoiser(ClassModel(), schedule, "v", torch.tensor([2, 5]), 3.0)
    x = torch.randn(2, 4, 7, 7, generator=gen)
    out = sample(denoise, schedule, x, sampler, 6, generator=torch.Generator().manual_seed(2), known=known, keep=keep)
    assert torch.equal(out[keep == 1], known[keep == 1])
    plain = sample(denoise, schedule, x, sampler, 6, generator=torch.Generator().manual_seed(2))
    assert not torch.allclose(plain[keep == 1], known[keep == 1])       # the sampler alone does not keep them


def test_pipeline_inpaint_maps_the_pixel_mask_to_latent_cells(tiny_model_dir):
    pipe = Pipeline.from_pretrained(tiny_model_dir)
    images = torch.randint(0, 256, (2, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(28, 28, dtype=torch.bool)
    mask[:13] = True                            # pixel rows 0-12: latent rows 0-3 (row 3 holds pixels 12-15)
    s = pipe.inpaint(images, mask, [3, 4], sampler="ddim", steps=5, return_trajectory=True)
    final, known = s.trajectory["x"][-1], pipe.encode(to_model_range(images))
    assert torch.equal(final[:, :, 4:], known[:, :, 4:])                # cells with no masked pixel: kept
    assert not torch.allclose(final[:, :, :4], known[:, :, :4])         # cells with one: redrawn
    assert s.images.shape == (2, 28, 28)


def test_slerp_keeps_the_endpoints_and_the_norm():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 4, 7, 7, generator=gen), torch.randn(3, 4, 7, 7, generator=gen)
    b = b * (a.flatten(1).norm(dim=1) / b.flatten(1).norm(dim=1)).view(-1, 1, 1, 1)     # equal norms
    torch.testing.assert_close(slerp(a, b, 0.0), a)
    torch.testing.assert_close(slerp(a, b, 1.0), b)
    for w in (0.1, 0.25, 0.5, 0.9):
        torch.testing.assert_close(slerp(a, b, w).flatten(1).norm(dim=1), a.flatten(1).norm(dim=1))
    lerp_mid = (0.5 * a + 0.5 * b).flatten(1).norm(dim=1) / a.flatten(1).norm(dim=1)
    assert (lerp_mid < 0.8).all()                  # a straight line goes inside the sphere: ~1/sqrt(2)
    per_image = slerp(a, b, torch.tensor([0.0, 0.5, 1.0]))
    torch.testing.assert_close(per_image[0], a[0]), torch.testing.assert_close(per_image[2], b[2])
    torch.testing.assert_close(slerp(a, a.clone(), 0.3), a)                           # parallel: no NaN


def test_ddim_inversion_of_a_linear_model_is_close_to_exact():
    """The DDIM ODE of a linear denoiser changes slowly: inversion then sampling returns x0."""
    schedule, x0 = NoiseSchedule(), torch.randn(4, 4, 7, 7, generator=torch.Generator().manual_seed(3))
    denoise = GuidedDenoiser(ClassModel(), schedule, "v", torch.tensor([1, 2, 3, 4]))
    for steps, tol in ((50, 0.05), (200, 0.015)):
        noise = ddim_invert(denoise, schedule, x0, steps)
        back = sample(denoise, schedule, noise, "ddim", steps)
        assert (back - x0).pow(2).mean().sqrt() < tol * x0.std()


def test_ddim_inversion_of_real_images_with_the_shipped_model():
    """Measured on 16 test images: the latent comes back within 8.5 % of the latents' std at 50
    steps (5.5 % at 100); held here to 12 % at 50 steps. The images come back within a mean
    absolute error close to the VAE's own reconstruction error."""
    pipe = Pipeline.from_pretrained(device="cpu")
    x, y = load_fashion_mnist("test")
    images, labels = x[:16], y[:16]
    z0 = pipe.encode(to_model_range(images))
    noise = pipe.invert(images, labels, steps=50)
    assert noise.shape == z0.shape and 0.7 < noise.std() < 1.1          # it looks like noise
    s = pipe.generate(labels, sampler="ddim", steps=50, guidance=1.0, x_start=noise, return_trajectory=True)
    rel = ((s.trajectory["x"][-1] - z0).pow(2).mean().sqrt() / z0.std()).item()
    assert rel < 0.12, rel
    vae_only = (pipe.reconstruct(images).float() - images.float()).abs().mean()
    assert (s.images.float() - images.float()).abs().mean() < 1.5 * vae_only
