"""The ONNX export (fmnist_ldm/export.py, `python -m fmnist_ldm export-onnx DIR`): each graph run by
onnxruntime (Python, CPU) gives what the torch model gives, within 1e-4, at more than one batch
size; the graphs hold only ops ONNX Runtime Web's WASM backend runs; the manifest says what a
sampler in another language needs."""
import json

import numpy as np
import pytest
import torch

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from fmnist_ldm import cli  # noqa: E402
from fmnist_ldm.export import GRAPHS, MANIFEST, OUTPUTS, WASM_OPS, example_inputs, graph_ops, load_models  # noqa: E402


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The graphs, beside the torch modules and the pipeline, all in float32: the pipeline uses
    bf16 autocast on a CPU with native bf16, which would be compared instead."""
    mp = pytest.MonkeyPatch()
    mp.setenv("FMNIST_AMP", "fp32")
    out = tmp_path_factory.mktemp("onnx")
    cli.main(["export-onnx", str(out)])              # the command the README gives
    manifest = json.loads((out / MANIFEST).read_text())
    modules, pipe = load_models()
    yield out, manifest, modules, pipe
    mp.undo()


@pytest.mark.parametrize("name", GRAPHS)
@pytest.mark.parametrize("batch", [1, 5])
def test_graph_matches_torch(exported, name, batch):
    out, manifest, modules, pipe = exported
    session = ort.InferenceSession(str(out / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    inputs = example_inputs(name, pipe.shape, batch=batch, seed=batch)
    got = session.run([OUTPUTS[name]], {k: v.numpy() for k, v in inputs.items()})[0]
    with torch.no_grad():
        want = modules[name](*inputs.values()).float().numpy()
    assert got.shape == want.shape and got.dtype == np.float32
    assert np.abs(got - want).max() <= 1e-4, f"{name}: {np.abs(got - want).max():.2e} apart"


def test_graphs_are_what_the_pipeline_runs(exported):
    """decoder/encoder are Pipeline.decode/encode (the latent scale inside), unet is the pipeline's UNet."""
    out, manifest, modules, pipe = exported
    z = torch.randn(3, *pipe.shape, generator=torch.Generator().manual_seed(3))
    dec = ort.InferenceSession(str(out / "decoder.onnx"), providers=["CPUExecutionProvider"])
    images = dec.run(None, {"z": z.numpy()})[0]
    assert np.abs(images - pipe.decode(z).numpy()).max() <= 1e-4
    enc = ort.InferenceSession(str(out / "encoder.onnx"), providers=["CPUExecutionProvider"])
    assert np.abs(enc.run(None, {"image": images})[0] - pipe.encode(torch.from_numpy(images)).numpy()).max() <= 1e-4


def test_only_wasm_ops_and_attention_as_matmul_softmax(exported):
    out, manifest, modules, pipe = exported
    for name in GRAPHS:
        ops = graph_ops(out / f"{name}.onnx")
        assert ops <= WASM_OPS, (name, ops - WASM_OPS)
        assert "GroupNormalization" not in ops and "Attention" not in ops
    assert {"MatMul", "Softmax", "InstanceNormalization"} <= graph_ops(out / "unet.onnx")


def test_manifest(exported):
    out, manifest, modules, pipe = exported
    assert manifest["latent_scale"] == pytest.approx(float(pipe.vae.scale)) and manifest["latent_scale_in_graphs"]
    assert np.allclose(manifest["alphas_cumprod"], pipe.schedule.alphas_cumprod.numpy(), rtol=0, atol=1e-15)
    assert manifest["defaults"]["sampler"] == "dpmpp2m" and manifest["defaults"]["guidance_interval"] == [300, 700]
    assert manifest["student_teacher_timesteps"] == list(pipe.student_timesteps)
    assert len(manifest["class_names"]) == 10 and manifest["latent_shape"] == [4, 7, 7]
    assert set(manifest["graphs"]) == set(GRAPHS)
