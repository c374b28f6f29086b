"""Weights on disk: safetensors files (they load without executing code) that carry their
model's config as metadata, so a file alone rebuilds its model.

A latent UNet only works with the VAE whose latents it was trained on: a VAE from another run
decodes its samples into blurred, blocky images. So every VAE file carries `vae_id`, a hash of
its tensors, the UNet file records the `vae_id` of its VAE, and `load_pair` refuses a mismatch."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .classifier import Judge
from .config import Config
from .files import atomic_write
from .unet import UNet
from .vae import VAE


class WeightsError(ValueError):
    pass


def _model_dir() -> Path:
    """The shipped weights: model/ beside the package in a checkout (or an editable install),
    fmnist_ldm/model/ inside an installed wheel, which carries them as package data."""
    here = Path(__file__).resolve().parent
    return next((d for d in (here.parent / "model", here / "model") if (d / "unet.safetensors").is_file()),
                here.parent / "model")


MODEL_DIR = _model_dir()


def build_vae(cfg: Config, stage: str = "final") -> VAE:
    """stage "vae": as the VAE stage trains it; "final": as exported, i.e. with the decoder the GAN
    stage deepened (if that stage runs)."""
    blocks = cfg.vae_gan_decoder_blocks if stage == "final" and cfg.vae_gan_epochs else 1
    return VAE(cfg.vae_channels, cfg.latent_channels, blocks)


def build_unet(cfg: Config) -> UNet:
    return UNet(cfg.sample_shape[0], cfg.unet_channels, cfg.unet_blocks, cfg.unet_attention,
                cfg.num_classes, cfg.conditioning, cfg.class_tokens)


def build_judge(cfg: Config) -> Judge:
    """The judge has one shape: its file carries a Config only because every weights file does."""
    return Judge()


BUILDERS = {"vae": build_vae, "unet": build_unet, "judge": build_judge}     # kind -> model from its Config


def weights_id(state: dict) -> str:
    """A short hash of a state dict's names, shapes and float32 bytes (what save_weights writes),
    so that the same tensors give the same id in memory and on disk."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().float().contiguous().cpu()
        h.update(f"{name}\0{tuple(t.shape)}\0".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]       # 64 bits: plenty to tell training runs apart


def save_weights(model: torch.nn.Module, path, kind: str, cfg: Config, **extra) -> str:
    """Write atomically (files.atomic_write): a crash never leaves half a file. Returns the
    weights_id of what was written; a VAE file also stores it as `vae_id`. A latent UNet should be
    given `vae_id=` of the VAE it was trained on, so that load_pair can check the two belong together."""
    tensors = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
    own_id = weights_id(tensors)
    if kind == "vae":
        extra = {**extra, "vae_id": own_id}
    meta = {"kind": kind, "config": cfg.to_json(), **{k: json.dumps(v) for k, v in extra.items()}}

    def write(tmp):
        save_file(tensors, str(tmp), metadata=meta)
        os.chmod(tmp, 0o644)           # safetensors writes 0600; weights are meant to be shared
    atomic_write(path, write)
    return own_id


def read_weights(path, kind: str):
    """(state_dict, Config, extra metadata) of a file written by save_weights for `kind`.
    Anything else (no file, another format or kind, a missing or broken config, NaN or inf in a
    tensor) is a one-line WeightsError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist: train with `python -m fmnist_ldm "
                           "train` or point --model-dir at the folder holding the shipped weights")
    try:
        from safetensors import safe_open
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{path} is not a safetensors weights file ({e})") from None
    if meta.get("kind") != kind:
        raise WeightsError(f"{path} holds {meta.get('kind') or 'foreign'} weights, not {kind} weights "
                           "written by fmnist_ldm")
    cfg = _config(path, meta)
    extra = {}
    for k, v in meta.items():
        if k not in ("kind", "config"):
            try:
                extra[k] = json.loads(v)
            except json.JSONDecodeError as e:
                raise WeightsError(f"{path}: metadata entry {k!r} is not valid JSON ({e}); the file was "
                                   "edited or damaged after it was written") from None
    for name, t in state.items():
        # NaN/inf (e.g. from a diverged run) would only show up as black images after sampling
        if t.is_floating_point() and not (finite := torch.isfinite(t)).all():
            raise WeightsError(f"{path}: tensor {name!r} holds NaN or inf ({(~finite).sum().item()} of "
                               f"{t.numel()} values): these weights are broken (did training diverge?); "
                               "retrain, or restore the file (the shipped ones: git checkout model/)")
    return state, cfg, extra


def _config(path: Path, meta: dict) -> Config:
    """The Config stored in a file's metadata, or a WeightsError saying why there is none."""
    if "config" not in meta:
        raise WeightsError(f"{path} has no config in its metadata, so its model cannot be rebuilt: "
                           "it was not written by fmnist_ldm's save_weights (or its metadata was stripped); use the file "
                           "that `python -m fmnist_ldm train` wrote, or the shipped one")
    try:
        return Config.from_dict(json.loads(meta["config"]))
    except json.JSONDecodeError as e:
        raise WeightsError(f"{path}: the config in its metadata is not valid JSON ({e}); the file was "
                           "edited or damaged after it was written") from None
    except (ValueError, TypeError, AttributeError) as e:
        raise WeightsError(f"{path}: its config does not fit this version of fmnist_ldm ({e}); was it "
                           "written by another version?") from None


def load_model(path, kind: str):
    """Rebuild the model of kind 'vae', 'unet' or 'judge' from its file; returns (model in eval
    mode, cfg)."""
    model, cfg, _ = _load(path, kind)
    return model, cfg


def _load(path, kind: str):
    """(model in eval mode, cfg, extra metadata); a file whose tensors do not fit the model is a
    one-line WeightsError."""
    state, cfg, extra = read_weights(path, kind)
    model = BUILDERS[kind](cfg)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        what = "the judge network" if kind == "judge" else f"the {kind} its config describes"
        raise WeightsError(f"{path} does not fit {what}: {str(e)[:200]}") from None
    return model.eval(), cfg, extra


# Config fields that shape the VAE's latent space (the UNet's config records those of its VAE).
# The decoder-GAN stage's fields are not among them: it leaves encoder, latents and scale alone.
_LATENT_SHAPE = ("latent_channels", "vae_channels")
_LATENT_RUN = ("seed", "vae_kl_weight", "vae_epochs", "vae_batch_size", "vae_lr")


def load_pair(model_dir, unet_file: str = "unet.safetensors", vae_file: str = "vae.safetensors"):
    """(unet, cfg, vae) from a model folder; vae is None for a pixel-space UNet. Refuses, in one
    line naming both files, a VAE that is not the one the UNet was trained on."""
    model_dir = Path(model_dir)
    unet_path, vae_path = model_dir / unet_file, model_dir / vae_file
    unet, cfg, unet_extra = _load(unet_path, "unet")
    if cfg.space != "latent":
        return unet, cfg, None
    vae, vae_cfg, _ = _load(vae_path, "vae")
    check_pair(unet_path, cfg, unet_extra.get("vae_id"), vae_path, vae_cfg, weights_id(vae.state_dict()))
    return unet, cfg, vae


def check_pair(unet_path, unet_cfg: Config, unet_vae_id: str | None, vae_path, vae_cfg: Config,
               vae_id: str) -> None:
    """The latent shapes must agree; then the VAE id the UNet recorded must be the VAE's. A UNet
    file written before ids existed records none: then the configs' latent fields must agree."""
    differ = lambda fields: [f"{f} {getattr(unet_cfg, f)} in the UNet's config, {getattr(vae_cfg, f)} in the VAE's"
                             for f in fields if getattr(unet_cfg, f) != getattr(vae_cfg, f)]
    fix = (f"put the vae.safetensors written by the UNet's own training run (its out_dir was "
           f"{unet_cfg.out_dir}) beside it, or retrain")
    if shape := differ(_LATENT_SHAPE):
        raise WeightsError(f"{unet_path} and {vae_path} do not belong together: {'; '.join(shape)} "
                           f"(the UNet was trained on another VAE's latents); {fix}")
    if unet_vae_id is not None:
        if unet_vae_id != vae_id:
            raise WeightsError(f"{unet_path} was trained on the latents of VAE {unet_vae_id}, but {vae_path} "
                               f"is VAE {vae_id}, from another training run: its images would come out "
                               f"blurred and blocky; {fix}")
    elif run := differ(_LATENT_RUN):
        raise WeightsError(f"{unet_path} and {vae_path} come from different training runs: {'; '.join(run)} "
                           f"(the UNet file records no VAE id, so only the configs could be compared); {fix}")


def load_student(path, vae=None):
    """(student UNet, the teacher's timesteps it learned) from a file that distill.train_student
    wrote; refuses, in one line, a student whose latents are not `vae`'s."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"no distilled student at {path}: distil one with `python -m fmnist_ldm distill` "
                           "(or use the shipped model/ folder, which has one)")
    student, cfg, extra = _load(path, "unet")
    if "distilled" not in extra:
        raise WeightsError(f"{path} is a UNet but not a distilled student (its metadata has no 'distilled' entry)")
    if vae is not None and extra.get("vae_id") != (vae_id := weights_id(vae.state_dict())):
        raise WeightsError(f"{path} was distilled on the latents of VAE {extra.get('vae_id')}, but the VAE "
                           f"beside it is {vae_id}: put the student distilled from this folder's UNet beside it")
    return student, extra["distilled"]["teacher_timesteps"]
