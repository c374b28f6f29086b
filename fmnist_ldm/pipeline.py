"""One object that loads trained weights and turns (classes, sampler, steps, guidance, seed)
into images, optionally with the whole denoising trajectory. The CLI, the notebooks, the
benchmarks and the tests all sample through it."""
from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .data import parse_class, to_model_range, to_uint8
from .device import NonFiniteError, PerImageNoise, autocast, describe, get_device, precision, randn
from .diffusion import NoiseSchedule
from .sampling import DEFAULTS, consistency_sample, ddim_invert, guided_denoiser, sample, student_timesteps
from .weights import MODEL_DIR, load_pair, load_student

SAMPLERS = ("ddpm", "ddim", "dpmpp2m", "distilled")   # distilled: the few-step student (distill.py)
STUDENT_FILE = "student.safetensors"
MAX_SEED = 2**63 - 1   # torch also maps negative seeds, but elsewhere -1 means "random", which we lack


@dataclass
class Samples:
    images: torch.Tensor           # uint8 [N, 28, 28]
    labels: torch.Tensor           # int64 [N]; 10 = unconditional
    trajectory: dict | None = None  # "t", "x" (states) and "x0" (predictions), decoded on request
    steps: int | None = None        # sampler steps each image took, counted as the run went
    unet_passes: float | None = None  # UNet evaluations per image, counted; a guided step is 2


def _count_unet_passes(generate):
    """Around Pipeline.generate: log the batch rows of every UNet call (see _model) and the batches
    run, and put on the returned Samples what ran, counted rather than computed from the
    arguments, so that the numbers cannot drift from the samplers: DDPM takes every timestep
    whatever `steps` says, and a guided step runs the UNet on a doubled batch (conditional and
    unconditional)."""
    @functools.wraps(generate)
    def counted(self, labels, *args, **kwargs):
        self._unet_log, self._batches = [], 0
        try:
            samples = generate(self, labels, *args, **kwargs)
        finally:
            log, batches, self._unet_log = self._unet_log, self._batches, None
        samples.steps = len(log) // batches             # one UNet call per step and batch
        passes = sum(log) / len(samples.labels)
        samples.unet_passes = int(passes) if passes.is_integer() else passes
        return samples
    return counted


def _watch_finite(denoise, seen: list):
    """denoise, noting after each step whether its guess is finite. The notes stay on the device
    and are read once, after the run (reading one at every step would wait for the GPU)."""
    def watched(x, t):
        x0, eps = denoise(x, t)
        seen.append((t, torch.isfinite(x0).all()))
        return x0, eps
    return watched


def _classes(labels, name: str, null: int) -> list[int]:
    """Classes given as indices, names ('Sneaker'), 'none' (the null class), one or a list, as a list
    of ints; anything else a ValueError starting with `name`."""
    what = f"classes 0-{null - 1}, {null} (unconditional) or class names such as 'Sneaker'"
    if isinstance(labels, (torch.Tensor, np.ndarray)):
        labels = labels.tolist()                   # then each value is checked like a list's
    if isinstance(labels, (str, numbers.Integral)):
        labels = [labels]                          # one image
    try:
        items = list(labels)
    except TypeError:
        raise ValueError(f"{name} must be a list of {what}, not {labels!r}") from None
    if not items:
        raise ValueError(f"{name} is empty: give one class per image ({what})")
    out = []
    for v in items:
        if isinstance(v, torch.Tensor) and v.dim() == 0:
            v = v.item()
        if isinstance(v, str):
            try:
                v = null if v.strip().lower() in ("none", "unconditional") else parse_class(v)
            except ValueError as e:
                raise ValueError(f"{name}: {e}") from None
        elif isinstance(v, bool) or not isinstance(v, numbers.Integral) or not 0 <= v <= null:
            raise ValueError(f"{name} must be {what}, not {v!r}")
        out.append(int(v))
    return out


def _check_generate_args(pipe, labels, sampler, steps, guidance, guidance_interval, seed, eta,
                         batch_size, x_start, t_start, negative=None):
    """generate's arguments, checked before any work: a ValueError that starts with the argument's
    name and says what it takes, instead of an IndexError from deep inside the UNet, a label 3.7
    silently truncated to 3, or a NaN guidance scale that turns every image black. Returns the
    labels as int64, class names (data.parse_class, or 'none') turned into indices, and the
    negative classes likewise (one per image), or None."""
    T, null = pipe.schedule.T, pipe.cfg.num_classes

    def whole(name, v, lo, hi, why=""):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or not lo <= v <= hi:
            span = f">= {lo}" if hi == math.inf else f"from {lo} to {hi}"
            raise ValueError(f"{name} must be a whole number {span}{why}, not {v!r}")

    def real(name, v, lo, hi, what):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not (math.isfinite(v) and lo <= v <= hi):
            raise ValueError(f"{name} must be a number {what}, not {v!r}")

    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(map(repr, SAMPLERS))}, not {sampler!r}")
    if sampler == "distilled":
        if t_start is not None or x_start is not None:
            raise ValueError("t_start and x_start do not apply to the distilled sampler (it starts from pure "
                             "noise); use sampler='ddim' or 'dpmpp2m' to edit an image")
        n = len(pipe.student_timesteps) - 1
        whole("steps", steps, 1, n, f" for the distilled sampler (it learned the teacher's {n} timesteps)")
    else:
        if t_start is not None:
            whole("t_start", t_start, 0, T - 1, " (the timestep to start from)")
        if sampler == "ddpm" or t_start is None:   # DDPM takes every timestep whatever `steps` says
            whole("steps", steps, 1, T)
        else:
            whole("steps", steps, 1, t_start + 1, f" (the timesteps from t_start = {t_start} down)")
    real("guidance", guidance, 0, math.inf, ">= 0 (1 = no guidance, 0 = the unconditional model)")
    if guidance_interval is not None:
        lo_hi = tuple(guidance_interval) if isinstance(guidance_interval, (tuple, list)) else ()
        if len(lo_hi) != 2 or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in lo_hi) \
                or not 0 <= lo_hi[0] <= lo_hi[1] <= T - 1:
            raise ValueError(f"guidance_interval must be two whole timesteps LO <= HI in 0..{T - 1} "
                             f"(or None: guide every step), not {guidance_interval!r}")
    real("eta", eta, 0, 1, "from 0 (deterministic DDIM) to 1 (as much noise as DDPM)")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be a whole number from 0 to 2**63 - 1, not {seed!r}")
    whole("batch_size", batch_size, 1, math.inf)

    out = _classes(labels, "labels", null)
    if negative is not None:
        if sampler == "distilled":
            raise ValueError("negative does not apply to the distilled sampler (its guidance is folded in); "
                             "use sampler='dpmpp2m' or 'ddim'")
        negative = _classes(negative, "negative", null)
        if len(negative) == 1:
            negative = negative * len(out)             # one negative class for every image
        if len(negative) != len(out):
            raise ValueError(f"negative must be one class, or one per label ({len(out)}), not {len(negative)}")
        negative = torch.tensor(negative, dtype=torch.long)

    if x_start is not None:
        shape = (len(out), *pipe.shape)
        got = f"{x_start.dtype} {tuple(x_start.shape)}" if isinstance(x_start, torch.Tensor) else type(x_start).__name__
        if not isinstance(x_start, torch.Tensor) or not x_start.is_floating_point() or tuple(x_start.shape) != shape:
            raise ValueError(f"x_start must be a float tensor of shape {shape}, one state per label, not {got}")
        if not torch.isfinite(x_start).all():
            raise ValueError("x_start holds NaN or infinite values")
    return torch.tensor(out, dtype=torch.long), negative


class Pipeline:
    _unet_log = None     # the batch rows of each UNet call while generate runs
    _batches = 0         # and the batches it ran
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
        """Model-space tensor -> float image in [-1, 1] on the CPU: latents are unscaled and decoded.
        (Like every public method here it takes and returns CPU tensors: the device is internal.)"""
        if self.vae is None:
            return z.float().clamp(-1, 1).cpu()
        with autocast(self.device, self.cfg.bf16):
            images = self.vae.decode(z.to(self.device) / self.vae.scale).float().cpu()
        if not torch.isfinite(images).all():      # on the CPU already: no extra wait
            raise NonFiniteError(f"decoding gave NaN or inf pixels ({precision(self.device, self.cfg.bf16)} on "
                                 f"{self.device.type}): "
                                 f"the latents were finite; try FMNIST_AMP=fp32")
        return images.clamp(-1, 1)

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
    @_count_unet_passes
    def generate(self, labels, sampler=DEFAULTS["sampler"], steps=DEFAULTS["steps"],
                 guidance=DEFAULTS["guidance"], guidance_interval=DEFAULTS["guidance_interval"],
                 seed: int = 0, eta: float = 0.0, batch_size: int = 250, x_start=None,
                 t_start: int | None = None, return_trajectory: bool = False,
                 progress: bool = False, negative=None, inpaint=None) -> Samples:
        """labels: class per image (0-9, or 10 for unconditional). With x_start/t_start, start from
        a given (e.g. noised real) state at timestep t_start instead of pure noise at T-1.
        negative: a class (or one per image) that guidance steers away from, in place of the
        unconditional prediction (a negative prompt; sampling.guided_denoiser).
        inpaint: (known, keep), the model-space states to keep and where (1) to keep them, one per
        image: made by Pipeline.inpaint, which is the way to call it.

        A seed fixes the images on every device and at every batch size: the starting noise is
        drawn at once on the CPU and then moved, and the noise of stochastic steps (DDPM, DDIM
        with eta > 0) comes from one CPU generator per image (device.PerImageNoise).
        Returns images (uint8), labels and the trajectory on the CPU."""
        labels, negative = _check_generate_args(self, labels, sampler, steps, guidance, guidance_interval, seed,
                                                eta, batch_size, x_start, t_start, negative)
        labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
        start = randn((len(labels), *self.shape), seed, torch.device("cpu")) if x_start is None else x_start
        images, trajs = [], []
        chunks = range(0, len(labels), batch_size)
        if progress:
            from .progress import progress as bar
            chunks = bar(chunks, desc="sampling")
        for i in chunks:
            self._batches += 1
            y_cpu = labels[i:i + batch_size]
            y = y_cpu.to(self.device)
            x = start[i:i + batch_size].to(self.device).contiguous(memory_format=self.memory_format)
            noise, seen = PerImageNoise(seed, range(i, i + len(y))), []
            conditional = bool((y_cpu != self.cfg.num_classes).any())      # read on the CPU: no wait
            if sampler == "distilled":             # guidance is folded into the student: one pass a step
                denoise = guided_denoiser(self._student_model, self.schedule, self.cfg.prediction, y,
                                          conditional=conditional)
                out = consistency_sample(_watch_finite(denoise, seen), self.schedule, x,
                                         student_timesteps(self.student_timesteps, steps), noise, return_trajectory)
            else:
                neg = None if negative is None else negative[i:i + batch_size].to(self.device)
                known, keep = (None, None) if inpaint is None else \
                    (part[i:i + batch_size].to(self.device) for part in inpaint)
                denoise = guided_denoiser(self._model, self.schedule, self.cfg.prediction, y, guidance,
                                          guidance_interval, conditional=conditional, negative=neg)
                out = sample(_watch_finite(denoise, seen), self.schedule, x, sampler, steps, eta, t_start, noise,
                             return_trajectory, known, keep)
            if return_trajectory:
                out, traj = out
                trajs.append(traj)
            self._check_finite(seen, out, i, guidance if sampler != "distilled" else None)
            images.append(to_uint8(self.decode(out)))
        traj = None
        if return_trajectory:
            traj = {"t": trajs[0]["t"], "x": torch.cat([t["x"].cpu() for t in trajs], 1),
                    "x0": torch.cat([t["x0"].cpu() for t in trajs], 1)}
        return Samples(torch.cat(images), labels, traj)

    def inpaint(self, images_uint8, mask, labels, seed: int = 0, **generate_kwargs) -> Samples:
        """Redraw the masked part of real images, keep the rest: images uint8 [N, 28, 28]; mask
        bool [N, 28, 28] or one [28, 28] for all, True where to redraw; labels: what to draw there.
        A latent cell covers 4 x 4 pixels (28 -> 7): it is redrawn if any of its pixels is masked,
        and kept, as the image's own latent noised to each step's timestep (sampling.sample), if
        none is. The decoder is not local, so the kept pixels come back close to, not exactly,
        the originals. generate_kwargs: sampler, steps, guidance, ... as for generate."""
        images = torch.as_tensor(images_uint8)
        mask = torch.as_tensor(mask, dtype=torch.bool).expand(images.shape).float()
        known = self.encode(to_model_range(images))
        redraw = torch.nn.functional.adaptive_max_pool2d(mask[:, None], known.shape[-2:])   # any pixel of a cell
        keep = (1 - redraw).expand_as(known).contiguous()
        return self.generate(labels, seed=seed, inpaint=(known, keep), **generate_kwargs)

    @torch.no_grad()
    def invert(self, images_uint8, labels, steps: int = 50, batch_size: int = 250) -> torch.Tensor:
        """DDIM inversion (sampling.ddim_invert): the noise at t = T-1 from which deterministic
        DDIM with `steps` steps and no guidance draws these images again (up to the inversion's
        error). Start generate(..., sampler="ddim", steps=steps, x_start=noise) from it: with the
        same labels and guidance 1 to get the image back, with another class to edit it.
        CPU in, CPU out."""
        labels = torch.as_tensor(_classes(labels, "labels", self.cfg.num_classes))
        z0 = self.encode(to_model_range(torch.as_tensor(images_uint8)))
        if len(labels) == 1:
            labels = labels.expand(len(z0))
        out = []
        for i in range(0, len(z0), batch_size):
            y = labels[i:i + batch_size].to(self.device)
            denoise = guided_denoiser(self._model, self.schedule, self.cfg.prediction, y, conditional=True)
            out.append(ddim_invert(denoise, self.schedule, z0[i:i + batch_size].to(self.device), steps).float().cpu())
        return torch.cat(out)

    def _check_finite(self, seen, out, first: int, guidance) -> None:
        """Stop at the first step whose guess went NaN or inf (see _watch_finite), saying where and
        what to try, instead of decoding it into black images."""
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

    def _model(self, x, t, y, unet=None):
        if self._unet_log is not None:
            self._unet_log.append(x.shape[0])
        with autocast(self.device, self.cfg.bf16):
            return (self.unet if unet is None else unet)(x, t, y)

    def _student_model(self, x, t, y):
        return self._model(x, t, y, self._student)
