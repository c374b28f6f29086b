"""Where the work runs, in one place: the device, its precision, and noise that a seed fixes.

Policy: an explicit `device=` argument (or the CLI's --device), else the FMNIST_DEVICE
environment variable, else CUDA, then Apple MPS, then the CPU. Everything that creates a tensor
or a model asks `get_device`; nothing hard-codes "cpu" or "cuda". An NVIDIA GPU that torch
cannot use (a driver older than the torch build needs) is said in one line, not passed over.

Precision per device (the weights stay float32; autocast runs the matmuls and convolutions
in lower precision where that is fast and safe):
  CUDA  bfloat16 at compute capability >= 8.0 (A100, H100, L4, RTX 30xx on), where it runs in
        hardware; float16 with a gradient scaler below (T4, V100): torch reports bf16 as
        "supported" there too, but emulates it, slowly, and float16's narrow range needs the
        scaler so that small gradients do not underflow;
  MPS   float32;
  CPU   bfloat16 only with native bf16 instructions (AVX-512 bf16 or AMX), else float32:
        without them bf16 is emulated and measured 7x *slower* than float32 on an AVX2 EPYC.
FMNIST_AMP=bf16|fp16|fp32 overrides the choice on any device (fp32: to rule precision out when
a run goes NaN; fp16 on the CPU: to exercise the T4's float16 + scaler path without a GPU).
"""
from __future__ import annotations

import contextlib
import functools
import os
import platform
import shutil
import sys

import torch

ENV_VAR = "FMNIST_DEVICE"
DEVICE_TYPES = ("cpu", "cuda", "mps")        # what fmnist_ldm runs on (tests add "meta")
AMP_VAR = "FMNIST_AMP"
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}


class DeviceError(ValueError):
    pass


class NonFiniteError(ValueError):
    """A run produced NaN or inf (an overflow in float16, a diverged training, an absurd guidance
    scale): said where it first appeared, instead of writing black images or NaN weights."""


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def get_device(device: str | torch.device | None = None) -> torch.device:
    """`device`, else $FMNIST_DEVICE, else the best one here: cuda, then mps, then cpu.
    Asking for a device that is not here is one clear DeviceError, not a CUDA traceback later."""
    if isinstance(device, torch.device):
        name, source = str(device), "device"
    else:
        name, source = (device, "device") if device else (os.environ.get(ENV_VAR), ENV_VAR)
    if not name or name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        _say_unusable_gpu()
        return torch.device("mps" if _mps_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"{source} {name!r} is not a device: use cpu, cuda, cuda:N, mps or auto") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = unusable_gpu() or "no CUDA GPU is visible to torch here"
            raise DeviceError(f"{source} {name!r}: {why}; "
                              "use --device cpu (or auto), or a machine with a GPU and a CUDA build of torch")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"{source} {name!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif dev.type == "mps" and not _mps_available():
        raise DeviceError(f"{source} {name!r}: Apple's MPS backend is not available here; use --device cpu")
    elif dev.type not in DEVICE_TYPES:
        raise DeviceError(f"{source} {name!r}: fmnist_ldm runs on cpu, cuda or mps, not {dev.type}")
    return dev


def unusable_gpu() -> str | None:
    """Why an NVIDIA GPU that is here (nvidia-smi exists) goes unused by torch, or None. The
    usual cause: this torch's CUDA build needs a newer driver than the machine has."""
    if torch.cuda.is_available() or shutil.which("nvidia-smi") is None:
        return None
    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU-only build"
    return (f"an NVIDIA GPU is here (nvidia-smi), but torch {torch.__version__} ({build}) cannot use it: "
            "most likely the NVIDIA driver is older than this build needs (compare `nvidia-smi`'s "
            "'CUDA Version' with it) or torch is a CPU build; install the torch wheel for your driver "
            "(pytorch.org, 'Get started'), e.g. pip install torch --index-url "
            "https://download.pytorch.org/whl/cu126")


@functools.cache
def _say_unusable_gpu() -> None:
    """Said once per process, on stderr, when the automatic choice falls back to the CPU."""
    if why := unusable_gpu():
        print(f"fmnist_ldm: running on the CPU: {why}", file=sys.stderr)


def _cpu_flags() -> set:
    if not os.path.exists("/proc/cpuinfo"):
        return set()
    with open("/proc/cpuinfo") as f:
        return set(next((l.split(":", 1)[1].split() for l in f if l.startswith("flags")), []))


@functools.cache
def fast_cpu_bf16() -> bool:
    """Whether this CPU runs bfloat16 natively: AVX-512 bf16 or AMX, not merely AVX-512 (oneDNN's
    own check, _is_mkldnn_bf16_supported, says yes on any AVX-512 CPU, where bf16 is emulated).
    FMNIST_BF16=1 or 0 overrides the check."""
    env = os.environ.get("FMNIST_BF16")
    if env is not None:
        return env.strip().lower() in ("1", "true", "yes")
    try:
        native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    except AttributeError:              # an older torch: read the flags ourselves
        native = bool(_cpu_flags() & {"avx512_bf16", "amx_bf16"})
    try:
        return bool(native and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cuda_capability(device: torch.device) -> tuple[int, int]:
    return torch.cuda.get_device_capability(device)


def amp_dtype(device: torch.device, enabled: bool = True) -> torch.dtype | None:
    """The autocast dtype for `device` (see the module docstring), or None for plain float32."""
    if not enabled:
        return None
    forced = os.environ.get(AMP_VAR, "").strip().lower()
    if forced:
        if forced not in AMP_DTYPES:
            raise DeviceError(f"{AMP_VAR}={forced!r}: use bf16, fp16 or fp32")
        return AMP_DTYPES[forced]
    if device.type == "cuda":
        # not torch.cuda.is_bf16_supported(): it is True below 8.0 too, where bf16 is emulated
        return torch.bfloat16 if cuda_capability(device) >= (8, 0) else torch.float16
    if device.type == "cpu" and fast_cpu_bf16():
        return torch.bfloat16
    return None


def precision(device: torch.device, enabled: bool = True) -> str:
    """'bfloat16', 'float16' or 'float32': what the forward passes run in on `device`."""
    return str(amp_dtype(device, enabled) or torch.float32).removeprefix("torch.")


def autocast(device: torch.device, enabled: bool = True):
    """Mixed precision on `device` where it is fast, a no-op context elsewhere."""
    dtype = amp_dtype(device, enabled)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler(device: torch.device, enabled: bool = True) -> torch.amp.GradScaler:
    """Loss scaling, needed only where autocast runs in float16 (a GPU without bf16)."""
    return torch.amp.GradScaler(device.type, enabled=amp_dtype(device, enabled) == torch.float16)


def generator(device: torch.device, seed: int) -> torch.Generator:
    """A generator on `device` seeded with `seed`: torch's random functions take only a generator
    of the device they draw on ("Expected a 'cuda' device type for generator")."""
    return torch.Generator(device).manual_seed(seed)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a clock read after it times the work itself
    (CUDA and MPS run asynchronously; the CPU needs nothing)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def describe(device: torch.device, enabled: bool = True) -> str:
    """'cuda (NVIDIA T4, float16 autocast)', 'cpu (8 threads, float32)', ... for printing."""
    dtype = precision(device, enabled)
    how = f"{dtype} autocast" if dtype != "float32" else dtype
    if device.type == "cuda":
        where = "%s, compute capability %d.%d" % (torch.cuda.get_device_name(device), *cuda_capability(device))
    elif device.type == "cpu":
        where = f"{torch.get_num_threads()} threads"
    else:
        where = "Apple GPU"
    return f"{device.type} ({where}, {how})"


def cpu_name() -> str:
    """CPU model and the instruction set that matters for speed here (AVX-512, AVX2 or neither)."""
    name, flags = platform.processor() or platform.machine(), _cpu_flags()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            name = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), name)
    if "avx512f" in flags:
        isa = "AVX-512" + (" bf16" if "avx512_bf16" in flags else "") + (" + AMX" if "amx_bf16" in flags else "")
    else:
        isa = "AVX2" if "avx2" in flags else f"no AVX2 ({platform.machine()})"
    return f"{name}, {isa}"


def machine(device: torch.device | None = None, enabled: bool = True) -> str:
    """What a timing was taken on: the CPU, its ISA, threads, torch, and the device with its
    precision. Quoted beside every time this project prints or records."""
    device = device or torch.device("cpu")
    return f"{cpu_name()}, torch {torch.__version__}, {describe(device, enabled)}"


def image_seed(seed: int, index: int) -> int:
    """A seed for image `index` of a run seeded `seed`: distinct (seed, index) pairs get
    independent streams (numpy's SeedSequence hashes the pair), so an image's noise does not
    depend on which batch, or how large a batch, it was drawn in."""
    import numpy as np
    return int(np.random.SeedSequence([seed % 2**63, index]).generate_state(1, np.uint64)[0] >> 1)


def randn(shape, seed: int | torch.Generator, device: torch.device) -> torch.Tensor:
    """Standard normal noise drawn on the CPU, then moved: one seed gives the same numbers on
    every device (as diffusers does it: CUDA's and the CPU's generators differ)."""
    gen = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen).to(device)


class PerImageNoise:
    """Noise for the stochastic samplers' steps (DDPM, DDIM with eta > 0): image i draws from its
    own CPU generator seeded by image_seed(seed, i), so a seed gives the same pictures whatever
    the batch size, and on every device."""

    def __init__(self, seed: int, indices):
        self.generators = [torch.Generator().manual_seed(image_seed(seed, int(i))) for i in indices]

    def __call__(self, like: torch.Tensor) -> torch.Tensor:
        noise = torch.stack([torch.randn(like.shape[1:], generator=g) for g in self.generators])
        return noise.to(like.device, like.dtype)
