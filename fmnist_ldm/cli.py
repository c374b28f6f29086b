"""python -m fmnist_ldm train | sample | distill | evaluate | train-judge | figures | export-onnx | lab

Bad input ends with one line `error: ...` saying what to do, and exit code 2."""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from pathlib import Path

from . import checks
from .config import NUM_CLASSES, preset, setup_cpu
from .data import CLASS_NAMES, DataNotFoundError, parse_class
from .device import get_device
from .samplers import SAMPLERS
from .sampling import DEFAULTS
from .weights import MODEL_DIR, WeightsError


class UsageError(Exception):
    pass


def _positive_int(s):
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a whole number") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {v}")
    return v


def _guidance(s):
    try:
        w = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a number") from None
    if not (math.isfinite(w) and w >= 0):
        raise argparse.ArgumentTypeError(f"must be a number >= 0 (1 = no guidance, 0 = unconditional), not {s}")
    return w


def _interval(s):
    if s.lower() == "none":
        return "none"             # every step; None stays "not given" until _check_args
    try:
        lo, hi = (int(v) for v in s.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not LO,HI (two timesteps) or 'none'") from None
    if lo < 0:
        raise argparse.ArgumentTypeError(f"timesteps start at 0, not {lo}")
    if lo > hi:
        raise argparse.ArgumentTypeError(f"LO must not exceed HI, as in 300,700; not {s}")
    return lo, hi              # HI < the model's T is checked in cmd_sample, once T is known


# sample and evaluate hold every image (and its starting noise) in memory, and a grid is one
# row per class: beyond these, ask for another run (another --seed) rather than run out of memory.
# 100,000 is twice the 50,000 images FID is usually computed on.
MAX_IMAGES = 100_000
MAX_GRID_PER_CLASS = 100


def _check_count(n_per_class, n_classes, out=None):
    n = n_per_class * n_classes
    if n > MAX_IMAGES:
        raise UsageError(f"--n-per-class {n_per_class} makes {n:,} images: at most {MAX_IMAGES:,} in one run "
                         "(they are all held in memory); for more, run again with another --seed")
    if out is not None and out.suffix == ".png" and n_per_class > MAX_GRID_PER_CLASS:
        raise UsageError(f"--n-per-class {n_per_class}: a .png grid takes at most {MAX_GRID_PER_CLASS} per class "
                         "(one row per class); write .npz for more")


def _check_args(a):
    """Every path a command will write or read, and every size, checked before it starts work:
    a bad --out found only after a whole sampling or training run would waste the run."""
    if getattr(a, "seed", None) is not None and not 0 <= a.seed <= checks.MAX_SEED:
        raise UsageError(f"argument --seed: must be a whole number from 0 to 2**63 - 1, not {a.seed}")
    if a.command == "sample":
        spec = SAMPLERS[a.sampler]
        if not spec.guided and (a.guidance is not None or a.guidance_interval is not None):
            raise UsageError(f"--guidance and --guidance-interval do not apply to --sampler {a.sampler}: the student "
                             f"learned the default guidance ({DEFAULTS['guidance']:g} for t in "
                             "[%d, %d]); use dpmpp2m or ddim to guide otherwise" % DEFAULTS["guidance_interval"])
        if a.negative is not None:
            try:
                a.negative = parse_class(a.negative, allow_null=True)
            except ValueError as e:
                raise UsageError(f"argument --negative: {e}") from None
            if a.negative == NUM_CLASSES:         # away from the null class: plain guidance
                a.negative = None
        if not spec.guided and a.negative is not None:
            raise UsageError(f"--negative does not apply to --sampler {a.sampler} (its guidance is folded in); "
                             "use dpmpp2m or ddim")
        a.steps = a.steps or spec.default_steps or DEFAULTS["steps"]
        a.guidance = DEFAULTS["guidance"] if a.guidance is None else a.guidance
        if a.guidance_interval is None:
            a.guidance_interval = DEFAULTS["guidance_interval"]
        elif a.guidance_interval == "none":
            a.guidance_interval = None
        out = Path(a.out)
        checks.out_file(out, "--out", (".png", ".npz"), "samples.png")
        _check_count(a.n_per_class, 10 if a.cls == "all" else 1, out)
    elif a.command == "figures":
        checks.out_dir(Path(a.out_dir), "--out-dir")
    elif a.command == "train":
        checks.out_dir(Path(a.out_dir or preset(a.preset).out_dir), "--out-dir")
    elif a.command == "distill":
        from .distill import distill_preset
        checks.out_dir(Path(a.out_dir or distill_preset(a.preset).out_dir), "--out-dir")
    elif a.command == "export-onnx":
        checks.out_dir(Path(a.dir), "DIR")
    elif a.command == "lab" and a.build is not None:
        checks.out_dir(Path(a.build), "--build")
    elif a.command == "train-judge":
        checks.out_file(Path(a.out), "--out", (".safetensors",), "judge.safetensors")
    elif a.command == "evaluate" and a.samples:
        samples = Path(a.samples)
        if samples.is_dir():
            raise UsageError(f"--samples {samples} is a folder, not a .npz file from `sample --out FILE.npz`")
        if not samples.exists():
            raise UsageError(f"--samples {samples} does not exist: write one with "
                             "`python -m fmnist_ldm sample --out FILE.npz`")
    elif a.command == "evaluate":
        _check_count(a.n_per_class, 10)


def cmd_sample(a):
    out = Path(a.out)                       # checked in _check_args
    try:
        classes = list(range(NUM_CLASSES)) if a.cls == "all" else [parse_class(a.cls, allow_null=True)]
    except ValueError as e:
        raise UsageError(str(e)) from None
    from .pipeline import Pipeline
    pipe = Pipeline.from_pretrained(a.model_dir, device=a.device)
    T = pipe.schedule.T                   # known once the model is loaded; checked before sampling
    most, why = pipe.sampler(a.sampler).step_range()     # the student's loads here: a missing one is said
    if a.steps > most:
        raise UsageError(f"argument --steps: must be 1 to {most}{why}, not {a.steps}")
    if a.guidance_interval and a.guidance_interval[1] >= T:
        raise UsageError(f"argument --guidance-interval: this model's timesteps are 0 to {T - 1}, "
                         f"not {a.guidance_interval[0]},{a.guidance_interval[1]}")
    if a.compile:
        pipe.compile()
    labels = [c for c in classes for _ in range(a.n_per_class)]
    t0 = time.perf_counter()
    s = pipe.generate(labels, a.sampler, a.steps, a.guidance, a.guidance_interval, a.seed,
                      progress=len(labels) >= 2000, negative=a.negative)
    dt = time.perf_counter() - t0
    if out.suffix == ".npz":
        import numpy as np
        np.savez_compressed(out, images=s.images.numpy(), labels=s.labels.numpy())
    else:
        from .course.figures import save_class_grid
        save_class_grid(s.images, s.labels, out, ncol=a.n_per_class)
    print(f"wrote {len(labels)} images to {out} ({dt:.1f} s, {len(labels) / dt:.3g} images/s; "
          f"{_what_ran(a, s, classes)})")


def _what_ran(a, s, classes) -> str:
    """Sampler, steps taken and UNet passes per image, as counted during the run (Samples)."""
    steps = f"{s.steps} steps"
    if a.steps != s.steps:
        steps += f" ({a.sampler} takes every timestep; --steps does not apply)"
    guided = s.unet_passes - s.steps                     # a guided step runs the UNet twice
    if not SAMPLERS[a.sampler].guided:
        how = "no guidance (unconditional)" if classes == [NUM_CLASSES] else \
            "guidance %g for t in [%d, %d] folded into the student" % (DEFAULTS["guidance"], *DEFAULTS["guidance_interval"])
    elif guided == 0:
        why = "unconditional" if classes == [NUM_CLASSES] else "scale 1" if a.guidance == 1 else "outside the interval"
        how = f"no guidance ({why})"
    else:
        lo_hi = a.guidance_interval
        how = f"guidance {a.guidance:g} on {guided:g} of the {s.steps} steps" + (
            f", t in [{lo_hi[0]}, {lo_hi[1]}]" if lo_hi else "") + (
            f", away from {CLASS_NAMES[a.negative]!r}" if a.negative is not None else "")
    return f"{a.sampler}, {steps}, {s.unet_passes:g} UNet passes per image: {how}"


def cmd_train(a):
    default = preset(a.preset)
    cfg = preset(a.preset, seed=a.seed, out_dir=a.out_dir or default.out_dir, data_dir=a.data_dir,
                 space=a.space, latent_channels=a.latent_channels or default.latent_channels)
    from .train import train_all
    t0 = time.perf_counter()
    timings = train_all(cfg, device=a.device)
    print(json.dumps({"out_dir": cfg.out_dir, "wall_seconds": round(time.perf_counter() - t0, 1),
                      **{k: round(v, 1) for k, v in timings.items()}}))


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (plus where to look), exit code 2."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # let "--guidance-interval -5,300" reach its check instead of reading as an unknown option
        self._negative_number_matcher = re.compile(r"^-\d+$|^-\d*\.\d+$|^-\d+,-?\d+$")

    def error(self, message):
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def cmd_distill(a):
    from .distill import distill_preset, train_student
    from .pipeline import Pipeline
    default = distill_preset(a.preset)
    cfg = distill_preset(a.preset, out_dir=a.out_dir or default.out_dir, seed=a.seed,
                         runs=a.runs or default.runs, steps=a.train_steps or default.steps)
    pipe = Pipeline.from_pretrained(a.model_dir, device=a.device)
    t0 = time.perf_counter()
    _, _, timings = train_student(pipe, cfg, a.device)
    print(json.dumps({"student": str(Path(cfg.out_dir) / "student.safetensors"),
                      "wall_seconds": round(time.perf_counter() - t0, 1),
                      **{k: round(v, 1) for k, v in timings.items()}}))


def cmd_figures(a):
    from .pipeline import Pipeline
    from .course.figures import make_figures
    written = make_figures(Pipeline.from_pretrained(a.model_dir, device=a.device), a.out_dir, a.seed)
    print(f"wrote {len(written)} files to {a.out_dir}")


def _add_train(sub):
    t = sub.add_parser("train", help="train the VAE and the UNet (resumes from checkpoints)")
    t.add_argument("--preset", choices=["fast", "full"], default="full")
    t.add_argument("--out-dir", help="where checkpoints and weights go (default runs/<preset>)")
    t.add_argument("--data-dir", help="folder with the Fashion-MNIST IDX files")
    t.add_argument("--space", choices=["latent", "pixel"], default="latent")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--latent-channels", type=_positive_int,
                   help="C of the VAE's C x 7 x 7 latent (default 4; the model card measures 8)")
    t.set_defaults(func=cmd_train)


def _add_sample(sub):
    s = sub.add_parser("sample", help="generate images from trained weights")
    s.add_argument("--class", dest="cls", default="all",
                   help="class name or index 0-9, 'all' (default) or 'none' (unconditional); "
                        "classes: " + ", ".join(CLASS_NAMES))
    s.add_argument("--n-per-class", type=_positive_int, default=8)
    s.add_argument("--steps", type=_positive_int,
                   help=f"sampler steps (default {DEFAULTS['steps']}; {SAMPLERS['distilled'].default_steps} for distilled)")
    s.add_argument("--sampler", choices=SAMPLERS, default=DEFAULTS["sampler"],
                   help="dpmpp2m (default), ddim, ddpm (all 1000 steps), or distilled: the few-step student "
                        "with the default guidance folded in")
    s.add_argument("--guidance", type=_guidance,
                   help=f"classifier-free guidance scale (default {DEFAULTS['guidance']:g}; 1 = none)")
    s.add_argument("--guidance-interval", type=_interval,
                   help="LO,HI: guide only for timesteps in [LO, HI], or 'none' for every step "
                        "(default %d,%d)" % DEFAULTS["guidance_interval"])
    s.add_argument("--negative", help="a class to guide away from (a negative prompt), e.g. --class Shirt "
                                      "--negative T-shirt; default: none (plain classifier-free guidance)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--compile", action="store_true",
                   help="torch.compile the UNet: ~1.5x faster for thousands of images, 20-40 s to start")
    s.add_argument("--out", default="samples.png", help=".png (labelled grid) or .npz (images, labels)")
    s.add_argument("--model-dir", default=str(MODEL_DIR))
    s.set_defaults(func=cmd_sample)


def _add_distill(sub):
    d = sub.add_parser("distill", help="distil the guided 20-step sampler into a few-step student (resumes)")
    d.add_argument("--preset", choices=["fast", "full"], default="full")
    d.add_argument("--out-dir", help="where teacher runs, checkpoints and student.safetensors go "
                                     "(default runs/distill or runs/distill-fast)")
    d.add_argument("--model-dir", default=str(MODEL_DIR), help="the teacher: a folder with unet and vae weights")
    d.add_argument("--runs", type=_positive_int, help="teacher runs to learn from (default: the preset's)")
    d.add_argument("--train-steps", type=_positive_int, help="the student's optimiser steps (default: the preset's)")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=cmd_distill)


def _add_figures(sub):
    f = sub.add_parser("figures", help="regenerate assets/: sample grid, GIFs, denoising paths")
    f.add_argument("--out-dir", default=str(MODEL_DIR.parent / "assets"))
    f.add_argument("--model-dir", default=str(MODEL_DIR))
    f.add_argument("--seed", type=int, default=0)
    f.set_defaults(func=cmd_figures)


def parser() -> OneLineParser:
    """The command line: one sub-command each for train, sample, distill, figures, export-onnx, lab,
    evaluate, train-judge."""
    from .evaluate import add_parsers
    from .lab_cli import add_parsers as add_lab_parsers
    p = OneLineParser(prog="python -m fmnist_ldm", description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=_positive_int, help="CPU threads (default: all cores)")
    sub = p.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for add in (_add_train, _add_sample, _add_distill, _add_figures):
        add(sub)
    add_parsers(sub, _positive_int, MODEL_DIR, MODEL_DIR / "judge.safetensors")
    add_lab_parsers(sub, MODEL_DIR)
    for command in sub.choices.values():
        command.add_argument("--device", help="cpu, cuda, cuda:N, mps or auto (default: $FMNIST_DEVICE, "
                                              "else cuda, then mps, then cpu)")
    return p


def main(argv=None):
    a = parser().parse_args(argv)
    setup_cpu(a.threads)
    try:
        a.device = get_device(a.device)
        _check_args(a)
        a.func(a)
    except (UsageError, WeightsError, DataNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
