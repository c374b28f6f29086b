"""One object that loads trained weights and turns (classes, sampler, steps, guidance, seed)
into images, optionally with the whole denoising trajectory. The CLI, the notebooks, the
benchmarks and the tests all sample through it."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import autocast
from .data import to_model_range, to_uint8
from .diffusion import NoiseSchedule, guided_denoiser, sample
from .weights import load_model

MODEL_DIR = Path(__file__).resolve().parent.parent / "model"

# The settings we recommend (measured in benchmarks/; see the README's results table).
# guidance 5 only for t in [300, 700]: >= 97 % class accuracy at the best FID we measured for it
# (guiding above t = 800 or below 200 costs FID), and 8 of the 20 steps run the UNet twice, not 12.
DEFAULTS = dict(sampler="dpmpp2m", steps=20, guidance=5.0, guidance_interval=(300, 700))


@dataclass
class Samples:
    images: torch.Tensor           # uint8 [N, 28, 28]
    labels: torch.Tensor           # int64 [N]; 10 = unconditional
    trajectory: dict | None = None  # "t", "x" (states) and "x0" (predictions), decoded on request
    steps: int | None = None        # sampler steps each image took, counted as the run went
    unet_passes: float | None = None  # UNet evaluations per image, counted; a guided step is 2


def _count_unet_passes(generate):
    """Around Pipeline.generate: log every UNet call (its timestep and batch rows, see _model) and
    put on the returned Samples what ran, counted rather than computed from the arguments, so
    that the numbers cannot drift from the samplers: DDPM takes every timestep whatever `steps`
    says, and a guided step runs the UNet on a doubled batch (conditional and unconditional)."""
    @functools.wraps(generate)
    def counted(self, labels, *args, **kwargs):
        self._unet_log = []
        try:
            samples = generate(self, labels, *args, **kwargs)
        finally:
            log, self._unet_log = self._unet_log, None
        # each batch starts at the same first timestep, once, so it counts the batches
        batches = sum(t == log[0][0] for t, _ in log)
        samples.steps = len(log) // batches
        passes = sum(rows for _, rows in log) / len(samples.labels)
        samples.unet_passes = int(passes) if passes.is_integer() else passes
        return samples
    return counted


class Pipeline:
    _unet_log = None     # [(timestep, rows)] of the UNet calls while generate runs

    def __init__(self, unet, cfg, vae=None):
        self.unet, self.cfg, self.vae = unet, cfg, vae
        self.schedule = NoiseSchedule(cfg.schedule, cfg.timesteps)
        self.shape = (cfg.latent_channels, 7, 7) if cfg.space == "latent" else (1, 28, 28)
        # channels_last makes oneDNN's convolutions faster on this size of tensor
        for m in (self.unet, self.vae):
            if m is not None:
                m.to(memory_format=torch.channels_last)

    @classmethod
    def from_pretrained(cls, model_dir=MODEL_DIR, unet_file: str = "unet.safetensors"):
        model_dir = Path(model_dir)
        unet, cfg = load_model(model_dir / unet_file, "unet")
        vae = load_model(model_dir / "vae.safetensors", "vae")[0] if cfg.space == "latent" else None
        return cls(unet, cfg, vae)

    def compile(self) -> "Pipeline":
        """torch.compile the UNet with frozen weights (inductor): ~1.5x faster sampling on a CPU
        after a 20-40 s warm-up, so worth it for thousands of images, not for a handful."""
        import torch._inductor.config as inductor
        inductor.freezing = True
        self.unet = torch.compile(self.unet, dynamic=False)
        return self

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Model-space tensor -> float image in [-1, 1]: latents are unscaled and decoded."""
        if self.vae is None:
            return z.float().clamp(-1, 1)
        with autocast(self.cfg.bf16):
            return self.vae.decode(z / self.vae.scale).float().clamp(-1, 1)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """float [N,1,28,28] in [-1,1] -> what the UNet diffuses (scaled posterior mean for latents)."""
        if self.vae is None:
            return images
        with autocast(self.cfg.bf16):
            return self.vae.encode(images)[0].float() * self.vae.scale

    @torch.no_grad()
    def reconstruct(self, images_uint8: torch.Tensor, batch: int = 1000) -> torch.Tensor:
        """Real images through the VAE and back (uint8 -> uint8): the best any latent model on
        this VAE can draw, so their FID is the floor for the samples'."""
        return torch.cat([to_uint8(self.decode(self.encode(to_model_range(images_uint8[i:i + batch]))))
                          for i in range(0, len(images_uint8), batch)])

    @torch.no_grad()
    @_count_unet_passes
    def generate(self, labels, sampler=DEFAULTS["sampler"], steps=DEFAULTS["steps"],
                 guidance=DEFAULTS["guidance"], guidance_interval=DEFAULTS["guidance_interval"],
                 seed: int = 0, eta: float = 0.0, batch_size: int = 250, x_start=None,
                 t_start: int | None = None, return_trajectory: bool = False,
                 progress: bool = False) -> Samples:
        """labels: class per image (0-9, or 10 for unconditional). With x_start/t_start, start from
        a given (e.g. noised real) state at timestep t_start instead of pure noise at T-1."""
        labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
        gen = torch.Generator().manual_seed(seed)
        noise = torch.randn((len(labels), *self.shape), generator=gen)   # drawn once: seed -> images
        start = noise if x_start is None else x_start
        images, trajs = [], []
        chunks = range(0, len(labels), batch_size)
        if progress:
            from tqdm.auto import tqdm
            chunks = tqdm(chunks, desc="sampling")
        for i in chunks:
            y = labels[i:i + batch_size]
            x = start[i:i + batch_size].contiguous(memory_format=torch.channels_last)
            denoise = guided_denoiser(self._model, self.schedule, self.cfg.prediction, y, guidance,
                                      guidance_interval)
            out = sample(denoise, self.schedule, x, sampler, steps, eta, t_start, gen, return_trajectory)
            if return_trajectory:
                out, traj = out
                trajs.append(traj)
            images.append(to_uint8(self.decode(out)))
        traj = None
        if return_trajectory:
            traj = {"t": trajs[0]["t"], "x": torch.cat([t["x"] for t in trajs], 1),
                    "x0": torch.cat([t["x0"] for t in trajs], 1)}
        return Samples(torch.cat(images), labels, traj)

    def _model(self, x, t, y):
        if self._unet_log is not None:
            self._unet_log.append((int(t[0]), x.shape[0]))
        with autocast(self.cfg.bf16):
            return self.unet(x, t, y)
