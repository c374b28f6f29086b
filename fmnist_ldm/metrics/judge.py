"""The judge: training it, loading it, and what it says about images (their classes, and the 256
penultimate features every other metric is computed in)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..classifier import Judge
from ..data import load_fashion_mnist, to_model_range
from ..device import get_device
from ..train import fit
from ..weights import MODEL_DIR, load_model

JUDGE_FILE = MODEL_DIR / "judge.safetensors"


def train_judge(epochs: int = 8, seed: int = 0, data_dir=None, batch_size: int = 128, device=None):
    """Adam (AdamW without weight decay) with a one-cycle learning rate peaking at 3e-3 (Smith &
    Topin 2019), on the real training set with random shifts of up to 2 pixels, through the
    library's training loop (train.fit), with no EMA; returns (judge, test accuracy).
    The shipped judge was trained with the same recipe by a loop with other random draws (one
    generator for both batch order and shifts), so this does not remake it bit for bit."""
    torch.manual_seed(seed)
    device = get_device(device)
    images, labels = load_fashion_mnist("train", data_dir)
    x, labels = to_model_range(images).to(device), labels.to(device)    # on the device once
    judge = Judge()

    def loss(idx, gen):
        # the shift is drawn on the CPU: reading a GPU draw (.tolist()) would wait for the GPU every step
        dx, dy = torch.randint(-2, 3, (2,), generator=torch.Generator().manual_seed(gen.initial_seed())).tolist()
        xb = torch.roll(F.pad(x[idx], (2, 2, 2, 2), value=-1), (dy, dx), (2, 3))[..., 2:30, 2:30]
        return F.cross_entropy(judge(xb).float(), labels[idx])
    one_cycle = lambda opt, total: torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=total)
    judge, _ = fit(judge, loss, len(x), batch_size, 1e-3, epochs=epochs, seed=seed, lr_schedule=one_cycle,
                   bf16=True, desc="judge", device=device)
    test_x, test_y = load_fashion_mnist("test", data_dir)
    return judge, class_accuracy(judge, test_x, test_y)["accuracy"]


def load_judge(path=JUDGE_FILE, device=None) -> Judge:
    """The judge from its weights file (weights.load_model's one-line WeightsError if it is not one),
    in eval mode, on `device`."""
    judge, _ = load_model(path, "judge")
    return judge.to(get_device(device))


@torch.no_grad()
def predict(judge: Judge, images_uint8, batch: int = 2000) -> torch.Tensor:
    device = next(judge.parameters()).device
    return torch.cat([judge(to_model_range(images_uint8[i:i + batch].to(device))).argmax(1).cpu()
                      for i in range(0, len(images_uint8), batch)])


def class_accuracy(judge, images_uint8, labels) -> dict:
    """Fraction of images the judge assigns to the class they were asked for, overall and per class."""
    pred, labels = predict(judge, images_uint8), torch.as_tensor(labels)
    hit = (pred == labels).float()
    per_class = {int(c): round(hit[labels == c].mean().item(), 4) for c in labels.unique()}
    return {"accuracy": round(hit.mean().item(), 4), "per_class_accuracy": per_class}


@torch.no_grad()
def judge_features(judge, images_uint8, batch: int = 2000) -> torch.Tensor:
    """The judge's 256 penultimate features of uint8 images (the space FID, KID and
    precision/recall are computed in), float64 on the CPU."""
    judge, images_uint8 = judge.eval(), torch.as_tensor(images_uint8)
    device = next(judge.parameters()).device
    # float32 on the device (MPS has no float64), float64 for the statistics on the CPU
    return torch.cat([judge.features(to_model_range(images_uint8[i:i + batch].to(device, torch.uint8))).float().cpu()
                      for i in range(0, len(images_uint8), batch)]).double()
