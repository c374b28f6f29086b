"""Checks that can fail: the tiny test model really depends on its inputs, a trajectory's last
state is recomputed independently, and the UNet passes a run reports are the ones it made."""
import pytest
import torch

from fmnist_ldm.data import to_uint8
from fmnist_ldm.sampling import GuidedDenoiser
from fmnist_ldm.pipeline import Pipeline


@pytest.fixture
def pipe(tiny_model_dir):
    return Pipeline.from_pretrained(tiny_model_dir)


def test_tiny_model_output_depends_on_x_t_and_class(pipe):
    """A freshly built UNet's output layer is zero, so it would say 0 whatever it is given and
    the CLI, viz and seed tests would never exercise x, t, the class or guidance."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, *pipe.shape, generator=g)
    t, y = torch.tensor([500, 500]), torch.tensor([3, 3])
    with torch.no_grad():
        out = pipe.unet(x, t, y)
        assert out.abs().mean() > 1e-3 and torch.isfinite(out).all()
        assert not torch.allclose(out, pipe.unet(x + 0.5, t, y))
        assert not torch.allclose(out, pipe.unet(x, torch.tensor([100, 100]), y))
        assert not torch.allclose(out, pipe.unet(x, t, torch.tensor([7, 7])))


def test_guidance_changes_the_images(pipe):
    plain = pipe.generate([3, 7], steps=4, guidance=1.0, seed=1).images
    guided = pipe.generate([3, 7], steps=4, guidance=5.0, guidance_interval=None, seed=1).images
    other_class = pipe.generate([4, 8], steps=4, guidance=1.0, seed=1).images
    assert not torch.equal(plain, guided) and not torch.equal(plain, other_class)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpmpp2m"])
def test_trajectory_ends_where_an_independent_last_step_lands(pipe, sampler):
    """Every sampler's last step (to t = -1) lands on the model's clean prediction x0_hat at the
    state before it. Recompute that step with a fresh denoiser, and check that the decoded last
    state is what `generate` returns, with and without recording the trajectory. Batch size 2 of
    3 images also checks that the trajectories of the batches are joined in order. (From t = 99,
    so that DDPM, which takes every timestep, takes 100.)"""
    labels = [1, 5, 10]
    kw = dict(sampler=sampler, steps=5, guidance=3.0, guidance_interval=None, t_start=99, seed=2, batch_size=2)
    s = pipe.generate(labels, return_trajectory=True, **kw)
    x, ts = s.trajectory["x"], s.trajectory["t"]
    assert ts[-1] == -1 and x.shape[:2] == (len(ts), 3)
    denoise = GuidedDenoiser(pipe._model, pipe.schedule, pipe.cfg.prediction, torch.tensor(labels), 3.0)
    x0_hat, _ = denoise(x[-2], ts[-2])
    torch.testing.assert_close(x[-1], x0_hat, rtol=1e-4, atol=1e-4)
    assert torch.equal(to_uint8(pipe.decode(x[-1])), s.images)
    assert torch.equal(pipe.generate(labels, **kw).images, s.images)


def test_samples_count_the_steps_and_unet_passes_that_ran(pipe):
    """Counted where the UNet is called, so they cannot drift from what ran: a guided step runs
    the UNet on a doubled batch (conditional and unconditional), i.e. twice per image."""
    rows, unet = [], pipe.unet

    class Spy(torch.nn.Module):
        def forward(self, x, t, y):
            rows.append(len(x))
            return unet(x, t, y)
    pipe.unet = Spy()
    s = pipe.generate([3, 7, 1], batch_size=2)          # the defaults: 20 steps, 8 of them guided
    assert (s.steps, s.unet_passes) == (20, 28) and sum(rows) == 3 * 28
    assert (pipe.generate([10, 10]).steps, pipe.generate([10, 10]).unet_passes) == (20, 20)  # nothing to guide
    assert pipe.generate([3], guidance=1.0).unet_passes == 20
    assert pipe.generate([3], steps=7, guidance_interval=None).unet_passes == 14


def test_ddpm_counts_every_timestep(cheap_pipe):
    s = cheap_pipe.generate([3], sampler="ddpm", steps=20)         # DDPM ignores steps
    assert (s.steps, s.unet_passes) == (1000, 1401)                # guided for t in [300, 700]
    s = cheap_pipe.generate([3], sampler="ddpm", t_start=99, guidance_interval=(50, 80))
    assert (s.steps, s.unet_passes) == (100, 131)
