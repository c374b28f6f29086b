import imageio.v3 as iio
import torch
from PIL import Image

from fmnist_ldm.pipeline import Pipeline
from fmnist_ldm.viz import denoising_path_figure, forward_reverse_frames, save_class_grid, save_gif


def test_grid_gif_and_path_figure(tmp_path, tiny_model_dir):
    pipe = Pipeline.from_pretrained(tiny_model_dir)
    s = pipe.generate([0, 0, 7, 7], steps=2)
    save_class_grid(s.images, s.labels, tmp_path / "g.png", ncol=2)
    assert Image.open(tmp_path / "g.png").size[1] == 2 * (28 * 2 + 2) + 2

    frames = forward_reverse_frames(pipe, 3, steps=4, frames_each_way=5)
    assert frames.shape == (5 + 4, 28, 28) and frames.dtype == torch.uint8
    save_gif(frames, tmp_path / "a.gif", hold=2)
    assert iio.imread(tmp_path / "a.gif").shape[0] >= 9      # held frames may merge into longer ones

    latents = pipe.encode(torch.rand(50, 1, 28, 28) * 2 - 1)
    denoising_path_figure(pipe, 7, latents, torch.arange(50) % 10, tmp_path / "p.png", steps=4, columns=4)
    assert Image.open(tmp_path / "p.png").size[0] > 400
