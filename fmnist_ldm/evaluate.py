"""`python -m fmnist_ldm evaluate` and `train-judge`: the CLI side of fmnist_ldm.metrics (whose
check_sample_count says how many samples an FID needs)."""
from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from .config import NUM_CLASSES
from .metrics import FewSamplesWarning, check_sample_count


def read_samples(path) -> tuple[torch.Tensor, torch.Tensor]:
    """The .npz that `sample` writes: exactly `images` (uint8 N x 28 x 28) and `labels` (int64 N,
    0-9, or 10 for unconditional). Anything else is a ValueError saying what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"samples file {path} does not exist: write one with "
                         "`python -m fmnist_ldm sample --out FILE.npz`")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as e:
        raise ValueError(f"{path} is not a readable .npz file ({type(e).__name__}: {e})") from None
    if set(arrays) != {"images", "labels"}:
        raise ValueError(f"{path} holds arrays {sorted(arrays)}; expected exactly 'images' and 'labels'")
    images, labels = arrays["images"], arrays["labels"]
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"'images' must be uint8 of shape (N, 28, 28), not {images.dtype} {images.shape}")
    if labels.dtype != np.int64 or labels.shape != (len(images),):
        raise ValueError(f"'labels' must be int64 of shape ({len(images)},), not {labels.dtype} {labels.shape}")
    if len(images) == 0:
        raise ValueError(f"{path} holds no images")
    if labels.min() < 0 or labels.max() > NUM_CLASSES:
        raise ValueError(f"'labels' must lie in 0-{NUM_CLASSES - 1} (or {NUM_CLASSES} for unconditional samples)")
    return torch.from_numpy(images), torch.from_numpy(labels)


def cmd_evaluate(a):
    from .metrics import evaluate_samples, load_judge
    samples = read_samples(a.samples) if a.samples else None
    # refuse too few images before loading anything or sampling; warn in one line, once
    if note := check_sample_count(len(samples[0]) if samples else 10 * a.n_per_class, warn=False):
        print(f"warning: {note}", file=sys.stderr)
    judge = load_judge(a.judge, a.device)
    if samples:
        images, labels = samples
    else:
        from .pipeline import Pipeline
        pipe = Pipeline.from_pretrained(a.model_dir, device=a.device)
        s = pipe.generate([c for c in range(NUM_CLASSES) for _ in range(a.n_per_class)], seed=a.seed)
        images, labels = s.images, s.labels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FewSamplesWarning)     # already said above
        out = evaluate_samples(images, labels, judge, seed=a.seed)
    print(json.dumps(out))


def cmd_train_judge(a):
    from .config import Config
    from .metrics import train_judge
    from .weights import save_weights
    judge, acc = train_judge(a.epochs, a.seed, device=a.device)
    save_weights(judge, a.out, "judge", Config(), test_accuracy=acc, epochs=a.epochs)
    print(json.dumps({"out": a.out, "test_accuracy": acc}))


def add_parsers(sub, positive_int, model_dir, judge_file):
    e = sub.add_parser("evaluate", help="FID/KID, class accuracy of samples (JSON on stdout)")
    e.add_argument("--samples", help=".npz from `sample` (default: sample the shipped weights now)")
    e.add_argument("--n-per-class", type=positive_int, default=500, help="when sampling now")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--model-dir", default=str(model_dir))
    e.add_argument("--judge", default=str(judge_file))
    e.set_defaults(func=cmd_evaluate)
    j = sub.add_parser("train-judge", help="train the Fashion-MNIST classifier the metrics use")
    j.add_argument("--epochs", type=positive_int, default=8)
    j.add_argument("--seed", type=int, default=0)
    j.add_argument("--out", default=str(judge_file))
    j.set_defaults(func=cmd_train_judge)
