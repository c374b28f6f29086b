"""The shipped models as ONNX files, for the browser lab (lab/, `python -m fmnist_ldm lab`) and any
other runtime: `python -m fmnist_ldm export-onnx DIR`.

Five graphs, float32, fixed image shapes, the batch free (its axis is named "batch"):

  unet.onnx      x [B,4,7,7] (model space: the scaled latent), t [B] int64, y [B] int64 -> out [B,4,7,7]
                 the raw network output (v for the shipped model); guidance and the sampler's
                 step are outside, in the caller (lab/samplers.js), as in the library
  student.onnx   the distilled student, the same inputs and output
  decoder.onnx   z [B,4,7,7] in model space -> image [B,1,28,28] in [-1,1]: decode(z / scale), clamped
  encoder.onnx   image [B,1,28,28] in [-1,1] -> z [B,4,7,7] in model space: the posterior mean times scale
  judge.onnx     image [B,1,28,28] in [-1,1] -> probs [B,10]: the judge's softmax

The latent scale is inside the decoder and encoder graphs: the caller only ever sees the model
space the UNet diffuses, as with Pipeline.decode / Pipeline.encode. manifest.json beside them
says so (`latent_scale`, `latent_scale_in_graphs`) and carries what a sampler needs: the schedule's
alphas_cumprod, the sampling defaults (sampling.DEFAULTS), the student's teacher timesteps and
default steps, the class names, the shapes, and each file's sha256.

Exported by torch's TorchScript-based exporter (torch.onnx.export(..., dynamo=False)) at opset 17,
which ONNX Runtime Web's WASM backend runs whole: attention stays MatMul + Softmax
(scaled_dot_product_attention is lowered so), GroupNorm becomes Reshape + InstanceNormalization +
Reshape + Mul + Add (GroupNormalization only came in opset 18, and the WASM kernels lack it)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
import torch.nn as nn

OPSET = 17
MANIFEST = "manifest.json"
GRAPHS = ("unet", "student", "decoder", "encoder", "judge")
# ops the exported graphs may hold: all in ONNX Runtime Web's WASM (CPU) kernels
# (onnxruntime/docs/OperatorKernels.md, the CPUExecutionProvider, which the WASM build is)
WASM_OPS = {"Add", "Cast", "Concat", "Constant", "ConstantOfShape", "Conv", "Cos", "Div", "Exp", "Expand",
            "Flatten", "Gather", "Gemm", "Identity", "InstanceNormalization", "MatMul", "Max", "MaxPool", "Min",
            "Mul", "Relu", "Reshape", "Resize", "ReduceMean", "Shape", "Sigmoid", "Sin", "Slice", "Softmax",
            "Split", "Sqrt", "Sub", "Transpose", "Unsqueeze", "Clip", "Equal", "Where", "Range", "Squeeze",
            "BatchNormalization", "Mod", "Pow", "Neg", "GlobalAveragePool", "Erf", "Tanh", "Floor", "Ceil"}


class Decode(nn.Module):
    """Model-space latent -> image in [-1, 1], as Pipeline.decode: vae.decode(z / scale), clamped."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, z):
        return self.vae.from_model_space(z).clamp(-1, 1)


class Encode(nn.Module):
    """Image in [-1, 1] -> model-space latent, as Pipeline.encode: the posterior mean times scale."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, x):
        return self.vae.to_model_space(x)


class JudgeProbs(nn.Module):
    """Image in [-1, 1] -> the judge's class probabilities."""

    def __init__(self, judge):
        super().__init__()
        self.judge = judge

    def forward(self, x):
        return torch.softmax(self.judge(x), dim=-1)


def load_models(model_dir=None):
    """(modules by graph name, pipeline) from the shipped weights (or model_dir), float32, on the CPU."""
    from .metrics import load_judge
    from .pipeline import Pipeline
    pipe = Pipeline.from_pretrained(model_dir, device="cpu")
    vae = pipe.vae.float().eval().to(memory_format=torch.contiguous_format)
    unet = pipe.unet.float().eval().to(memory_format=torch.contiguous_format)
    student = pipe.student.float().eval().to(memory_format=torch.contiguous_format)
    judge = load_judge(pipe.model_dir / "judge.safetensors", device="cpu").float().eval()
    return {"unet": unet, "student": student, "decoder": Decode(vae).eval(), "encoder": Encode(vae).eval(),
            "judge": JudgeProbs(judge).eval()}, pipe


def example_inputs(name: str, shape, batch: int = 2, seed: int = 0) -> dict:
    """Inputs of graph `name` (by input name): a batch of noise, timesteps and classes, or images."""
    g = torch.Generator().manual_seed(seed)
    if name in ("unet", "student"):
        return {"x": torch.randn((batch, *shape), generator=g),
                "t": torch.randint(0, 1000, (batch,), generator=g),
                "y": torch.randint(0, 11, (batch,), generator=g)}
    if name == "decoder":
        return {"z": torch.randn((batch, *shape), generator=g)}
    return {"image": torch.rand((batch, 1, 28, 28), generator=g) * 2 - 1}


OUTPUTS = {"unet": "out", "student": "out", "decoder": "image", "encoder": "z", "judge": "probs"}


def export_graph(module, name: str, shape, path: Path) -> None:
    import warnings
    inputs = example_inputs(name, shape)
    names = list(inputs)
    with warnings.catch_warnings():     # the TorchScript exporter's deprecation and tracer notes
        warnings.simplefilter("ignore")
        torch.onnx.export(module, tuple(inputs.values()), str(path), dynamo=False, opset_version=OPSET,
                          input_names=names, output_names=[OUTPUTS[name]], do_constant_folding=True,
                          dynamic_axes={n: {0: "batch"} for n in names + [OUTPUTS[name]]})


def graph_ops(path) -> set:
    import onnx
    return {node.op_type for node in onnx.load(str(path)).graph.node}


def export_onnx(out_dir, model_dir=None) -> dict:
    """Write the five graphs and manifest.json into out_dir; returns the manifest."""
    from .config import CLASS_NAMES
    from .sampling import DEFAULTS
    from .samplers import SAMPLERS
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    modules, pipe = load_models(model_dir)
    shape = tuple(pipe.shape)
    files = {}
    with torch.no_grad():
        for name in GRAPHS:
            path = out_dir / f"{name}.onnx"
            export_graph(modules[name], name, shape, path)
            extra = graph_ops(path) - WASM_OPS
            if extra:
                raise RuntimeError(f"{path} holds ops outside the WASM set this exporter checks for: {sorted(extra)}")
            files[name] = {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                           "bytes": path.stat().st_size,
                           "inputs": {k: [None, *v.shape[1:]] for k, v in example_inputs(name, shape).items()},
                           "output": OUTPUTS[name]}
    manifest = {
        "format": 1,
        "opset": OPSET,
        "dtype": "float32",
        "latent_shape": list(shape),
        "image_shape": [1, 28, 28],
        "latent_scale": float(pipe.vae.scale),
        "latent_scale_in_graphs": True,    # decoder divides by it, encoder multiplies: callers stay in model space
        "prediction": pipe.cfg.prediction,
        "timesteps": pipe.schedule.T,
        "schedule": pipe.schedule.kind,
        "alphas_cumprod": [float(a) for a in pipe.schedule.alphas_cumprod],
        "num_classes": pipe.cfg.num_classes,
        "null_class": pipe.cfg.num_classes,
        "class_names": list(CLASS_NAMES),
        "defaults": {"sampler": DEFAULTS["sampler"], "steps": DEFAULTS["steps"], "guidance": DEFAULTS["guidance"],
                     "guidance_interval": list(DEFAULTS["guidance_interval"]),
                     "distilled_steps": SAMPLERS["distilled"].default_steps},
        "student_teacher_timesteps": list(pipe.student_timesteps),
        "graphs": files,
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest
