"""The device-dependent code, run on a device that is not the CPU, on a machine without a GPU.

`meta` tensors have shapes, dtypes and a device but no values, and every op that mixes them
with CPU tensors raises ("Tensor on device cpu is not on the expected device meta!"), as CUDA
does. A read of a device tensor's value (.item(), bool(), a copy to or from the CPU) is a point
where the CPU waits for a GPU: SyncCounter counts them (and stands in for the values), so that a
test can hold a loop to a fixed number of them, whatever its length, and check "CPU in, CPU
out". Meta kernels do not check a generator's device (a real GPU raises "Expected a 'cuda'
device type for generator"): GeneratorAudit does.

On a machine with a GPU, FMNIST_TEST_DEVICE=cuda runs every test on the real device as well
(benchmarks/gpu_check.py does): there the values are real and nothing is counted.
"""
import contextlib
import os
import traceback

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from fmnist_ldm import device as D
from fmnist_ldm import train as T
from fmnist_ldm import training_run as R
from fmnist_ldm.config import preset
from fmnist_ldm.data import LatentDataset
from fmnist_ldm.diffusion import NoiseSchedule, training_loss
from fmnist_ldm.samplers.consistency import Consistency
from fmnist_ldm.samplers.ddim import ddim_step
from fmnist_ldm.samplers.ddpm import ddpm_step
from fmnist_ldm.samplers.dpmpp2m import dpmpp2m_step
from fmnist_ldm.distill import Trajectories, distill_loss
from fmnist_ldm.metrics import Judge, judge_features
from fmnist_ldm.pipeline import Pipeline
from fmnist_ldm.sampling import GuidedDenoiser, sample
from fmnist_ldm.vae import DecoderGAN, PatchDiscriminator, Posterior, posteriors
from fmnist_ldm.weights import build_unet, build_vae

REAL = os.environ.get("FMNIST_TEST_DEVICE")
DEVICES = ["meta"] + ([REAL] if REAL and REAL != "meta" else [])
CPU = torch.device("cpu")


class SyncCounter(TorchDispatchMode):
    """Counts the host syncs that a real GPU would make on meta tensors: reads of a value (.item(),
    bool()) and copies between the device and the CPU. Meta tensors have no values: a read gets a
    stand-in (True, 1, 1.0) and a copy to the CPU zeros (True for flags), so the code under test goes on and the
    test says how often it read."""

    SCALAR = torch.ops.aten._local_scalar_dense.default

    def __init__(self):
        super().__init__()
        self.syncs = []

    def _note(self, what):
        frame = next((f for f in reversed(traceback.extract_stack()[:-3]) if "fmnist_ldm" in f.filename), None)
        self.syncs.append(f"{what} at {frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}" if frame else what)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is self.SCALAR and args[0].device.type == "meta":
            self._note("read")
            return True if args[0].dtype == torch.bool else 1 if not args[0].is_floating_point() else 1.0
        if func is torch.ops.aten._to_copy.default:
            src, dst = args[0], torch.device(kwargs.get("device") or args[0].device)
            if {src.device.type, dst.type} == {"meta", "cpu"}:
                self._note(f"copy {src.device.type} -> {dst.type}")
                if dst.type == "cpu":        # zeros, or True for flags such as "all finite"
                    dtype = kwargs.get("dtype") or src.dtype
                    return (torch.ones if dtype == torch.bool else torch.zeros)(src.shape, dtype=dtype)
        if func is torch.ops.aten.copy_.default and {args[0].device.type, args[1].device.type} == {"meta", "cpu"}:
            self._note(f"copy {args[1].device.type} -> {args[0].device.type}")
            if args[0].device.type == "cpu":
                return args[0].fill_(args[0].dtype == torch.bool)
        return func(*args, **kwargs)


class GeneratorAudit(TorchFunctionMode):
    """Fails a random draw whose generator belongs to another device than the draw. `tagged`: the
    device each stand-in generator plays (meta has no generators of its own)."""

    def __init__(self, tagged):
        super().__init__()
        self.tagged = tagged

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        gen = kwargs.get("generator")
        if isinstance(gen, torch.Generator):
            plays = self.tagged.get(id(gen), (gen, gen.device))[1]
            tensor = next((a for a in args if isinstance(a, torch.Tensor)), None)
            target = torch.device(kwargs.get("device") or (tensor.device if tensor is not None else "cpu"))
            assert plays.type == target.type, \
                f"{getattr(func, '__name__', func)} draws on {target} with a generator on {plays}"
        return func(*args, **kwargs)


@pytest.fixture(params=DEVICES)
def on_device(request, monkeypatch):
    """(device, harness): `with harness() as syncs:` runs its body on the device, under a fresh
    SyncCounter and GeneratorAudit on meta; syncs lists the host syncs counted (None on a real
    device, where nothing is counted)."""
    name, tagged = request.param, {}

    def stand_in_generator(device, seed):       # a CPU generator that plays one of `device`
        gen = torch.Generator().manual_seed(seed)
        tagged[id(gen)] = (gen, torch.device(device))     # held, so that its id is not reused
        return gen

    @contextlib.contextmanager
    def harness():
        if name == "meta":
            counter = SyncCounter()
            with counter, GeneratorAudit(tagged):
                yield counter.syncs
        else:
            with GeneratorAudit(tagged):
                yield None

    if name == "meta":
        monkeypatch.setattr(D, "DEVICE_TYPES", (*D.DEVICE_TYPES, "meta"))
        monkeypatch.setattr(R, "generator", stand_in_generator)     # the one fit's loop draws with
        return torch.device("meta"), harness
    try:
        return D.get_device(name), harness
    except D.DeviceError as e:
        pytest.skip(str(e))


@pytest.fixture
def cfg(tmp_path):
    return preset("fast", vae_channels=(8, 8, 16), unet_channels=(16, 32), out_dir=str(tmp_path / "run"),
                  warmup_steps=1, checkpoint_every=10_000)


def test_unet_forward(on_device, cfg):
    dev, harness = on_device
    with harness():
        unet = build_unet(cfg).to(dev)
        x, t, y = torch.randn(3, 4, 7, 7, device=dev), torch.tensor([0, 500, 999], device=dev), \
            torch.tensor([1, 10, 7], device=dev)
        with D.autocast(dev, cfg.bf16):
            out = unet(x, t, y)
        assert out.shape == (3, 4, 7, 7) and out.device.type == dev.type


def test_vae_discriminator_and_judge_forwards(on_device, cfg):
    dev, harness = on_device
    with harness():
        vae, disc, judge = build_vae(cfg).to(dev), PatchDiscriminator(16).to(dev), Judge().to(dev).eval()
        x = torch.rand(2, 1, 28, 28, device=dev) * 2 - 1
        recon, mean, logvar = vae(x, R.generator(dev, 0))
        assert recon.shape == x.shape and mean.shape == (2, 4, 7, 7) and recon.device.type == dev.type
        assert disc(x).shape == (2, 1, 7, 7)
        assert judge(x).shape == (2, 10) and judge.features(x).shape == (2, 256)
        feats = judge_features(judge, torch.zeros(5, 28, 28, dtype=torch.uint8))    # uint8 CPU in, CPU out
        assert feats.device == CPU and feats.dtype == torch.float64


def _same_syncs(harness, run, short=2, long=6):
    """run(steps) for two lengths, each in its own harness: as many host syncs for the long run as
    for the short one when nothing inside a step waits for the GPU (on a real device: runs once)."""
    with harness() as a:
        run(short)
    if a is None:
        return
    with harness() as b:
        run(long)
    assert len(a) == len(b), f"{len(b) - len(a)} more syncs for {long - short} more steps, among:\n" + \
        "\n".join(sorted(set(b)))


@pytest.mark.parametrize("stage", ["vae", "decoder_gan", "unet", "judge"])
def test_one_training_step_of_each_stage_through_fit(on_device, cfg, stage):
    """Optimiser steps of each stage through fit, with EMA: no device mix, and on meta no more
    host syncs for 6 steps than for 2 (losses are read at the end, the data order once an epoch)."""
    dev, harness = on_device
    n, b = 24, 4

    def run(steps):
        images = torch.rand(n, 1, 28, 28) * 2 - 1
        if stage == "vae":
            model = build_vae(cfg, stage="vae")
            loss = T.vae_loss(cfg, model, images.to(dev))
        elif stage == "decoder_gan":
            model = DecoderGAN(build_vae(cfg).decoder, PatchDiscriminator(8))
            posterior = Posterior(torch.randn(n, 4, 7, 7), torch.randn(n, 4, 7, 7)).to(dev)
            loss = T.decoder_gan_loss(cfg, model, images.to(dev), posterior)
        elif stage == "unet":
            model = build_unet(cfg)
            data = LatentDataset(torch.randn(n, 4, 7, 7), torch.rand(n, 4, 7, 7), torch.randint(0, 10, (n,)), 1.3)
            loss = T.unet_loss(cfg, model, data.to(dev))
        else:
            model, x, labels = Judge(), images.to(dev), torch.randint(0, 10, (n,)).to(dev)
            loss = lambda idx, gen: torch.nn.functional.cross_entropy(model(x[idx]).float(), labels[idx])
        out, hist = T.fit(model, loss, n, b, 1e-3, steps=steps, ema_decay=0.99, bf16=cfg.bf16, device=dev,
                          warmup_steps=1)
        assert next(out.parameters()).device.type == dev.type and len(hist["loss"]) == steps

    _same_syncs(harness, run)


def test_min_snr_weights_live_on_the_device(on_device, cfg):
    dev, harness = on_device
    with harness():
        unet, schedule = build_unet(cfg).to(dev), NoiseSchedule()
        x0, y = torch.randn(4, 4, 7, 7, device=dev), torch.tensor([1, 2, 3, 10], device=dev)
        loss = training_loss(unet, schedule, x0, y, "v", 0.1, 10, R.generator(dev, 0), min_snr_gamma=5.0)
        assert loss.shape == () and loss.device.type == dev.type


def test_distillation_loss(on_device, cfg):
    dev, harness = on_device
    with harness() as syncs:
        student, schedule = build_unet(cfg).to(dev), NoiseSchedule()
        runs = Trajectories(torch.randn(6, 5, 4, 7, 7).half(), torch.arange(6) % 11, [999, 749, 499, 249, -1]).to(dev)
        loss_fn, idx = distill_loss(student, schedule, "v", runs), torch.tensor([0, 2, 5]).to(dev)
        loss_fn(idx, R.generator(dev, 0))
        before = len(syncs) if syncs is not None else 0
        for step in range(3):
            loss = loss_fn(idx, R.generator(dev, step))
            loss.backward()
        assert loss.shape == () and loss.device.type == dev.type
        if syncs is not None:
            assert syncs[before:] == [], syncs[before:]


def test_sampler_steps_and_the_guided_denoiser(on_device, cfg):
    """Each sampler step and the guided denoiser (guided and not) on the device, and whole runs:
    no device mix, and no host sync per step."""
    dev, harness = on_device
    with harness() as syncs:
        unet, schedule = build_unet(cfg).to(dev), NoiseSchedule()
        y, x = torch.tensor([3, 10]).to(dev), torch.randn(2, 4, 7, 7).to(dev)
        GuidedDenoiser(unet, schedule, "v", y, 5.0)(x, 999)            # tables to the device once
        before = len(syncs) if syncs is not None else 0
        for guidance, interval in ((1.0, None), (5.0, None), (5.0, (300, 700))):
            denoise = GuidedDenoiser(unet, schedule, "v", y, guidance, interval, conditional=True)
            x0, eps = denoise(x, 499)
            assert x0.shape == eps.shape == x.shape and x0.device.type == dev.type
        noise = D.PerImageNoise(0, range(2))
        assert ddim_step(schedule, x, x0, eps, 499, 449, 0.0, None).device.type == dev.type
        x_next, prev = dpmpp2m_step(schedule, x, x0, 499, 449, None)
        assert dpmpp2m_step(schedule, x_next, x0, 449, 399, prev)[0].device.type == dev.type
        for sampler in ("ddim", "dpmpp2m"):
            assert sample(denoise, schedule, x, sampler, 6).device.type == dev.type
        if syncs is not None:
            assert syncs[before:] == [], syncs[before:]
        # DDPM, DDIM with eta > 0 and the distilled sampler add fresh noise at every step, drawn
        # on the CPU per image (so a seed gives the same picture on every device and batch size)
        # and moved: one copy a step, the price of that reproducibility
        assert ddpm_step(schedule, x, x0, 499, noise).device.type == dev.type
        assert ddim_step(schedule, x, x0, eps, 499, 449, 1.0, noise).device.type == dev.type
        for run in (lambda: sample(denoise, schedule, x, "ddim", 5, 1.0, t_start=4, generator=noise),
                    lambda: sample(denoise, schedule, x, "ddpm", t_start=4, generator=noise),
                    lambda: sample(denoise, schedule, x, Consistency(schedule, noise, [999, 749, 499, 249, 99, 0, -1]), 6)):
            before = len(syncs) if syncs is not None else 0
            assert run().device.type == dev.type
            if syncs is not None:
                assert len(syncs[before:]) in (5, 4) and all("cpu -> meta" in s for s in syncs[before:]), syncs[before:]


def test_pipeline_is_cpu_in_cpu_out(on_device, cfg):
    """encode, decode and generate take CPU tensors and give CPU tensors, with the models on the
    device: the notebooks make only CPU tensors (tests/test_notebook_devices.py) and never mix.
    generate reads the device once per batch (the finite check and the images), not per step."""
    dev, harness = on_device

    def run(steps):
        pipe = Pipeline(build_unet(cfg), cfg, build_vae(cfg), device=dev)
        images = torch.rand(3, 1, 28, 28) * 2 - 1
        z = pipe.encode(images)
        assert z.device == CPU and z.shape == (3, 4, 7, 7)
        assert pipe.decode(z).device == CPU
        s = pipe.generate([1, 10, 7], steps=steps, seed=1, batch_size=2)
        assert s.images.device == CPU and s.images.shape == (3, 28, 28) and s.steps == steps
        edit = pipe.generate([2], sampler="ddim", steps=2, t_start=400, x_start=z[:1])
        assert edit.images.device == CPU

    _same_syncs(harness, run, 3, 9)


def test_posteriors_returns_cpu_tensors(on_device, cfg):
    dev, harness = on_device
    with harness():
        vae = build_vae(cfg).to(dev)
        mean, logvar = posteriors(vae, torch.rand(5, 1, 28, 28) * 2 - 1, bf16=cfg.bf16, batch=2)
        assert mean.device == CPU and logvar.device == CPU and mean.shape == (5, 4, 7, 7)
