"""One object that loads trained weights and turns (classes, sampler, steps, guidance, seed)
into images, optionally with the whole denoising trajectory. The CLI, the notebooks, the
benchmarks and the tests all sample through it. Every public method takes and returns CPU
tensors: the device is internal."""
from __future__ import annotations

import functools
import numbers
from dataclasses import dataclass
from pathlib import Path

import torch

from . import checks
from .data import to_model_range, to_uint8
from .device import NonFiniteError, PerImageNoise, autocast, describe, get_device, precision, randn
from .diffusion import NoiseSchedule
from .samplers import SAMPLERS, Sampler, make_sampler, sampler_class
from .samplers.ddim import ddim_invert
from .sampling import DEFAULTS, GuidedDenoiser, sample
from .weights import MODEL_DIR, load_pair, load_student

STUDENT_FILE = "student.safetensors"
__all__ = ["Pipeline", "Samples", "DEFAULTS", "MODEL_DIR", "SAMPLERS"]


@dataclass
class Samples:
    images: torch.Tensor           # uint8 [N, 28, 28]
    labels: torch.Tensor           # int64 [N]; 10 = unconditional
    trajectory: dict | None = None  # "t", "x" (states) and "x0" (predictions), decoded on request
    steps: int | None = None        # sampler steps each image took, counted as the run went
    unet_passes: float | None = None  # network evaluations per image, counted; a guided step is 2


class Pipeline:
    model_dir = None     # where from_pretrained found the weights (and looks for the student)

    def __init__(self, unet, cfg, vae=None, device=None, student=None, student_timesteps=None):
        self.cfg, self.device = cfg, get_device(device)
        self.schedule = NoiseSchedule(cfg.schedule, cfg.timesteps)
        self.shape = cfg.sample_shape
        # channels_last makes oneDNN's convolutions faster on this size of tensor (measured on CPU)
        fmt = torch.channels_last if self.device.type == "cpu" else torch.contiguous_format
        self.unet, self.vae = (m if m is None else m.to(self.device, memory_format=fmt) for m in (unet, vae))
        self.memory_format = fmt
        self._student = None
        if student is not None:
            self.set_student(student, student_timesteps)

    def set_student(self, student, teacher_timesteps) -> None:
        """Use `student` (distill.py) for sampler="distilled"; teacher_timesteps: the teacher run's
        timesteps it learned, ending with -1."""
        self._student = student.to(self.device, memory_format=self.memory_format).eval()
        self._student_ts = list(teacher_timesteps)

    @property
    def student(self):
        """The distilled few-step UNet, loaded on first use from model_dir/student.safetensors."""
        if self._student is None:
            if self.model_dir is None:
                raise ValueError("sampler='distilled' needs a student: this pipeline was not loaded by "
                                 "from_pretrained; call set_student(student, teacher_timesteps)")
            self.set_student(*load_student(self.model_dir / STUDENT_FILE, self.vae))
        return self._student

    @property
    def student_timesteps(self) -> list:
        """The teacher's timesteps the student learned (ending with -1)."""
        self.student                        # loads the student on first use
        return self._student_ts

    @classmethod
    def from_pretrained(cls, model_dir=None, unet_file: str = "unet.safetensors", device=None):
        """The shipped weights (model_dir None), or those in `model_dir`, on `device` (see device.py)."""
        model_dir = Path(model_dir or MODEL_DIR)
        unet, cfg, vae = load_pair(model_dir, unet_file)     # refuses a VAE from another run
        pipe = cls(unet, cfg, vae, device)
        pipe.model_dir = model_dir
        return pipe

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
        """Model-space tensor -> float image in [-1, 1]: latents are unscaled and decoded."""
        if self.vae is None:
            return z.float().clamp(-1, 1).cpu()
        with autocast(self.device, self.cfg.bf16):
            images = self.vae.from_model_space(z.to(self.device)).float().cpu()
        if not torch.isfinite(images).all():      # on the CPU already: no extra wait
            raise NonFiniteError(f"decoding gave NaN or inf pixels ({precision(self.device, self.cfg.bf16)} on "
                                 f"{self.device.type}): "
                                 f"the latents were finite; try FMNIST_AMP=fp32")
        return images.clamp(-1, 1)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """float [N,1,28,28] in [-1,1] -> what the UNet diffuses: for latents the VAE posterior's
        mean times the latent scale (unit variance, as the UNet was trained on)."""
        if self.vae is None:
            return images.cpu()
        with autocast(self.device, self.cfg.bf16):
            return self.vae.to_model_space(images.to(self.device)).float().cpu()

    @torch.no_grad()
    def reconstruct(self, images_uint8: torch.Tensor, batch: int = 1000) -> torch.Tensor:
        """Real images through the VAE and back (uint8 -> uint8): the best any latent model on
        this VAE can draw, so their FID is the floor for the samples'."""
        images_uint8 = checks.uint8_images("images", images_uint8)
        return torch.cat([to_uint8(self.decode(self.encode(to_model_range(images_uint8[i:i + batch]))))
                          for i in range(0, len(images_uint8), batch)])

    def sampler(self, name: str, generator=None, eta: float = 0.0) -> Sampler:
        """A fresh sampler from the registry (samplers.SAMPLERS) for one run; the distilled
        student's knows the teacher's timesteps it learned."""
        teacher = self.student_timesteps if sampler_class(name).network == "student" else None
        return make_sampler(name, self.schedule, generator, eta=eta, teacher_timesteps=teacher)

    @torch.no_grad()
    def generate(self, labels, sampler=DEFAULTS["sampler"], steps=DEFAULTS["steps"],
                 guidance=DEFAULTS["guidance"], guidance_interval=DEFAULTS["guidance_interval"],
                 seed: int = 0, eta: float = 0.0, batch_size: int = 250, x_start=None,
                 t_start: int | None = None, return_trajectory: bool = False,
                 progress: bool = False, negative=None, inpaint=None) -> Samples:
        """labels: class per image (0-9, or 10 for unconditional). With x_start/t_start, start from
        a given (e.g. noised real) state at timestep t_start instead of pure noise at T-1.
        negative: a class (or one per image) that guidance steers away from, in place of the
        unconditional prediction (a negative prompt; sampling.GuidedDenoiser).
        inpaint: (known, keep), the model-space states to keep and where (1) to keep them, one per
        image: made by Pipeline.inpaint, which is the way to call it.

        A seed fixes the images on every device and at every batch size: the starting noise is
        drawn at once on the CPU and then moved, and the noise of stochastic steps (DDPM, DDIM
        with eta > 0) comes from one CPU generator per image (device.PerImageNoise).
        Returns images (uint8), labels, the trajectory, and the steps and network passes per
        image, counted as the run went."""
        labels, negative = self._check_generate_args(labels, sampler, steps, guidance, guidance_interval, seed,
                                                     eta, batch_size, x_start, t_start, negative, inpaint)
        start = randn((len(labels), *self.shape), seed, torch.device("cpu")) if x_start is None else x_start
        chunks = range(0, len(labels), batch_size)
        if progress:
            from .progress import progress as bar
            chunks = bar(chunks, desc="sampling")
        images, trajs, denoisers = [], [], []
        for i in chunks:
            part = slice(i, i + batch_size)
            noise = PerImageNoise(seed, range(i, i + len(labels[part])))
            run = self.sampler(sampler, noise, eta)
            denoise = GuidedDenoiser(functools.partial(self._model, net=getattr(self, run.network)),
                                     self.schedule, self.cfg.prediction, labels[part].to(self.device),
                                     guidance if run.guided else 1.0, guidance_interval,
                                     conditional=bool((labels[part] != self.cfg.num_classes).any()),
                                     negative=None if negative is None else negative[part].to(self.device))
            known, keep = (None, None) if inpaint is None else (p[part].to(self.device) for p in inpaint)
            x = start[part].to(self.device).contiguous(memory_format=self.memory_format)
            out = sample(denoise, self.schedule, x, run, steps, t_start=t_start, generator=noise,
                         return_trajectory=return_trajectory, known=known, keep=keep)
            if return_trajectory:
                out, traj = out
                trajs.append(traj)
            self._check_finite(denoise.finite, out, i, guidance if run.guided else None)
            images.append(to_uint8(self.decode(out)))
            denoisers.append(denoise)
        passes = sum(d.rows for d in denoisers) / len(labels)
        return Samples(torch.cat(images), labels, _joined(trajs), steps=denoisers[0].calls,
                       unet_passes=int(passes) if passes.is_integer() else passes)

    def _check_generate_args(self, labels, sampler, steps, guidance, guidance_interval, seed, eta,
                             batch_size, x_start, t_start, negative, inpaint):
        """generate's arguments, checked before any work (checks.py). Returns the labels as int64,
        class names (data.parse_class, or 'none') turned into indices, and the negative classes
        likewise (one per image), or None."""
        T, null = self.schedule.T, self.cfg.num_classes
        spec = sampler_class(sampler)
        if not spec.edits and (t_start is not None or x_start is not None or inpaint is not None):
            what = "inpainting does" if t_start is None and x_start is None else "t_start and x_start do"
            raise ValueError(f"{what} not apply to the {sampler} sampler (it starts from pure noise); "
                             "use sampler='ddim' or 'dpmpp2m' to edit an image")
        if t_start is not None:
            checks.whole("t_start", t_start, 0, T - 1, " (the timestep to start from)")
        self.sampler(sampler).check_steps(steps, t_start)
        checks.real("guidance", guidance, 0, float("inf"), ">= 0 (1 = no guidance, 0 = the unconditional model)")
        if guidance_interval is not None:
            lo_hi = tuple(guidance_interval) if isinstance(guidance_interval, (tuple, list)) else ()
            if len(lo_hi) != 2 or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in lo_hi) \
                    or not 0 <= lo_hi[0] <= lo_hi[1] <= T - 1:
                raise ValueError(f"guidance_interval must be two whole timesteps LO <= HI in 0..{T - 1} "
                                 f"(or None: guide every step), not {guidance_interval!r}")
        checks.real("eta", eta, 0, 1, "from 0 (deterministic DDIM) to 1 (as much noise as DDPM)")
        checks.seed(seed)
        checks.whole("batch_size", batch_size, 1)
        out = checks.classes(labels, "labels", null)
        if negative is not None:
            if not spec.guided:
                raise ValueError(f"negative does not apply to the {sampler} sampler (its guidance is folded in); "
                                 "use sampler='dpmpp2m' or 'ddim'")
            negative = torch.tensor(checks.one_per_image("negative", checks.classes(negative, "negative", null),
                                                         len(out), per="label"), dtype=torch.long)
        if x_start is not None:
            checks.states("x_start", x_start, (len(out), *self.shape))
        return torch.tensor(out, dtype=torch.long), negative

    def inpaint(self, images_uint8, mask, labels, seed: int = 0, **generate_kwargs) -> Samples:
        """Redraw the masked part of real images, keep the rest: images uint8 [N, 28, 28]; mask
        bool [N, 28, 28] or one [28, 28] for all, True where to redraw; labels: what to draw there
        (one class for all, or one per image). A latent cell covers 4 x 4 pixels (28 -> 7): it is
        redrawn if any of its pixels is masked, and kept, as the image's own latent noised to each
        step's timestep (sampling.sample), if none is. The decoder is not local, so the kept pixels
        come back close to, not exactly, the originals. generate_kwargs: sampler, steps, guidance,
        ... as for generate."""
        images = checks.uint8_images("images", images_uint8)
        mask = checks.pixel_mask("mask", mask, len(images)).float()
        labels = checks.one_per_image("labels", checks.classes(labels, "labels", self.cfg.num_classes), len(images))
        taken = {"x_start", "t_start", "inpaint", "labels", "seed"} & set(generate_kwargs)
        if taken:
            raise ValueError(f"{sorted(taken)[0]} cannot be given to inpaint: it sets it itself")
        known = self.encode(to_model_range(images))
        redraw = torch.nn.functional.adaptive_max_pool2d(mask[:, None], known.shape[-2:])   # any pixel of a cell
        keep = (1 - redraw).expand_as(known).contiguous()
        return self.generate(labels, seed=seed, inpaint=(known, keep), **generate_kwargs)

    @torch.no_grad()
    def invert(self, images_uint8, labels, steps: int = 50, batch_size: int = 250) -> torch.Tensor:
        """DDIM inversion (samplers.ddim.ddim_invert): the noise at t = T-1 from which deterministic
        DDIM with `steps` steps and no guidance draws these images again (up to the inversion's
        error). Start generate(..., sampler="ddim", steps=steps, x_start=noise) from it: with the
        same labels and guidance 1 to get the image back, with another class to edit it."""
        images = checks.uint8_images("images", images_uint8)
        labels = checks.one_per_image("labels", checks.classes(labels, "labels", self.cfg.num_classes), len(images))
        checks.whole("steps", steps, 1, self.schedule.T)
        checks.whole("batch_size", batch_size, 1)
        z0, labels = self.encode(to_model_range(images)), torch.tensor(labels)
        out = []
        for i in range(0, len(z0), batch_size):
            denoise = GuidedDenoiser(self._model, self.schedule, self.cfg.prediction,
                                     labels[i:i + batch_size].to(self.device), conditional=True)
            out.append(ddim_invert(denoise, self.schedule, z0[i:i + batch_size].to(self.device), steps).float().cpu())
        return torch.cat(out)

    def _check_finite(self, seen, out, first: int, guidance) -> None:
        """Stop at the first step whose guess went NaN or inf (GuidedDenoiser.finite), saying where
        and what to try, instead of decoding it into black images."""
        ok = torch.stack([f for _, f in seen] + [torch.isfinite(out).all()]).cpu()    # one wait
        if ok.all():
            return
        k = int((~ok).nonzero()[0])
        where = f"step {k + 1} of {len(seen)} (t = {seen[k][0]})" if k < len(seen) else "the last step"
        dtype = precision(self.device, self.cfg.bf16)
        too_strong = guidance is not None and guidance > 15
        tries = ([f"a guidance scale in the useful range (1-15, not {guidance:g})"] if too_strong else []) + \
                ([f"FMNIST_AMP=fp32 to rule out {dtype}"] if dtype != "float32" else [])
        raise NonFiniteError(f"sampling went NaN or inf at {where} for images {first}-{first + len(out) - 1} "
                             f"({dtype} on {self.device.type}): try " + (" or ".join(tries) or
                             "other weights (these may be broken: retrain, or git checkout model/)"))

    def _model(self, x, t, y, net=None):
        """One network pass under the device's autocast: the UNet, or `net` (the student)."""
        with autocast(self.device, self.cfg.bf16):
            return (self.unet if net is None else net)(x, t, y)


def _joined(trajs: list) -> dict | None:
    """The batches' trajectories as one, on the CPU."""
    if not trajs:
        return None
    return {"t": trajs[0]["t"], "x": torch.cat([t["x"].cpu() for t in trajs], 1),
            "x0": torch.cat([t["x0"].cpu() for t in trajs], 1)}
