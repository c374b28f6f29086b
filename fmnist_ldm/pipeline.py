"""One object that loads trained weights and turns (classes, sampler, steps, guidance, seed)
into images, optionally with the whole denoising trajectory. The CLI, the notebooks, the
benchmarks and the tests all sample through it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .data import to_model_range, to_uint8
from .device import PerImageNoise, autocast, describe, get_device, randn
from .diffusion import NoiseSchedule, guided_denoiser, sample
from .weights import MODEL_DIR, load_pair



# The settings we recommend (measured in benchmarks/; see the README's results table).
# guidance 5 only for t in [300, 700]: >= 97 % class accuracy at the best FID we measured for it
# (guiding above t = 800 or below 200 costs FID), and 8 of the 20 steps run the UNet twice, not 12.
DEFAULTS = dict(sampler="dpmpp2m", steps=20, guidance=5.0, guidance_interval=(300, 700))


@dataclass
class Samples:
    images: torch.Tensor           # uint8 [N, 28, 28]
    labels: torch.Tensor           # int64 [N]; 10 = unconditional
    trajectory: dict | None = None  # "t", "x" (states) and "x0" (predictions), decoded on request


class Pipeline:
    def __init__(self, unet, cfg, vae=None, device=None):
        self.cfg, self.device = cfg, get_device(device)
        self.schedule = NoiseSchedule(cfg.schedule, cfg.timesteps)
        self.shape = cfg.sample_shape
        # channels_last makes oneDNN's convolutions faster on this size of tensor (measured on CPU)
        fmt = torch.channels_last if self.device.type == "cpu" else torch.contiguous_format
        self.unet, self.vae = (m if m is None else m.to(self.device, memory_format=fmt) for m in (unet, vae))
        self.memory_format = fmt

    @classmethod
    def from_pretrained(cls, model_dir=None, unet_file: str = "unet.safetensors", device=None):
        """The shipped weights (model_dir None), or those in `model_dir`, on `device` (see device.py)."""
        model_dir = Path(model_dir or MODEL_DIR)
        unet, cfg, vae = load_pair(model_dir, unet_file)     # refuses a VAE from another run
        return cls(unet, cfg, vae, device)

    def __repr__(self):
        return f"Pipeline({self.cfg.space} diffusion on {describe(self.device, self.cfg.bf16)})"

    def compile(self) -> "Pipeline":
        """torch.compile the UNet with frozen weights (inductor): ~1.5x faster sampling on a CPU
        after a 20-40 s warm-up, so worth it for thousands of images, not for a handful."""
        import torch._inductor.config as inductor
        inductor.freezing = True
        self.unet = torch.compile(self.unet, dynamic=False)
        return self

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Model-space tensor -> float image in [-1, 1] on the CPU: latents are unscaled and decoded.
        (Like every public method here it takes and returns CPU tensors: the device is internal.)"""
        if self.vae is None:
            return z.float().clamp(-1, 1).cpu()
        with autocast(self.device, self.cfg.bf16):
            return self.vae.decode(z.to(self.device) / self.vae.scale).float().clamp(-1, 1).cpu()

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """float [N,1,28,28] in [-1,1] -> what the UNet diffuses (scaled posterior mean for latents)."""
        if self.vae is None:
            return images.cpu()
        with autocast(self.device, self.cfg.bf16):
            return (self.vae.encode(images.to(self.device))[0].float() * self.vae.scale).cpu()

    @torch.no_grad()
    def reconstruct(self, images_uint8: torch.Tensor, batch: int = 1000) -> torch.Tensor:
        """Real images through the VAE and back (uint8 -> uint8): the best any latent model on
        this VAE can draw, so their FID is the floor for the samples'."""
        return torch.cat([to_uint8(self.decode(self.encode(to_model_range(images_uint8[i:i + batch]))))
                          for i in range(0, len(images_uint8), batch)])

    @torch.no_grad()
    def generate(self, labels, sampler=DEFAULTS["sampler"], steps=DEFAULTS["steps"],
                 guidance=DEFAULTS["guidance"], guidance_interval=DEFAULTS["guidance_interval"],
                 seed: int = 0, eta: float = 0.0, batch_size: int = 250, x_start=None,
                 t_start: int | None = None, return_trajectory: bool = False,
                 progress: bool = False) -> Samples:
        """labels: class per image (0-9, or 10 for unconditional). With x_start/t_start, start from
        a given (e.g. noised real) state at timestep t_start instead of pure noise at T-1.

        A seed fixes the images on every device and at every batch size: the starting noise is
        drawn at once on the CPU and then moved, and the noise of stochastic steps (DDPM, DDIM
        with eta > 0) comes from one CPU generator per image (device.PerImageNoise).
        Returns images (uint8), labels and the trajectory on the CPU."""
        labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
        start = randn((len(labels), *self.shape), seed, torch.device("cpu")) if x_start is None else x_start
        images, trajs = [], []
        chunks = range(0, len(labels), batch_size)
        if progress:
            from tqdm.auto import tqdm
            chunks = tqdm(chunks, desc="sampling")
        for i in chunks:
            y = labels[i:i + batch_size].to(self.device)
            x = start[i:i + batch_size].to(self.device).contiguous(memory_format=self.memory_format)
            denoise = guided_denoiser(self._model, self.schedule, self.cfg.prediction, y, guidance,
                                      guidance_interval)
            noise = PerImageNoise(seed, range(i, i + len(y)))
            out = sample(denoise, self.schedule, x, sampler, steps, eta, t_start, noise, return_trajectory)
            if return_trajectory:
                out, traj = out
                trajs.append(traj)
            images.append(to_uint8(self.decode(out)))
        traj = None
        if return_trajectory:
            traj = {"t": trajs[0]["t"], "x": torch.cat([t["x"].cpu() for t in trajs], 1),
                    "x0": torch.cat([t["x0"].cpu() for t in trajs], 1)}
        return Samples(torch.cat(images), labels, traj)

    def _model(self, x, t, y):
        with autocast(self.device, self.cfg.bf16):
            return self.unet(x, t, y)
