"""Benchmarks (not part of CI): the targets, the sampler/guidance table, and its plot.

    python benchmarks/benchmark.py targets          # training time, images/s, accuracy, FID ratio
    python benchmarks/benchmark.py table            # samplers x steps x guidance -> results.md + plot
    python benchmarks/benchmark.py guidance         # guidance scale x interval at the default sampler -> guidance.md
    python benchmarks/benchmark.py n-sweep          # FID, its baseline and their ratio against n -> fid_vs_n.md
    python benchmarks/benchmark.py distill          # teacher vs distilled student at 1-8 steps -> distill.md

Numbers are measured on the machine this runs on: every run prints it first (CPU model, ISA,
whether oneDNN's bf16 is fast, threads, device), and every .md/.json it writes records it.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import time
from pathlib import Path

import torch

from fmnist_ldm.config import NUM_CLASSES, setup_cpu
from fmnist_ldm.device import ENV_VAR, cpu_name, describe, fast_cpu_bf16, get_device, machine
from fmnist_ldm.metrics import evaluate_samples, load_judge
from fmnist_ldm.pipeline import DEFAULTS, MODEL_DIR, Pipeline
from fmnist_ldm.weights import read_weights

HERE = Path(__file__).resolve().parent
TARGETS = {"train_minutes": 60, "images_per_s": 200, "accuracy": 0.97, "fid_ratio": 1.5}
TARGET_N = 5000          # images the FID ratio is judged at (the default --n-per-class 500)


def machine_info(device=None) -> dict:
    """The machine a number was measured on (fmnist_ldm.device.machine: CPU model and ISA, torch,
    the device and its precision), with its parts as fields for the .json results."""
    device = get_device(device)
    return {"cpu": cpu_name(), "onednn_bf16_fast": fast_cpu_bf16(), "threads": torch.get_num_threads(),
            "device": describe(device), "torch": torch.__version__, "machine": machine(device)}


def machine_line(info: dict | None = None) -> str:
    """One line for the top of a run's output and of its .md results."""
    return (info or machine_info())["machine"]


def run(pipe, judge, n_per_class, sampler, steps, guidance, interval, classes=range(NUM_CLASSES), seed=0):
    labels = [c for c in classes for _ in range(n_per_class)]
    warm = labels[:20] if sampler == "ddpm" else labels[:500]     # DDPM always runs 1000 steps
    pipe.generate(warm, sampler, min(steps, 20), guidance, interval, seed=seed + 1)  # warm up
    t0 = time.perf_counter()
    s = pipe.generate(labels, sampler, steps, guidance, interval, seed=seed)
    dt = time.perf_counter() - t0
    return {"images_per_s": round(len(labels) / dt, 1), **evaluate_samples(s.images, s.labels, judge)}


def load(a):
    pipe = Pipeline.from_pretrained(a.model_dir, device=a.device)
    return (pipe.compile() if a.compile else pipe), load_judge(device=a.device)


def cmd_targets(a):
    pipe, judge = load(a)
    _, _, vae_meta = read_weights(Path(a.model_dir) / "vae.safetensors", "vae")
    _, _, unet_meta = read_weights(Path(a.model_dir) / "unet.safetensors", "unet")
    stages = {"vae": unet_meta["vae_seconds"], "encode": unet_meta["encode_seconds"],
              # the decoder-sharpening stage sits in the VAE file (added after the first weights shipped)
              "decoder_gan": vae_meta.get("decoder_gan_seconds", 0), "unet": unet_meta["unet_seconds"]}
    minutes = sum(stages.values()) / 60
    # files written by `train` record the machine; the shipped ones predate that for some stages
    timed_on = {"vae": vae_meta.get("machine", "not recorded"),
                "decoder_gan": vae_meta.get("decoder_gan_machine") or vae_meta.get("machine", "not recorded"),
                "unet": unet_meta.get("unet_machine") or unet_meta.get("machine", "not recorded")}
    one_machine = len(set(timed_on.values())) == 1 and "not recorded" not in timed_on.values()
    print("training stages (s):", {k: round(v) for k, v in stages.items()}, "| timed on:", timed_on)
    r = run(pipe, judge, a.n_per_class, DEFAULTS["sampler"], DEFAULTS["steps"], DEFAULTS["guidance"],
            DEFAULTS["guidance_interval"])
    train_row = "full training, VAE + decoder GAN + UNet (min)" + ("" if one_machine else ", machines mixed")
    # (name, value, op, target, judged): the FID ratio grows with n (see n-sweep), so only at TARGET_N
    rows = [(train_row, minutes, "<=", TARGETS["train_minutes"], True),
            (f"sampling, {DEFAULTS['steps']} steps (images/s, n={r['n']})", r["images_per_s"], ">=", TARGETS["images_per_s"], True),
            ("class accuracy (judge)", r["accuracy"], ">=", TARGETS["accuracy"], True),
            (f"FID / real-vs-real FID ({r['fid']:.3f} / {r['fid_real_baseline']:.3f})", r["fid_ratio"], "<=",
             TARGETS["fid_ratio"], r["n"] == TARGET_N)]
    print(f"# targets — {datetime.date.today()}, {machine_line()}, defaults {DEFAULTS}, compiled: {a.compile}")
    for name, value, op, target, judged in rows:
        ok = value <= target if op == "<=" else value >= target
        verdict = ("MET" if ok else "MISSED") if judged else f"not judged: the ratio depends on n, judged at n = {TARGET_N}"
        print(f"{name:62s} {value:10.3f}  target {op} {target:<6}  {verdict}")
    # The VAE's own floor: FID of its reconstructions of real train images, at the same n.
    from fmnist_ldm.data import load_fashion_mnist
    from fmnist_ldm.metrics import fid_kid
    g = torch.Generator().manual_seed(0)
    test, train = load_fashion_mnist("test")[0], load_fashion_mnist("train")[0]
    test, train = test[torch.randperm(len(test), generator=g)[:r["n"]]], train[torch.randperm(len(train), generator=g)[:r["n"]]]
    floor = fid_kid(test, pipe.reconstruct(train), judge)["fid"]
    print(f"{'(info) FID of VAE reconstructions / real-vs-real':62s} {floor / r['fid_real_baseline']:10.3f}  "
          f"({floor:.3f}: the best any latent model on this VAE can do)")
    print(json.dumps({**r, "machine_info": machine_info()}))


def cmd_table(a):
    pipe, judge = load(a)
    configs = [("ddpm", 1000)] + [("ddim", s) for s in (100, 50, 20, 10)] + [("dpmpp2m", s) for s in (20, 10, 5)]
    rows = []
    for sampler, steps in configs:
        for w in (1.0, 2.0, 3.0):
            n = a.ddpm_n_per_class if sampler == "ddpm" else a.n_per_class
            r = run(pipe, judge, n, sampler, steps, w, DEFAULTS["guidance_interval"])
            rows.append({"sampler": sampler, "steps": steps, "guidance": w, **r})
            print(json.dumps(rows[-1]), flush=True)
    unc = run(pipe, judge, a.n_per_class * NUM_CLASSES, DEFAULTS["sampler"], DEFAULTS["steps"], 1.0, None,
              classes=[NUM_CLASSES])
    rows.append({"sampler": DEFAULTS["sampler"] + " (unconditional)", "steps": DEFAULTS["steps"], "guidance": 1.0, **unc})
    print(json.dumps(rows[-1]), flush=True)
    write_table(rows, a)


# (scale, interval): no guidance, guidance at every step, and guidance only inside an interval
GUIDANCE_GRID = [(1.0, None), (1.5, None), (2.0, None), (2.0, (200, 800)), (3.0, (200, 800)),
                 (3.0, (300, 900)), (4.0, (250, 750)), (4.0, (300, 700)), (5.0, (300, 700))]


def cmd_guidance(a):
    """Where in t guidance helps: class accuracy against FID for each (scale, interval)."""
    pipe, judge = load(a)
    lines = [f"Measured {datetime.date.today()} on {machine_line()} with `python benchmarks/benchmark.py guidance "
             f"--n-per-class {a.n_per_class}` ({DEFAULTS['sampler']}, {DEFAULTS['steps']} steps).", "",
             "| guidance | interval (t) | n | FID | FID / real-vs-real | KID | accuracy | images/s |",
             "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for w, interval in GUIDANCE_GRID:
        r = run(pipe, judge, a.n_per_class, DEFAULTS["sampler"], DEFAULTS["steps"], w, interval)
        print(json.dumps({"guidance": w, "interval": interval, **r}), flush=True)
        lines.append(f"| {w:g} | {'all' if interval is None else list(interval)} | {r['n']} | {r['fid']:.3f} | "
                     f"{r['fid_ratio']:.2f} | {r['kid']:.4f} | {r['accuracy']:.3f} | {r['images_per_s']:.0f} |")
    (HERE / "guidance.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def cmd_n_sweep(a):
    """FID is biased by n, and differently for each pair of sets, so FID / real-vs-real depends on
    the n it is measured at. One set of 10,000 samples at the defaults (and the VAE's
    reconstructions of 10,000 train images), scored on nested subsets of growing n; FID_inf is
    the FID extrapolated to n = inf by a straight line in 1/n (Chong & Forsyth 2020)."""
    from fmnist_ldm.data import load_fashion_mnist
    from fmnist_ldm.metrics import fid_infinity, fid_over_n, judge_features
    pipe, judge = load(a)
    ns, n_max = [1000, 2000, 5000, 10000], 10000        # the test split has 10,000 images
    g = torch.Generator().manual_seed(0)
    test, train = load_fashion_mnist("test")[0], load_fashion_mnist("train")[0]
    test, train = test[torch.randperm(len(test), generator=g)], train[torch.randperm(len(train), generator=g)[:n_max]]
    s = pipe.generate([c for c in range(NUM_CLASSES) for _ in range(n_max // NUM_CLASSES)], seed=0)
    sets = {"samples (defaults)": s.images[torch.randperm(n_max, generator=g)],
            "VAE reconstructions": pipe.reconstruct(train),
            "real train (baseline)": train}
    test = judge_features(judge, test)                   # the judge runs once per set, not once per n
    fids = {name: fid_over_n(test, imgs, judge, ns) for name, imgs in sets.items()}
    for name, f in fids.items():
        print(json.dumps({"set": name, "n": ns, "fid": f}), flush=True)
    fid_inf = lambda f: fid_infinity(ns, f)
    base = fids["real train (baseline)"]
    lines = [f"Measured {datetime.date.today()} on {machine_line()} with `python benchmarks/benchmark.py n-sweep` "
             f"(defaults {DEFAULTS}; each set against the first n of the same shuffled 10,000 test images).", "",
             "| set | " + " | ".join(f"n = {n:,}" for n in ns) + " | FID_inf |",
             "|---|" + "---:|" * (len(ns) + 1)]
    for name, f in fids.items():
        lines.append(f"| {name}: FID | " + " | ".join(f"{v:.3f}" for v in f) + f" | {fid_inf(f):.3f} |")
        if name != "real train (baseline)":
            lines.append(f"| {name}: FID / real-vs-real | " + " | ".join(f"{v / b:.2f}" for v, b in zip(f, base)) + " | |")
            lines.append(f"| {name}: FID − real-vs-real | " + " | ".join(f"{v - b:.3f}" for v, b in zip(f, base))
                         + f" | {fid_inf(f) - fid_inf(base):.3f} |")
    (HERE / "fid_vs_n.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


# issue 16's targets for the distilled student at 4 steps, against the 20-step teacher in the same run
DISTILL_TARGETS = {"accuracy": 0.97, "fid_minus_real_vs_teacher": 1.25, "speed_vs_teacher": 4.0,
                   "accuracy_1_step": 0.95}


def cmd_distill(a):
    """The shipped teacher sampler and student at 1, 2, 4, 8 steps (and the teacher at 20), n images
    each, timed in this one run: -> distill.md / distill.json, and the targets, MET or MISSED."""
    from fmnist_ldm.distill import rows_to_markdown, teacher_vs_student
    pipe, judge = load(a)
    _, _, meta = read_weights(Path(a.model_dir) / "student.safetensors", "unet")
    rows = teacher_vs_student(pipe, judge, a.n_per_class)
    (HERE / "distill.json").write_text(json.dumps({"machine_info": machine_info(), "rows": rows}, indent=1))
    teacher = next(r for r in rows if r["model"] == "teacher" and r["steps"] == DEFAULTS["steps"])
    four, one = (next(r for r in rows if r["model"] == "student" and r["steps"] == n) for n in (4, 1))
    checks = [("student, 4 steps: class accuracy", four["accuracy"], ">=", DISTILL_TARGETS["accuracy"]),
              ("student, 4 steps: FID - real-vs-real / the teacher's (20 steps)",
               four["fid_minus_real"] / teacher["fid_minus_real"], "<=", DISTILL_TARGETS["fid_minus_real_vs_teacher"]),
              ("student, 4 steps: images/s / the teacher's (20 steps)",
               four["images_per_s"] / teacher["images_per_s"], ">=", DISTILL_TARGETS["speed_vs_teacher"]),
              ("student, 1 step: class accuracy (aim)", one["accuracy"], ">=", DISTILL_TARGETS["accuracy_1_step"])]
    verdicts = []
    for name, value, op, target in checks:
        ok = value <= target if op == "<=" else value >= target
        verdicts.append(f"| {name} | {value:.3f} | {op} {target} | {'MET' if ok else 'MISSED'} |")
        print(f"{name:66s} {value:8.3f}  target {op} {target:<5} {'MET' if ok else 'MISSED'}")
    how = meta["distilled"]["config"]              # the DistillConfig it was trained with
    trained = (f"Student: {how['runs']:,} teacher runs ({meta['collect_seconds'] / 60:.1f} min) and "
               f"{how['steps']:,} steps ({meta['distill_seconds'] / 60:.1f} min) on {meta['machine']}.")
    text = "\n".join([f"Measured {datetime.date.today()} on {machine_line()} with `python benchmarks/benchmark.py "
                      f"distill --n-per-class {a.n_per_class}{' --compile' if a.compile else ''}`: {teacher['n']:,} "
                      f"class-conditional images per row, the same seed, each row timed in this one run. Teacher: "
                      f"{DEFAULTS['sampler']}, guidance {DEFAULTS['guidance']:g} for t in "
                      f"[{DEFAULTS['guidance_interval'][0]}, {DEFAULTS['guidance_interval'][1]}]. {trained}", "",
                      rows_to_markdown(rows), "", "| target | value | | |", "|---|---:|---|---|", *verdicts])
    (HERE / "distill.md").write_text(text + "\n")
    print(text)


def write_table(rows, a, text: bool = True):
    lines = [f"Measured {datetime.date.today()} on {machine_line()} with "
             f"`python benchmarks/benchmark.py table --n-per-class {a.n_per_class} --ddpm-n-per-class {a.ddpm_n_per_class}"
             f"{' --compile' if a.compile else ''}` "
             f"(guidance interval {DEFAULTS['guidance_interval']}).", "",
             "| sampler | steps | guidance | n | FID | FID / real-vs-real | KID | accuracy | images/s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        acc = f"{r['accuracy']:.3f}" if "accuracy" in r else "—"
        lines.append(f"| {r['sampler']} | {r['steps']} | {r['guidance']:g} | {r['n']} | {r['fid']:.3f} | "
                     f"{r['fid_ratio']:.2f} | {r['kid']:.5f} | {acc} | {r['images_per_s']:.0f} |")
    if text:
        (HERE / "results.md").write_text("\n".join(lines) + "\n")
        (HERE / "results.json").write_text(json.dumps({"machine_info": machine_info(), "rows": rows}, indent=1))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for sampler, marker in (("ddim", "o"), ("dpmpp2m", "s"), ("ddpm", "^")):
        for w, color in ((1.0, "C0"), (2.0, "C1"), (3.0, "C2")):
            rs = [r for r in rows if r["sampler"] == sampler and r["guidance"] == w]
            if rs and sampler != "ddpm":     # DDPM's few images: FID bias swamps it, table only
                axes[0].plot([r["steps"] for r in rs], [r["fid_ratio"] for r in rs], marker=marker, color=color,
                             label=f"{sampler}, w={w:g}")
            if rs:
                axes[1].plot([r["images_per_s"] for r in rs], [r["accuracy"] for r in rs], marker=marker,
                             color=color, ls="none")
    axes[0].set(xscale="log", xlabel="sampler steps", ylabel="FID / real-vs-real FID",
                title="Quality against steps (lower is better; DDPM in the table)")
    axes[0].axhline(1.5, color="gray", ls="--", lw=1)
    axes[0].legend(fontsize=7, ncol=2)
    axes[1].set(xscale="log", xlabel="images per second (this CPU)", ylabel="class accuracy (judge)",
                title="Class accuracy against speed")
    axes[1].axhline(0.97, color="gray", ls="--", lw=1)
    fig.tight_layout()
    fig.savefig(HERE / "results.png", dpi=120)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", choices=["targets", "table", "guidance", "n-sweep", "distill", "plot"], help="plot: redraw from results.json")
    p.add_argument("--n-per-class", type=int, default=500, help="5000 images in all by default")
    p.add_argument("--ddpm-n-per-class", type=int, default=100, help="DDPM-1000 is slow: fewer images")
    p.add_argument("--model-dir", default=str(MODEL_DIR))
    p.add_argument("--compile", action="store_true", help="torch.compile the UNet (Pipeline.compile)")
    p.add_argument("--device", help="cpu, cuda, mps (default: $FMNIST_DEVICE, else the best one here)")
    a = p.parse_args()
    setup_cpu()
    if a.device:          # every Pipeline, judge and machine line below then uses it
        os.environ[ENV_VAR] = str(get_device(a.device))
    print(f"# machine: {machine_line()}", flush=True)
    if a.what == "plot":
        saved = json.loads((HERE / "results.json").read_text())   # {"machine_info", "rows"}, or older: rows
        return write_table(saved["rows"] if isinstance(saved, dict) else saved, a, text=False)
    {"targets": cmd_targets, "table": cmd_table, "guidance": cmd_guidance, "n-sweep": cmd_n_sweep, "distill": cmd_distill}[a.what](a)


if __name__ == "__main__":
    main()
