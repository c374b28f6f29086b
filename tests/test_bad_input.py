"""A sweep of bad and unusual input (issues 17 and 18). The command line answers each with ONE
line `error: ...` on stderr and exit code 2, before any work; the Python API with a ValueError
whose message starts with the argument's name. Never a traceback from inside torch."""
import numpy as np
import pytest
import torch

import fmnist_ldm.metrics
import fmnist_ldm.train
import fmnist_ldm.course.figures
from fmnist_ldm.cli import main
from fmnist_ldm.pipeline import Pipeline



def _forbidden(*args, **kwargs):
    raise AssertionError("work started before the input was checked")


@pytest.fixture
def paths(tmp_path, tiny_model_dir):
    """Placeholders of the CLI cases: a model, a file, a folder whose name looks like an output."""
    (tmp_path / "file.txt").write_text("not a folder")
    (tmp_path / "taken.png").mkdir()
    return {"tmp": tmp_path, "model": tiny_model_dir, "file": tmp_path / "file.txt", "dir": tmp_path / "taken.png"}


# (what, argv, what the one line says, the work that must not have started: "load" = loading
# weights, training or evaluating; "sample" = any UNet call, for checks that need the model's T)
SAMPLE_CASES = [
    ("steps 0", ["--steps", "0"], "argument --steps: must be at least 1, not 0", "load"),
    ("steps 2.5", ["--steps", "2.5"], "argument --steps: '2.5' is not a whole number", "load"),
    ("steps 1001", ["--steps", "1001"], "argument --steps: must be 1 to 1000 (this model has 1000 timesteps), not 1001", "sample"),
    ("ddim steps 1001", ["--sampler", "ddim", "--steps", "1001"], "1 to 1000 (this model has 1000 timesteps), not 1001", "sample"),
    ("ddpm steps 1001", ["--sampler", "ddpm", "--steps", "1001"], "1 to 1000 (this model has 1000 timesteps), not 1001", "sample"),
    ("unknown sampler", ["--sampler", "euler"], "argument --sampler: invalid choice: 'euler'", "load"),
    ("guidance -1", ["--guidance", "-1"], "argument --guidance: must be a number >= 0", "load"),
    ("guidance nan", ["--guidance", "nan"], "argument --guidance: must be a number >= 0", "load"),
    ("guidance inf", ["--guidance", "inf"], "argument --guidance: must be a number >= 0", "load"),
    ("guidance text", ["--guidance", "lots"], "argument --guidance: 'lots' is not a number", "load"),
    ("interval reversed", ["--guidance-interval", "700,300"], "LO must not exceed HI", "load"),
    ("interval negative", ["--guidance-interval", "-5,300"], "timesteps start at 0", "load"),
    ("interval beyond T", ["--guidance-interval", "300,1000"], "this model's timesteps are 0 to 999, not 300,1000", "sample"),
    ("interval one number", ["--guidance-interval", "300"], "'300' is not LO,HI", "load"),
    ("n-per-class 0", ["--n-per-class", "0"], "argument --n-per-class: must be at least 1", "load"),
    ("n-per-class huge", ["--n-per-class", "10000000", "--out", "{tmp}/s.npz"],
     "100,000,000 images: at most 100,000 in one run", "load"),
    ("n-per-class 101 in a grid", ["--n-per-class", "101"], "a .png grid takes at most 100 per class", "load"),
    ("class 11", ["--class", "11"], "unknown class '11'", "load"),
    ("class -1", ["--class", "-1"], "unknown class '-1'", "load"),
    ("class sock", ["--class", "sock"], "unknown class 'sock'", "load"),
    ("seed -1", ["--seed", "-1"], "argument --seed: must be a whole number from 0 to 2**63 - 1", "load"),
    ("seed 2**64", ["--seed", str(2**64)], "argument --seed: must be a whole number from 0 to 2**63 - 1", "load"),
    ("out is a folder", ["--out", "{dir}"], "taken.png is a folder: give a file name", "load"),
    ("out under a file", ["--out", "{file}/s.png"], "file.txt is a file, not a folder", "load"),
    ("out in a missing folder", ["--out", "{tmp}/nope/s.png"], "folder", "load"),
    ("out where no file can be made", ["--out", "/proc/s.png"], "cannot write /proc/s.png", "load"),
    ("out .jpg", ["--out", "{tmp}/s.jpg"], "--out must end in .png or .npz, not 's.jpg'", "load"),
    ("out without suffix", ["--out", "{tmp}/samples"], "--out must end in .png or .npz", "load"),
]
OTHER_CASES = [
    ("threads 0", ["--threads", "0", "sample"], "argument --threads: must be at least 1", "load"),
    ("unknown command", ["paint"], "invalid choice: 'paint'", "load"),
    ("figures out-dir is a file", ["figures", "--out-dir", "{file}"], "file.txt is a file, not a folder", "load"),
    ("figures out-dir under a file", ["figures", "--out-dir", "{file}/assets"], "file.txt is a file", "load"),
    ("train out-dir is a file", ["train", "--preset", "fast", "--out-dir", "{file}"],
     "file.txt is a file, not a folder", "load"),
    ("train seed -1", ["train", "--seed", "-1"], "argument --seed: must be a whole number", "load"),
    ("evaluate samples missing", ["evaluate", "--samples", "{tmp}/missing.npz"], "missing.npz does not exist", "load"),
    ("evaluate samples a folder", ["evaluate", "--samples", "{dir}"], "taken.png is a folder", "load"),
    ("evaluate n-per-class huge", ["evaluate", "--n-per-class", "20000"],
     "200,000 images: at most 100,000 in one run", "load"),
    ("evaluate seed huge", ["evaluate", "--seed", str(2**63)], "argument --seed: must be a whole number", "load"),
    ("train-judge out is a folder", ["train-judge", "--out", "{dir}"], "taken.png is a folder", "load"),
    ("train-judge out .pt", ["train-judge", "--out", "{tmp}/judge.pt"], "must end in .safetensors", "load"),
]


def _one_line_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and err.endswith("\n"), err
    return err


def _forbid_work(monkeypatch, stage):
    if stage == "load":
        monkeypatch.setattr(Pipeline, "from_pretrained", classmethod(_forbidden))
        for module, name in [(fmnist_ldm.train, "train_all"), (fmnist_ldm.metrics, "load_judge"),
                             (fmnist_ldm.metrics, "train_judge"), (fmnist_ldm.course.figures, "make_figures")]:
            monkeypatch.setattr(module, name, _forbidden)
    monkeypatch.setattr(Pipeline, "_model", _forbidden)          # no UNet call in any case


@pytest.mark.parametrize("what,args,needle,stage", SAMPLE_CASES, ids=[c[0] for c in SAMPLE_CASES])
def test_sample_refuses_in_one_line_before_any_work(monkeypatch, capsys, paths, what, args, needle, stage):
    _forbid_work(monkeypatch, stage)
    argv = ["sample", "--model-dir", "{model}", "--out", "{tmp}/s.png", *args]
    err = _one_line_exit_2(capsys, [a.format(**paths) for a in argv])
    assert needle in err, err


@pytest.mark.parametrize("what,args,needle,stage", OTHER_CASES, ids=[c[0] for c in OTHER_CASES])
def test_other_commands_refuse_in_one_line_before_any_work(monkeypatch, capsys, paths, what, args, needle, stage):
    _forbid_work(monkeypatch, stage)
    err = _one_line_exit_2(capsys, [a.format(**paths) for a in args])
    assert needle in err, err


def test_evaluate_a_junk_samples_file_is_one_line(capsys, tmp_path):
    (tmp_path / "junk.npz").write_text("junk")
    assert "is not a readable .npz file" in _one_line_exit_2(capsys, ["evaluate", "--samples", str(tmp_path / "junk.npz")])


@pytest.fixture
def cheap_cli(monkeypatch, cheap_pipe):
    """`sample` through the cheap pipeline, so that 1,000-step runs take a second."""
    monkeypatch.setattr(Pipeline, "from_pretrained", classmethod(lambda cls, *a, **k: cheap_pipe))

    def run(capsys, tmp_path, *args):
        main(["sample", "--class", "Bag", "--n-per-class", "1", "--out", str(tmp_path / "s.npz"), *args])
        with np.load(tmp_path / "s.npz") as f:
            assert f["images"].shape == (1, 28, 28)
        return capsys.readouterr().out
    return run


@pytest.mark.parametrize("args,needle", [
    (["--steps", "1"], "dpmpp2m, 1 steps"),
    (["--sampler", "ddim", "--steps", "1000"], "ddim, 1000 steps"),
    (["--sampler", "ddim", "--steps", "61"], "ddim, 61 steps"),
    (["--guidance", "0"], "guidance 0 on 8 of the 20 steps"),     # w = 0: the unconditional output
    (["--seed", str(2**63 - 1)], "dpmpp2m, 20 steps"),
])
def test_sample_accepts_unusual_but_valid_input(cheap_cli, capsys, tmp_path, args, needle):
    assert needle in cheap_cli(capsys, tmp_path, *args)


# --- the Python API --------------------------------------------------------------------------

API_CASES = [
    ("labels", dict(labels=[11])),
    ("labels", dict(labels=[-1])),
    ("labels", dict(labels=[])),
    ("labels", dict(labels=[3.7])),                           # refused, not truncated to 3
    ("labels", dict(labels=torch.tensor([3.0]))),
    ("labels", dict(labels=[True])),
    ("labels", dict(labels=["sock"])),
    ("labels", dict(labels=[[1, 2], [3, 4]])),
    ("batch_size", dict(batch_size=0)),
    ("batch_size", dict(batch_size=2.5)),
    ("steps", dict(steps=2.5)),
    ("steps", dict(steps=0)),
    ("steps", dict(steps=1001)),
    ("steps", dict(sampler="ddpm", steps=1001)),
    ("steps", dict(steps=20, t_start=9)),                     # 10 timesteps from t = 9 down
    ("guidance", dict(guidance=float("nan"))),
    ("guidance", dict(guidance=float("inf"))),
    ("guidance", dict(guidance=-1.0)),
    ("guidance", dict(guidance="5")),
    ("guidance_interval", dict(guidance_interval=(700, 300))),
    ("guidance_interval", dict(guidance_interval=(0, 1000))),
    ("guidance_interval", dict(guidance_interval=(1, 2, 3))),
    ("guidance_interval", dict(guidance_interval=(300.5, 700))),
    ("sampler", dict(sampler="foo")),
    ("eta", dict(sampler="ddim", eta=-1)),
    ("eta", dict(sampler="ddim", eta=float("nan"))),
    ("seed", dict(seed="a")),
    ("seed", dict(seed=-1)),
    ("seed", dict(seed=2**64)),
    ("seed", dict(seed=1.5)),
    ("t_start", dict(t_start=1000)),
    ("t_start", dict(t_start=-1)),
    ("t_start", dict(t_start=2.5)),
    ("x_start", dict(x_start=[[0.0]])),
]


@pytest.mark.parametrize("name,kwargs", API_CASES, ids=[f"{n}={list(k.values())[-1]!r}"[:40] for n, k in API_CASES])
def test_generate_refuses_with_a_value_error_naming_the_argument(monkeypatch, cheap_pipe, name, kwargs):
    monkeypatch.setattr(Pipeline, "_model", _forbidden)
    labels = kwargs.pop("labels", [3])
    with pytest.raises(ValueError) as e:
        cheap_pipe.generate(labels, **kwargs)
    assert str(e.value).startswith(name), str(e.value)


def test_generate_refuses_an_x_start_of_the_wrong_shape_or_with_nans(monkeypatch, cheap_pipe):
    monkeypatch.setattr(Pipeline, "_model", _forbidden)
    c, h, w = cheap_pipe.shape
    for bad in (torch.zeros(1, c + 1, h, w), torch.zeros(2, c, h, w), torch.zeros(c, h, w),
                torch.full((1, c, h, w), float("nan")), torch.zeros(1, c, h, w, dtype=torch.long)):
        with pytest.raises(ValueError, match="^x_start"):
            cheap_pipe.generate([3], x_start=bad, t_start=500)


def test_generate_takes_class_names_and_numpy_or_torch_integers(cheap_pipe):
    ref = cheap_pipe.generate([7, 10, 0], steps=2).images
    for labels in (["Sneaker", 10, "t-shirt"], np.array([7, 10, 0]), torch.tensor([7, 10, 0]),
                   [np.int64(7), torch.tensor(10), 0]):
        s = cheap_pipe.generate(labels, steps=2)
        assert s.labels.tolist() == [7, 10, 0] and torch.equal(s.images, ref)
    assert cheap_pipe.generate("Sneaker", steps=2).labels.tolist() == [7]


def test_guidance_0_is_the_unconditional_model(cheap_pipe):
    """w = 0 in out_uncond + w (out_cond - out_uncond) is the unconditional output: allowed."""
    zero = cheap_pipe.generate([3, 7], guidance=0.0, guidance_interval=None, steps=5, seed=4).images
    uncond = cheap_pipe.generate([10, 10], guidance=1.0, steps=5, seed=4).images
    assert (zero.int() - uncond.int()).abs().max() <= 1


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpmpp2m"])
@pytest.mark.parametrize("steps", [1, 2, 61, 999, 1000])
def test_every_step_count_from_1_to_1000_works(cheap_pipe, sampler, steps):
    if sampler == "ddpm" and steps != 1:
        pytest.skip("DDPM takes every timestep whatever `steps` says: once is enough")
    s = cheap_pipe.generate([3], sampler=sampler, steps=steps, return_trajectory=True)
    assert s.steps == (1000 if sampler == "ddpm" else steps)
    assert len(s.trajectory["t"]) == s.steps + 1 and torch.isfinite(s.trajectory["x"]).all()


# --- the newer entry points refuse the same way: inpaint, invert, slerp, reconstruct ---

IMAGES = torch.zeros(3, 28, 28, dtype=torch.uint8)
MASK = torch.zeros(28, 28, dtype=torch.bool)
MASK[:14] = True
IMAGE_CASES = [
    ("images", dict(images=torch.zeros(3, 28, 28))),                     # float, not uint8
    ("images", dict(images=torch.zeros(3, 1, 28, 28, dtype=torch.uint8))),
    ("images", dict(images=torch.zeros(3, 14, 14, dtype=torch.uint8))),
    ("images", dict(images=torch.zeros(0, 28, 28, dtype=torch.uint8))),
    ("images", dict(images=[[0] * 28] * 28)),
    ("labels", dict(labels=[1, 2])),                                      # 3 images
    ("labels", dict(labels=["sock"])),
    ("labels", dict(labels=[11])),
    ("labels", dict(labels=[])),
]
INPAINT_CASES = IMAGE_CASES + [
    ("mask", dict(mask=torch.zeros(28, 28, dtype=torch.bool))),          # nothing to redraw
    ("mask", dict(mask=torch.ones(27, 28, dtype=torch.bool))),
    ("mask", dict(mask=torch.ones(2, 28, 28, dtype=torch.bool))),         # 3 images
    ("mask", dict(mask=torch.full((28, 28), 0.5))),
    ("mask", dict(mask=torch.full((28, 28), 2))),
    ("mask", dict(mask="top half")),
    ("inpainting", dict(sampler="distilled")),
    ("steps", dict(steps=0)),
    ("guidance", dict(guidance=float("nan"))),
    ("x_start", dict(x_start=torch.zeros(3, 4, 7, 7))),
    ("seed", dict(seed=-1)),
]


@pytest.mark.parametrize("name,kwargs", INPAINT_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(INPAINT_CASES)])
def test_inpaint_refuses_with_a_value_error_naming_the_argument(monkeypatch, cheap_pipe, name, kwargs):
    monkeypatch.setattr(Pipeline, "_model", _forbidden)
    args, kwargs = dict(images=IMAGES, mask=MASK, labels=[3]), dict(kwargs)
    args.update((k, kwargs.pop(k)) for k in list(kwargs) if k in args)
    with pytest.raises(ValueError) as e:
        cheap_pipe.inpaint(args["images"], args["mask"], args["labels"], **kwargs)
    assert str(e.value).startswith(name) and "\n" not in str(e.value), str(e.value)


INVERT_CASES = IMAGE_CASES + [("steps", dict(steps=0)), ("steps", dict(steps=1001)), ("steps", dict(steps=2.5)),
                              ("batch_size", dict(batch_size=0))]


@pytest.mark.parametrize("name,kwargs", INVERT_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(INVERT_CASES)])
def test_invert_refuses_with_a_value_error_naming_the_argument(monkeypatch, cheap_pipe, name, kwargs):
    monkeypatch.setattr(Pipeline, "_model", _forbidden)
    args, kwargs = dict(images=IMAGES, labels=[3]), dict(kwargs)
    args.update((k, kwargs.pop(k)) for k in list(kwargs) if k in args)
    with pytest.raises(ValueError) as e:
        cheap_pipe.invert(args["images"], args["labels"], **kwargs)
    assert str(e.value).startswith(name) and "\n" not in str(e.value), str(e.value)


def test_inpaint_and_invert_take_one_label_for_all_and_numpy_images(cheap_pipe):
    one = cheap_pipe.inpaint(IMAGES.numpy(), MASK.numpy(), "Sneaker", steps=2)
    assert one.labels.tolist() == [7, 7, 7] and one.images.shape == (3, 28, 28)
    assert cheap_pipe.invert(IMAGES.numpy(), 7, steps=2).shape == (3, *cheap_pipe.shape)


A, B = torch.randn(2, 4, 7, 7), torch.randn(2, 4, 7, 7)
SLERP_CASES = [
    ("a", dict(a=torch.zeros(2, 4, 7, 7))),                 # no angle to an all-zero noise
    ("a", dict(a=torch.full((2, 4, 7, 7), float("nan")))),
    ("a", dict(a=torch.zeros(2, 4, 7, 7, dtype=torch.long))),
    ("a", dict(a=torch.randn(4))),                           # not a batch
    ("b", dict(b=[1.0, 2.0])),
    ("a and b", dict(b=torch.randn(3, 4, 7, 7))),
    ("w", dict(w=1.5)),
    ("w", dict(w=float("nan"))),
    ("w", dict(w=torch.tensor([0.1, 0.2, 0.3]))),            # 2 noises
    ("w", dict(w="half")),
]


@pytest.mark.parametrize("name,kwargs", SLERP_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(SLERP_CASES)])
def test_slerp_refuses_with_a_value_error_naming_the_argument(name, kwargs):
    from fmnist_ldm.sampling import slerp
    args = dict(a=A, b=B, w=0.5)
    args.update(kwargs)
    with pytest.raises(ValueError) as e:
        slerp(**args)
    assert str(e.value).startswith(name) and "\n" not in str(e.value), str(e.value)


def test_negative_none_is_plain_guidance(cheap_cli, capsys, tmp_path):
    out = cheap_cli(capsys, tmp_path, "--class", "Shirt", "--negative", "none", "--steps", "3")
    assert "away from" not in out and "guidance 5" in out, out


@pytest.mark.parametrize("name,content,needle", [
    ("missing.ipynb", None, "does not exist"),
    ("junk.ipynb", "junk", "is not a readable notebook (NotJSONError"),
    ("cells.ipynb", '{"cells": 5}', "is not a readable notebook"),
    ("notes.txt", "text", "is not a notebook: give a .ipynb file"),
    ("folder", "dir", "is a folder"),
])
def test_record_refuses_what_is_not_a_notebook_in_one_line(capsys, tmp_path, name, content, needle):
    from fmnist_ldm.course.record import main as record
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_text(content)
    for argv in ([str(path)], ["--check", str(path)]):
        assert record(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and needle in err, err
