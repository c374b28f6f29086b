"""The notebooks never mix devices, on any machine, because they never touch one.

A notebook makes CPU tensors only: no code cell names a device other than the CPU, moves a tensor
(`.to(pipe.device)`, `.cuda()`) or asks where one lives (`.device`). The library takes it from
there: a Pipeline (on the best device) is used through its methods, which take and give CPU
tensors (tests/test_on_device.py checks that on a device that is not the CPU), and training
functions move their data themselves and hand back CPU models. What a notebook calls directly
(a UNet, a VAE, a student, a judge) therefore has to be on the CPU: such modules may be taken only
from a pipeline or judge made with device="cpu" (or trained by the library, which returns CPU
models). A cell that broke either rule would crash on a student's GPU (notebook 04 once did:
CPU noise fed to latents that the encoding left on the GPU); this test finds it on a CPU.
"""
import ast
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("0*.py"))
MODULES = {"unet", "vae", "student"}          # a pipeline's modules: direct calls need their device


def code_cells(path):
    cells, current, kind = [], [], None
    for line in path.read_text().splitlines():
        if line.startswith("# %%"):
            if kind == "code":
                cells.append("\n".join(current))
            current, kind = [], "markdown" if "[markdown]" in line else "code"
        elif kind == "code":
            current.append(line)
    if kind == "code":
        cells.append("\n".join(current))
    return cells[1:]                          # the first is the setup cell (tests/test_colab.py)


def _is_cpu(node):
    return isinstance(node, ast.Constant) and node.value == "cpu"


def _on_cpu(call):
    """A call with device="cpu" (or no device argument where the callee is not device-aware)."""
    return any(k.arg == "device" and _is_cpu(k.value) for k in call.keywords)


def problems(source: str) -> list[str]:
    tree, found = ast.parse(source), []
    device_objects = set()       # names bound to a Pipeline or judge on the best device (not the CPU)
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, (ast.Call, ast.Tuple)):
            targets = node.targets[0].elts if isinstance(node.targets[0], ast.Tuple) else node.targets
            values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value] * len(targets)
            for target, value in zip(targets, values):
                if isinstance(target, ast.Name) and isinstance(value, ast.Call):
                    name = ast.unparse(value.func)
                    if name in ("Pipeline.from_pretrained", "Pipeline", "load_judge") and not _on_cpu(value):
                        device_objects.add(target.id)
    for node in ast.walk(tree):
        line = f"line {getattr(node, 'lineno', '?')}: {ast.unparse(node)[:80]}"
        if isinstance(node, ast.keyword) and node.arg == "device" and not _is_cpu(node.value):
            found.append(f"{line} (a device other than the CPU)")
        elif isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.device" and \
                not (node.args and _is_cpu(node.args[0])):
            found.append(f"{line} (a device other than the CPU)")
        elif isinstance(node, ast.Attribute) and node.attr in ("device", "cuda", "mps") and \
                ast.unparse(node) not in ("torch.cuda", "torch.cuda.is_available", "torch.device"):
            found.append(f"{line} (asks for or moves to a device)")
        elif isinstance(node, ast.Name) and node.id == "device":
            found.append(f"{line} (a device variable)")
        elif isinstance(node, ast.Constant) and node.value in ("cuda", "mps"):
            found.append(f"{line} (names a device)")
        elif isinstance(node, ast.Attribute) and node.attr in MODULES and isinstance(node.value, ast.Name) \
                and node.value.id in device_objects:
            found.append(f"{line} ({node.value.id} is on the best device: call its CPU-in, CPU-out methods, "
                         f"or take the module from a Pipeline.from_pretrained(device=\"cpu\"))")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in device_objects:
            found.append(f"{line} ({node.func.id} is on the best device: use metrics.predict / judge_features)")
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_make_only_cpu_tensors(path):
    found = [f"{path.name}, cell {i + 2}, {p}" for i, cell in enumerate(code_cells(path)) for p in problems(cell)]
    assert not found, "\n".join(found)


def test_the_check_catches_what_broke_on_a_gpu():
    """Notebook 04 before the fix, and the other ways a cell can mix devices."""
    assert problems("out = net(z.to(device), t.to(device), y.to(device)).float().cpu()")
    assert problems("x = torch.randn(2, 4, generator=g).to(pipe.device)")
    assert problems("y = torch.tensor([6, 7], device=pipe.device)")
    assert problems("pipe = Pipeline.from_pretrained()\nv = pipe.unet(z, t, y)")
    assert problems("pipe, judge = Pipeline.from_pretrained(), load_judge()\nlogits = judge(x)")
    assert problems("x = x.cuda()")
    assert problems("d = torch.device('cuda')")
    assert not problems("pipe = Pipeline.from_pretrained(device='cpu')\nv = pipe.unet(z, t, y)")
    assert not problems("pipe = Pipeline.from_pretrained()\ns = pipe.generate([3])\nz = pipe.encode(x)")
    assert not problems("if not torch.cuda.is_available(): print('no GPU')")
