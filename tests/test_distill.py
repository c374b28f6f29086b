"""Distillation (fmnist_ldm/distill.py): the loss and the sampler on a case with a known answer,
teacher runs that resume, and the student in the pipeline and the CLI."""
import math

import pytest
import torch

from fmnist_ldm.config import preset
from fmnist_ldm.diffusion import NoiseSchedule
from fmnist_ldm.distill import DistillConfig, Trajectories, collect_trajectories, distill, distill_preset
from fmnist_ldm.pipeline import Pipeline
from fmnist_ldm.samplers.consistency import Consistency, student_timesteps
from fmnist_ldm.sampling import sample
from fmnist_ldm.weights import WeightsError, load_student, save_weights

MU, S = 0.7, 0.4          # the data: every entry ~ N(MU, S^2), independently
SCHEDULE = NoiseSchedule("cosine", 1000)


def gaussian_denoiser(x, t):
    """The exact E[x0 | x_t] for N(MU, S^2) data: the ideal teacher (returns x0, eps)."""
    a = SCHEDULE.abar_at(t)
    x0 = MU + math.sqrt(a) * S**2 / (a * S**2 + 1 - a) * (x - math.sqrt(a) * MU)
    return x0, (x - math.sqrt(a) * x0) / math.sqrt(1 - a)


class AffinePerStep(torch.nn.Module):
    """A student that can express the answer: v = w_t x + b_t, one (w, b) per timestep, since the
    probability-flow ODE maps the Gaussian x_t affinely onto the Gaussian x0."""

    def __init__(self):
        super().__init__()
        self.wb = torch.nn.Embedding(1000, 2)
        torch.nn.init.zeros_(self.wb.weight)

    def forward(self, x, t, y):
        w, b = self.wb(t).unbind(1)
        return w.view(-1, 1, 1, 1) * x + b.view(-1, 1, 1, 1)


def _teacher_runs(n=2000, seed=0):
    x = torch.randn(n, 1, 4, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    _, traj = sample(gaussian_denoiser, SCHEDULE, x, "dpmpp2m", 20, return_trajectory=True)
    return Trajectories(traj["x"].transpose(0, 1).float(), torch.zeros(n, dtype=torch.long), traj["t"])


def test_student_timesteps_are_the_teacher_s_evenly_by_index():
    ts = SCHEDULE.timesteps(20)
    assert student_timesteps(ts, 1) == [999]
    assert student_timesteps(ts, 2) == [999, 499]
    assert student_timesteps(ts, 4) == [999, 749, 499, 249]
    assert student_timesteps(ts, 20) == ts[:-1]
    for steps in range(1, 21):
        got = student_timesteps(ts, steps)
        assert len(got) == len(set(got)) == steps and set(got) <= set(ts[:-1]) and got == sorted(got, reverse=True)
    for bad in (0, 21, 2.5, True):
        with pytest.raises(ValueError, match="^steps must be a whole number from 1 to 20"):
            student_timesteps(ts, bad)


def test_consistency_sampling_with_the_exact_end_point_map_recovers_the_gaussian():
    """With f = the teacher ODE's exact end point, eq. (2) draws N(MU, S^2) at every step count."""
    def exact_end_point(x, t):         # the ODE's solution from (x, t): affine for a Gaussian
        a = SCHEDULE.abar_at(t)
        return MU + S * (x - math.sqrt(a) * MU) / math.sqrt(a * S**2 + 1 - a), None
    gen = torch.Generator().manual_seed(1)
    for steps in (1, 2, 4, 8):
        x = torch.randn(50_000, 1, 1, 1, generator=gen, dtype=torch.float64)
        out = sample(exact_end_point, SCHEDULE, x, Consistency(SCHEDULE, gen, SCHEDULE.timesteps(20)), steps)
        assert abs(out.mean() - MU) < 0.01 and abs(out.std() - S) < 0.01, (steps, out.mean(), out.std())


def test_a_student_distilled_from_a_gaussian_teacher_recovers_the_gaussian(tmp_path):
    data = _teacher_runs()
    end = data.states[:, -1]
    assert abs(end.mean() - MU) < 0.02 and abs(end.std() - S) < 0.02      # the teacher is right
    cfg = DistillConfig(runs=len(data), steps=400, batch_size=256, lr=0.05, ema_decay=0.9, warmup_steps=10,
                        out_dir=str(tmp_path), checkpoint_every=1000)
    model_cfg = preset("fast", bf16=False)
    student, hist = distill(AffinePerStep(), model_cfg, cfg, data)
    assert hist["loss"][-1] < 0.05 * hist["loss"][0]
    denoise = lambda x, t: SCHEDULE.split(student(x, torch.full((len(x),), t), None), x,
                                          torch.full((len(x),), t), "v")
    gen = torch.Generator().manual_seed(2)
    for steps in (1, 4):
        x = torch.randn(20_000, 1, 1, 1, generator=gen)
        with torch.no_grad():
            out = sample(denoise, SCHEDULE, x, Consistency(SCHEDULE, gen, data.timesteps), steps)
        assert abs(out.mean() - MU) < 0.03 and abs(out.std() / S - 1) < 0.05, (steps, out.mean(), out.std())
    # and one step of the student lands where 20 teacher steps land from the same noise
    x = data.states[:200, 0]
    with torch.no_grad():
        one = sample(denoise, SCHEDULE, x, Consistency(SCHEDULE, teacher_timesteps=data.timesteps), 1)
    assert (one - data.states[:200, -1]).abs().max() < 0.05


def test_the_loss_is_zero_for_the_exact_student_and_not_for_the_teacher_itself(tmp_path):
    """Eq. (1) asks for the end point of the run, not the teacher's one-step guess E[x0 | x_t]."""
    from fmnist_ldm.distill import distill_loss
    data = _teacher_runs(500)

    class Exact(torch.nn.Module):       # v from the exact end point
        def forward(self, x, t, y, guess=False):
            a = SCHEDULE.abar(t, x)
            x0 = MU + S * (x - a.sqrt() * MU) / (a * S**2 + 1 - a).sqrt()
            return (a.sqrt() * x - x0) / (1 - a).sqrt()

    class OneStepGuess(torch.nn.Module):
        def forward(self, x, t, y):
            x0 = torch.cat([gaussian_denoiser(x[i:i + 1].double(), int(t[i]))[0] for i in range(len(x))]).float()
            a = SCHEDULE.abar(t, x)
            return (a.sqrt() * x - x0) / (1 - a).sqrt()
    idx, gen = torch.arange(256), torch.Generator().manual_seed(0)
    exact = distill_loss(Exact(), SCHEDULE, "v", data)(idx, gen)
    guess = distill_loss(OneStepGuess(), SCHEDULE, "v", data)(idx, torch.Generator().manual_seed(0))
    assert exact < 1e-4 and guess > 100 * exact, (exact, guess)   # 20 DPM-Solver++ steps are not quite the ODE


def test_teacher_runs_are_collected_in_chunks_and_resume(cheap_pipe, tmp_path, monkeypatch):
    cfg = DistillConfig(runs=25, chunk=10, out_dir=str(tmp_path))
    runs = collect_trajectories(cheap_pipe, cfg, progress=False)
    assert runs.states.shape == (25, 21, *cheap_pipe.shape) and runs.timesteps == SCHEDULE.timesteps(20)
    assert runs.labels.tolist() == [i % 11 for i in range(25)]     # classes and unconditional in turn
    assert sorted(p.name for p in (tmp_path / "trajectories").iterdir()) == \
        ["runs_000000.pt", "runs_000010.pt", "runs_000020.pt"]
    (tmp_path / "trajectories" / "runs_000020.pt").unlink()         # as if stopped before the last chunk
    calls, generate = [], Pipeline.generate
    monkeypatch.setattr(Pipeline, "generate", lambda self, labels, **kw: calls.append(len(labels)) or
                        generate(self, labels, **kw))
    again = collect_trajectories(cheap_pipe, cfg, progress=False)
    assert calls == [5] and torch.equal(again.states, runs.states)


def test_distill_presets_and_config_checks():
    assert distill_preset("fast").runs < distill_preset("full").runs
    for bad in (dict(runs=0), dict(steps=1.5), dict(lr=0), dict(ema_decay=1.0)):
        with pytest.raises(ValueError, match="^DistillConfig"):
            DistillConfig(**bad)
    with pytest.raises(ValueError, match="unknown preset"):
        distill_preset("medium")


def _student_dir(tiny_model_dir, tiny_cfg, tmp_path, vae_id=None):
    """The tiny model folder with a 'student' (the tiny UNet itself) beside it."""
    from fmnist_ldm.weights import build_unet, load_model, weights_id
    unet, _ = load_model(tiny_model_dir / "unet.safetensors", "unet")
    vae, _ = load_model(tiny_model_dir / "vae.safetensors", "vae")
    save_weights(unet, tiny_model_dir / "student.safetensors", "unet", tiny_cfg,
                 vae_id=vae_id or weights_id(vae.state_dict()),
                 distilled={"teacher_timesteps": SCHEDULE.timesteps(20)})
    return tiny_model_dir


def test_the_pipeline_samples_with_the_student_and_counts_one_pass_a_step(tiny_model_dir, tiny_cfg, tmp_path):
    pipe = Pipeline.from_pretrained(_student_dir(tiny_model_dir, tiny_cfg, tmp_path))
    for steps in (1, 2, 4, 8):
        s = pipe.generate([3, 10], sampler="distilled", steps=steps, seed=5, return_trajectory=True)
        assert s.steps == steps and s.unet_passes == steps and s.images.shape == (2, 28, 28)
        assert s.trajectory["t"] == student_timesteps(SCHEDULE.timesteps(20), steps) + [-1]
    # the same seed gives the same images at any batch size (per-image noise for the re-noising)
    a = pipe.generate([1, 2, 3], sampler="distilled", steps=4, seed=9).images
    b = pipe.generate([1, 2, 3], sampler="distilled", steps=4, seed=9, batch_size=1).images
    assert (a.int() - b.int()).abs().max() <= 1


@pytest.mark.parametrize("kwargs,needle", [
    (dict(steps=21), "^steps must be a whole number from 1 to 20 for the distilled sampler"),
    (dict(steps=0), "^steps"),
    (dict(t_start=500), "^t_start and x_start do not apply to the distilled sampler"),
])
def test_generate_refuses_what_the_student_cannot_do(tiny_model_dir, tiny_cfg, tmp_path, kwargs, needle):
    pipe = Pipeline.from_pretrained(_student_dir(tiny_model_dir, tiny_cfg, tmp_path))
    with pytest.raises(ValueError, match=needle):
        pipe.generate([3], sampler="distilled", **kwargs)


def test_a_student_of_another_vae_or_none_at_all_is_refused(tiny_model_dir, tiny_cfg, tmp_path):
    with pytest.raises(WeightsError, match="no distilled student at"):
        Pipeline.from_pretrained(tiny_model_dir).generate([3], sampler="distilled")
    _student_dir(tiny_model_dir, tiny_cfg, tmp_path, vae_id="0123456789abcdef")
    pipe = Pipeline.from_pretrained(tiny_model_dir)
    with pytest.raises(WeightsError, match="distilled on the latents of VAE 0123456789abcdef"):
        pipe.generate([3], sampler="distilled")
    with pytest.raises(WeightsError, match="not a distilled student"):
        load_student(tiny_model_dir / "unet.safetensors")


@pytest.mark.parametrize("args,needle", [
    (["--steps", "21"], "1 to 20 for the distilled sampler (it learned the teacher's 20 timesteps), not 21"),
    (["--guidance", "3"], "--guidance and --guidance-interval do not apply to --sampler distilled"),
    (["--guidance-interval", "none"], "do not apply to --sampler distilled"),
])
def test_cli_refuses_what_the_student_cannot_do_in_one_line(capsys, tiny_model_dir, tiny_cfg, tmp_path, args, needle):
    from fmnist_ldm.cli import main
    d = _student_dir(tiny_model_dir, tiny_cfg, tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["sample", "--sampler", "distilled", "--model-dir", str(d), "--out", str(tmp_path / "s.png"), *args])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and needle in err, err


def test_cli_samples_with_the_student_and_says_what_ran(capsys, tiny_model_dir, tiny_cfg, tmp_path):
    from fmnist_ldm.cli import main
    d = _student_dir(tiny_model_dir, tiny_cfg, tmp_path)
    main(["sample", "--sampler", "distilled", "--model-dir", str(d), "--n-per-class", "2",
          "--out", str(tmp_path / "s.png")])
    out = capsys.readouterr().out
    assert "distilled, 4 steps, 4 UNet passes per image: guidance 5 for t in [300, 700] folded into the student" in out
    assert (tmp_path / "s.png").stat().st_size > 0


def test_the_student_figure_has_a_labelled_row_per_sampler(tiny_model_dir, tiny_cfg, tmp_path):
    from PIL import Image
    from fmnist_ldm.course.figures import student_figure
    pipe = Pipeline.from_pretrained(_student_dir(tiny_model_dir, tiny_cfg, tmp_path))
    student_figure(pipe, tmp_path / "f.png")
    width, height = Image.open(tmp_path / "f.png").size
    assert height == 4 * (28 * 2 + 2) + 2 and width > 10 * (28 * 2 + 2) + 110
