import pytest
import imageio.v3 as iio
import torch
from PIL import Image

from fmnist_ldm.diffusion import NoiseSchedule, noising_path
from fmnist_ldm.pipeline import Pipeline
from fmnist_ldm.course.figures import denoising_path_figure, forward_reverse_frames, save_class_grid, save_gif


def test_grid_gif_and_path_figure(tmp_path, tiny_model_dir):
    pipe = Pipeline.from_pretrained(tiny_model_dir)
    s = pipe.generate([0, 0, 7, 7], steps=2)
    save_class_grid(s.images, s.labels, tmp_path / "g.png", ncol=2)
    assert Image.open(tmp_path / "g.png").size[1] == 2 * (28 * 2 + 2) + 2

    frames, captions = forward_reverse_frames(pipe, 3, steps=4, frames_each_way=5)
    assert frames.shape == (5 + 4, 28, 28) and frames.dtype == torch.uint8
    # clean, four noising frames up to t = T-1, then the reverse run's four states, t on each
    assert captions == ["clean", "noising  t = 250", "noising  t = 500", "noising  t = 749",
                        "noising  t = 999", "denoising  t = 749", "denoising  t = 499",
                        "denoising  t = 249", "new garment"]
    save_gif(frames, tmp_path / "a.gif", hold=2, captions=captions)
    gif = iio.imread(tmp_path / "a.gif")
    assert gif.shape[0] >= 9                                  # held frames may merge into longer ones
    assert gif.shape[1] > 28 * 6 and gif.shape[2] == 28 * 6   # 6x frames with a caption strip below
    save_gif(frames, tmp_path / "b.gif", hold=2, scale=4)     # without captions: the bare frames
    assert iio.imread(tmp_path / "b.gif").shape[1:3] == (112, 112)

    latents = pipe.encode(torch.rand(50, 1, 28, 28) * 2 - 1)
    denoising_path_figure(pipe, 7, latents, torch.arange(50) % 10, tmp_path / "p.png", steps=4, columns=4)
    assert Image.open(tmp_path / "p.png").size[0] > 400


def test_noising_path_is_one_trajectory_with_the_marginals_of_q():
    sched = NoiseSchedule("cosine")
    x0 = torch.full((20000, 1), 0.8, dtype=torch.float64)
    path = noising_path(sched, x0, [100, 101, 500], torch.Generator().manual_seed(0))
    for t, xt in zip((100, 101, 500), path):                 # q(x_t | x_0) = N(sqrt(abar) x0, 1 - abar)
        a = sched.abar_at(t)
        assert abs(xt.mean().item() - a ** 0.5 * 0.8) < 0.02
        assert abs(xt.var().item() - (1 - a)) < 0.03
    # one Markov path: x_500 = sqrt(abar_500 / abar_100) x_100 + fresh noise, so its correlation
    # with x_100 is below 1 (one shared noise draw, as q_sample would use, makes it exactly 1)
    a100, a500 = sched.abar_at(100), sched.abar_at(500)
    expected = ((a500 / a100) * (1 - a100) / (1 - a500)) ** 0.5
    corr = torch.corrcoef(torch.stack([path[0][:, 0], path[2][:, 0]]))[0, 1].item()
    assert abs(corr - expected) < 0.02 and expected < 0.5


def test_the_pipeline_diagram_highlights_one_notebooks_part():
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.patches import FancyBboxPatch
    from fmnist_ldm.course.diagram import BOXES, TITLES, pipeline_diagram
    for nb in TITLES:
        ax = pipeline_diagram(nb)
        lit = [p for p in ax.patches if isinstance(p, FancyBboxPatch) and p.get_facecolor()[:3] != (241 / 255,) * 3]
        assert len(lit) == sum(nb in b[4] for b in BOXES) > 0, nb
        assert nb in ax.get_title()
    with pytest.raises(ValueError, match="notebook number"):
        pipeline_diagram("8")


def test_the_unet_diagram_is_drawn_from_the_model():
    """One box per traced layer with its output shape, one bracket per skip, one embedding branch
    per residual block and one token branch per cross-attention, for two different UNets."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.patches import FancyBboxPatch
    from fmnist_ldm.course.diagram import unet_diagram
    from fmnist_ldm.unet import UNet, layer_shapes
    for net, shape in ((UNet(4, (16, 32)), (4, 7, 7)),
                       (UNet(3, (8, 16, 24), 2, (False, False, True), conditioning="time_embedding"), (3, 13, 9))):
        rows = layer_shapes(net, shape)
        assert rows[0]["inp"] == shape and rows[-1]["out"] == shape
        ups = [r for r in rows if r["path"] == "up" and r["kind"] == "level"]
        kept = [r for r in rows if r["path"] in ("in", "down")]
        assert [r["skip"] for r in ups] == [r["name"] for r in reversed(kept)]     # last kept, first used
        out = {r["name"]: r["out"] for r in rows}
        assert all(r["inp"][0] > out[r["skip"]][0] and r["inp"][1:] == out[r["skip"]][1:] for r in ups)
        ax = unet_diagram(net, shape)
        boxes = [p for p in ax.patches if isinstance(p, FancyBboxPatch)]
        texts = [t.get_text() for t in ax.texts]
        assert len(boxes) == len(rows)
        assert all("×".join(map(str, r["out"])) in texts for r in rows)
        levels = [r for r in rows if r["kind"] == "level"]
        arrows = [t for t in ax.texts if type(t).__name__ == "Annotation"]
        n_xattn = sum("xattn" in r["parts"] for r in levels)
        assert len(arrows) == (len(rows) - 1) + 2 + len(ups) + len(levels) + n_xattn
        assert (n_xattn > 0) == any("class tokens" in t or "learned tokens" in t for t in texts)
