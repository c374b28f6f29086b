"""Few-step sampling by distillation: a student UNet that jumps from any noise level straight to
where the guided 20-step teacher sampler would end, so that 1-8 UNet passes draw an image.

The teacher (sampling.DEFAULTS: DPM-Solver++(2M), 20 steps, guidance 5 for t in [300, 700], 28
UNet passes) is a deterministic map: its starting noise fixes every later state z_{t_k} of the
run and its end point z_0 = Phi(z_{t_k}, t_k). We record whole teacher runs and train the student
f(z_t, t, y) to predict that end point from every state the teacher visited:

    L = E_{run, k} || f(z_{t_k}, t_k, y) - Phi(z_{t_k}, t_k) ||^2                  (1)

This is knowledge distillation (Luhman & Luhman 2021, "one step from noise to the teacher's
image") applied at every noise level: a *consistency function* (Song et al. 2023, eq. 3) learned
by regression on the exact ODE end point instead of the one-step bootstrap of consistency
distillation, which the precomputed runs make unnecessary. Guidance is folded in for free, since
the teacher runs were guided (as in Meng et al. 2023 and LCM, Luo et al. 2023): the student calls
the UNet once per step.

The student keeps the teacher's architecture and output (v), so f is the v-parameterisation's
x0 = sqrt(abar_t) z_t - sqrt(1 - abar_t) v, which gives f(z, t) -> z as t -> 0 (the consistency
boundary condition) for free, and it starts from the teacher's weights.

Sampling (Song et al. 2023, Algorithm 1, "multistep consistency sampling"; samplers/consistency.py):
predict z_0 from pure noise, then, for each later timestep t, noise that guess back to t with
fresh noise and predict again:

    z_t = sqrt(abar_t) z0_hat + sqrt(1 - abar_t) eps,  eps ~ N(0, I);   z0_hat = f(z_t, t)   (2)

One step is the bare one-shot map; each further step re-draws the detail that one shot blurs.
The timesteps are taken from the teacher's 20, the only ones the student was trained on.
"""
from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .config import from_preset
from .device import get_device, machine
from .diffusion import NoiseSchedule
from .files import atomic_save
from .sampling import DEFAULTS
from .train import fit


@dataclass
class DistillConfig:
    runs: int = 33_000            # teacher runs to learn from: 3,000 per class and 3,000 unconditional
    steps: int = 2_500            # optimiser steps of the student
    batch_size: int = 256
    lr: float = 1e-4              # fine-tuning from the teacher's weights: 10x below its own training
    ema_decay: float = 0.999
    warmup_steps: int = 100
    seed: int = 0                 # teacher runs' noise, data order, the training steps' draws
    chunk: int = 1_100            # teacher runs per file on disk (generation resumes chunk by chunk)
    checkpoint_every: int = 250
    out_dir: str = "runs/distill"

    def __post_init__(self):
        for name in ("runs", "steps", "batch_size", "warmup_steps", "chunk", "checkpoint_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"DistillConfig.{name} must be a whole number >= 1, not {v!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"DistillConfig.lr must be a number > 0, not {self.lr!r}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"DistillConfig.ema_decay must be in [0, 1), not {self.ema_decay!r}")

    def fingerprint(self) -> dict:
        """What the student depends on (where it is written, and how often, does not count)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("out_dir", "checkpoint_every")}


# `full` distils the shipped student; `fast` is minutes on a CPU (notebook 07 there, and CI).
DISTILL_PRESETS = {"fast": dict(runs=1_100, steps=150, batch_size=128, warmup_steps=20, chunk=550,
                                checkpoint_every=50, out_dir="runs/distill-fast"),
                   "full": {}}


def distill_preset(name: str, **overrides) -> DistillConfig:
    """The DistillConfig of preset `name` ('fast' or 'full', see DISTILL_PRESETS) with `overrides`."""
    return from_preset(DistillConfig, DISTILL_PRESETS, name, **overrides)


@dataclass
class Trajectories:
    """Teacher runs: states [N, S+1, C, H, W] (S steps; the last is the run's end point z_0),
    the class of each run (num_classes = unconditional) and the S + 1 timesteps (the last -1)."""
    states: torch.Tensor
    labels: torch.Tensor
    timesteps: list

    def __post_init__(self):      # the timesteps as a tensor beside the states: not copied at every step
        self.t_table = torch.tensor(self.timesteps, device=self.states.device)

    def __len__(self):
        return len(self.labels)

    def to(self, device) -> "Trajectories":
        return Trajectories(self.states.to(device), self.labels.to(device), self.timesteps)

    def batch(self, idx: torch.Tensor, generator: torch.Generator):
        """For each run in idx one of its states at random: (z_t, t, y, end point z_0)."""
        k = torch.randint(0, len(self.timesteps) - 1, (len(idx),), generator=generator, device=idx.device)
        t = self.t_table[k]
        return self.states[idx, k].float(), t, self.labels[idx], self.states[idx, -1].float()


def collect_trajectories(pipe, cfg: DistillConfig, progress: bool = True) -> Trajectories:
    """cfg.runs runs of the teacher sampler (sampling.DEFAULTS) on pipe, classes 0..9 and
    unconditional in turn, kept whole. Written cfg.chunk runs at a time (atomically) to
    cfg.out_dir/trajectories/, so an interrupted collection resumes with the next chunk."""
    folder = Path(cfg.out_dir) / "trajectories"
    n_labels = pipe.cfg.num_classes + 1
    parts = []
    chunks = range(0, cfg.runs, cfg.chunk)
    if progress:
        from .progress import progress as bar
        chunks = bar(chunks, desc="teacher runs", unit="chunk")
    for start in chunks:
        path = folder / f"runs_{start:06d}.pt"
        n = min(cfg.chunk, cfg.runs - start)
        if path.exists():
            part = torch.load(path, weights_only=True)
        else:
            labels = [(start + i) % n_labels for i in range(n)]
            run = pipe.generate(labels, seed=cfg.seed * 1_000_003 + start, return_trajectory=True, **DEFAULTS)
            # float16 halves the files; its 3 significant digits are far below what the student learns
            part = {"states": run.trajectory["x"].transpose(0, 1).half(), "labels": run.labels,
                    "timesteps": run.trajectory["t"]}
            atomic_save(part, path)
        parts.append(part)
    return Trajectories(torch.cat([p["states"] for p in parts]), torch.cat([p["labels"] for p in parts]),
                        list(parts[0]["timesteps"]))


def distill_loss(student, schedule: NoiseSchedule, prediction: str, data: Trajectories):
    """step_loss(indices, generator) for fit: eq. (1), the student's z0 from a state of the teacher's
    run against where that run ended, in float32."""
    def loss(idx, gen):
        z_t, t, y, z0 = data.batch(idx, gen)
        z0_hat, _ = schedule.split(student(z_t, t, y).float(), z_t, t, prediction)
        return F.mse_loss(z0_hat, z0)
    return loss


def distill(teacher, model_cfg, cfg: DistillConfig, data: Trajectories, device=None):
    """A copy of `teacher` (a UNet of config model_cfg) trained on eq. (1) for cfg.steps steps on
    `device`, resumable from cfg.out_dir/student.ckpt. Returns (EMA student on the CPU, history)."""
    device = get_device(device)
    torch.manual_seed(cfg.seed)
    student, data = copy.deepcopy(teacher).float(), data.to(device)
    schedule = NoiseSchedule(model_cfg.schedule, model_cfg.timesteps)
    fingerprint = {**cfg.fingerprint(), "teacher": teacher_id(teacher)}
    student, hist = fit(student, distill_loss(student, schedule, model_cfg.prediction, data), len(data),
                        cfg.batch_size, cfg.lr, steps=cfg.steps, seed=cfg.seed, warmup_steps=cfg.warmup_steps,
                        ema_decay=cfg.ema_decay, bf16=model_cfg.bf16, ckpt_path=Path(cfg.out_dir) / "student.ckpt",
                        fingerprint=fingerprint, checkpoint_every=cfg.checkpoint_every, desc="student",
                        device=device)
    return student.cpu(), hist


def teacher_id(unet) -> str:
    from .weights import weights_id
    return weights_id(unet.state_dict())


def train_student(pipe, cfg: DistillConfig, device=None, progress: bool = True):
    """Collect the teacher's runs from `pipe` (resumable), distil, and write the student's weights
    to cfg.out_dir/student.safetensors with what it belongs to (the teacher, its VAE, the teacher's
    timesteps) and how long each part took, on which machine. Returns (student, history, timings)."""
    from .weights import save_weights, weights_id
    device = get_device(device)
    t0 = time.perf_counter()
    data = collect_trajectories(pipe, cfg, progress)
    collect_seconds = time.perf_counter() - t0          # this process's (chunks already on disk load fast)
    student, hist = distill(pipe.unet, pipe.cfg, cfg, data, device)
    timings = {"collect_seconds": collect_seconds, "distill_seconds": hist["seconds"]}
    save_weights(student, Path(cfg.out_dir) / "student.safetensors", "unet", pipe.cfg,
                 vae_id=weights_id(pipe.vae.state_dict()) if pipe.vae is not None else None,
                 distilled={"teacher_id": teacher_id(pipe.unet), "teacher_timesteps": data.timesteps,
                            "teacher_sampler": dict(DEFAULTS),
                            "config": dataclasses.asdict(cfg)},
                 loss=hist["loss"][::10], machine=machine(device, pipe.cfg.bf16), **timings)
    return student, hist, timings


def student_recipe(path) -> tuple[DistillConfig, dict]:
    """How a student file (train_student's) was made: the DistillConfig it was distilled with, and
    {"collect_seconds", "distill_seconds", "machine"}: its teacher runs' and training's times, where."""
    from .weights import read_weights
    _, _, meta = read_weights(path, "unet")
    how = dict(meta["distilled"]["config"])
    known = {f.name for f in dataclasses.fields(DistillConfig)}
    cfg = DistillConfig(**{k: v for k, v in how.items() if k in known})
    return cfg, {k: meta.get(k) for k in ("collect_seconds", "distill_seconds", "machine")}


def teacher_vs_student(pipe, judge, n_per_class: int, steps=(1, 2, 4, 8), seed: int = 0,
                       progress: bool = False) -> list[dict]:
    """The teacher sampler (sampling.DEFAULTS, also at its own 20 steps) and the student at each
    step count, on the same classes and seed, timed in this one run (after a warm-up each) and
    scored by metrics.evaluate_samples: class accuracy, FID and FID - real-vs-real at n images.
    progress: print each row as it is measured (the whole table takes minutes on a CPU)."""
    from .metrics import evaluate_samples
    labels = [c for c in range(pipe.cfg.num_classes) for _ in range(n_per_class)]
    runs = [("teacher", DEFAULTS["sampler"], n) for n in sorted({*steps, DEFAULTS["steps"]})] + \
           [("student", "distilled", n) for n in steps]
    rows = []
    for model, sampler, n in runs:
        pipe.generate(labels[:250], sampler=sampler, steps=n, seed=seed + 1)          # warm-up
        t0 = time.perf_counter()
        s = pipe.generate(labels, sampler=sampler, steps=n, seed=seed)
        seconds = time.perf_counter() - t0
        m = evaluate_samples(s.images, s.labels, judge, seed=seed)
        # FID - real-vs-real: notebook 06's headline measure, the same real images at the same n
        rows.append({"model": model, "sampler": sampler, "steps": n, "unet_passes": s.unet_passes,
                     "images_per_s": round(len(labels) / seconds, 1), "accuracy": m["accuracy"],
                     "fid": m["fid"], "fid_real_baseline": m["fid_real_baseline"],
                     "fid_minus_real": round(m["fid_minus_real"], 3), "n": m["n"]})
        if progress:
            r = rows[-1]
            print(f"{model}, {n} steps: {r['images_per_s']} images/s, accuracy {100 * r['accuracy']:.1f} %, "
                  f"FID - real-vs-real {r['fid_minus_real']:.3f}", flush=True)
    return rows


def rows_to_markdown(rows: list[dict]) -> str:
    """teacher_vs_student's rows as a Markdown table."""
    lines = ["| model | steps | UNet passes / image | images/s | accuracy | FID | FID − real-vs-real |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['model']} | {r['steps']} | {r['unet_passes']:g} | {r['images_per_s']:.1f} | "
              f"{100 * r['accuracy']:.1f} % | {r['fid']:.3f} | {r['fid_minus_real']:.3f} |" for r in rows]
    return "\n".join(lines)
