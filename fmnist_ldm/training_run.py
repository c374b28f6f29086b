"""What fit keeps between optimiser steps, so that a run stopped at any moment resumes exactly:
its data order (`batches`: a function of (seed, step), not of how often the process restarted)
and its state (`TrainingRun`: the trained parts, step, losses and time, the checkpoint file that
holds them, and the checks that stop a run whose loss or weights went NaN or inf)."""
from __future__ import annotations

import math
from pathlib import Path

import torch

from .device import NonFiniteError, generator, precision
from .files import atomic_save


def _tuples(v):
    return tuple(v) if isinstance(v, list) else v


def batches(n_items: int, batch_size: int, seed: int, start: int, total: int, device):
    """(indices, generator) of steps start, ..., total - 1: epoch e visits the items in the order
    randperm(seed, e), drawn on the CPU (the same order on every device) and moved to `device` once
    an epoch; step s's generator, on `device`, is seeded by (seed, s)."""
    steps_per_epoch, order_epoch, order = n_items // batch_size, None, None
    for step in range(start, total):
        epoch, i = divmod(step, steps_per_epoch)
        if epoch != order_epoch:
            order_epoch = epoch
            order = torch.randperm(n_items, generator=torch.Generator().manual_seed(seed * 10_007 + epoch)).to(device)
        yield order[i * batch_size:(i + 1) * batch_size], generator(device, seed * 1_000_003 + step)


class TrainingRun:
    """What fit keeps between steps: the trained parts (model, optimiser, LR schedule, and the EMA
    and loss scaler where they are used), the step, the per-step losses and the training time, and
    the checkpoint file that holds them all. Losses stay on the device until read_losses reads them
    all at once; a NaN or inf loss, or weights that went NaN or inf, stop the run (NonFiniteError)."""

    def __init__(self, parts: dict, ckpt_path: Path | None, fingerprint: dict, desc: str, total: int,
                 device: torch.device, bf16: bool):
        self.parts, self.ckpt_path, self.fingerprint = parts, ckpt_path, fingerprint
        self.desc, self.total, self.device, self.dtype = desc, total, device, precision(device, bf16)
        self.step, self.history, self.elapsed = 0, [], 0.0
        self.pending = []                           # losses still on the device

    def resume(self) -> None:
        """Continue from the checkpoint if there is one; refuse one written for another fingerprint."""
        if self.ckpt_path is None or not self.ckpt_path.exists():
            return
        ck = torch.load(self.ckpt_path, map_location=self.device, weights_only=True)
        # compare only the fields the checkpoint knows: fields added to Config since did not exist then
        changed = [k for k, v in self.fingerprint.items() if k in ck["config"] and _tuples(ck["config"][k]) != v]
        if changed:
            raise ValueError(f"{self.ckpt_path} was written with another config ({', '.join(sorted(changed))} "
                             "differ); delete it or use another out_dir to start afresh")
        for name, obj in self.parts.items():
            # across precisions: a checkpoint written without loss scaling (CPU, bf16) starts the
            # scaler afresh; one written under fp16 keeps a scaler state that is then not read
            if name == "scaler" and name not in ck:
                continue
            obj.load_state_dict(ck[name])
        self.step, self.history, self.elapsed = ck["step"], ck["history"], ck["elapsed"]

    def save(self) -> None:
        """Read the losses and check the weights, then write the checkpoint (atomically)."""
        self.read_losses()
        self.check_weights()
        atomic_save({**{name: obj.state_dict() for name, obj in self.parts.items()}, "step": self.step,
                     "history": self.history, "elapsed": self.elapsed, "config": self.fingerprint}, self.ckpt_path)

    def read_losses(self) -> None:
        """Move the pending losses into the history: one copy, one wait for the device."""
        if self.pending:
            losses = torch.stack(self.pending).float().cpu().tolist()
            first = self.step - len(losses) + 1
            for i, v in enumerate(losses):
                if not math.isfinite(v):
                    self.stop(f"the loss became {v}", first + i)
            self.history.extend(losses)
        self.pending.clear()

    def check_weights(self) -> None:
        """One wait for the device: at each checkpoint, and at the end."""
        ema = self.parts.get("ema")
        weights = [*self.parts["model"].parameters(), *([] if ema is None else ema.parameters())]
        if not torch.stack([torch.isfinite(w.detach()).all() for w in weights]).all():
            self.stop("the weights became NaN or inf", self.step)

    def stop(self, what: str, at: int):
        kept = f"{self.ckpt_path} is kept as it was" if self.ckpt_path is not None and self.ckpt_path.exists() \
            else "nothing was saved"
        other = f"FMNIST_AMP=fp32 to rule out {self.dtype}" if self.dtype != "float32" else "another seed"
        raise NonFiniteError(f"{self.desc}: {what} at step {at} of {self.total} ({self.dtype} on "
                             f"{self.device.type}); {kept}. Try a lower learning rate, or {other}")
