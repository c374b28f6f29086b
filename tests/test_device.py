"""The one device policy: which device, which precision, and noise that a seed fixes on every
device and at every batch size."""
import pytest
import torch

from fmnist_ldm import device as D
from fmnist_ldm.pipeline import Pipeline


def test_policy_argument_then_environment_then_best_available(monkeypatch):
    monkeypatch.delenv(D.ENV_VAR, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(D, "_mps_available", lambda: False)
    assert D.get_device() == torch.device("cpu")
    monkeypatch.setattr(D, "_mps_available", lambda: True)
    assert D.get_device() == torch.device("mps")                 # MPS before the CPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert D.get_device() == torch.device("cuda")                # CUDA before MPS
    assert D.get_device("auto") == torch.device("cuda")
    monkeypatch.setenv(D.ENV_VAR, "cpu")
    assert D.get_device() == torch.device("cpu")                 # the environment overrides
    monkeypatch.setattr(D, "_mps_available", lambda: True)
    assert D.get_device("mps") == torch.device("mps")            # the argument overrides both


@pytest.mark.parametrize("name,needle", [("cuda", "no CUDA GPU"), ("cuda:0", "no CUDA GPU"),
                                         ("mps", "MPS backend is not available"),
                                         ("gpu", "is not a device"), ("meta", "runs on cpu, cuda or mps")])
def test_a_device_that_is_not_here_is_one_clear_error(monkeypatch, name, needle):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(D, "_mps_available", lambda: False)
    with pytest.raises(D.DeviceError, match=needle):
        D.get_device(name)
    monkeypatch.setenv(D.ENV_VAR, name)
    with pytest.raises(D.DeviceError, match=D.ENV_VAR):        # says where the bad name came from
        D.get_device()


@pytest.mark.parametrize("capability,expect", [((7, 5), torch.float16), ((7, 0), torch.float16),
                                               ((8, 0), torch.bfloat16), ((8, 9), torch.bfloat16),
                                               ((9, 0), torch.bfloat16)])
def test_cuda_precision_follows_the_compute_capability(monkeypatch, capability, expect):
    """bf16 from compute capability 8.0 on (A100, L4, H100), fp16 with a scaler below (T4 7.5,
    V100 7.0), whatever torch.cuda.is_bf16_supported says: in this torch it is True on a T4 too,
    where bf16 is emulated (and the old code picked it)."""
    monkeypatch.delenv(D.AMP_VAR, raising=False)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(D, "cuda_capability", lambda device: capability)
    cuda = torch.device("cuda")
    assert D.amp_dtype(cuda) == expect
    assert D.amp_dtype(cuda, enabled=False) is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)       # GradScaler asks
    assert D.grad_scaler(cuda).is_enabled() == (expect == torch.float16)


def test_precision_per_device(monkeypatch):
    mps, cpu = torch.device("mps"), torch.device("cpu")
    monkeypatch.delenv(D.AMP_VAR, raising=False)
    assert D.amp_dtype(mps) is None
    for env, expect in (("1", torch.bfloat16), ("0", None)):
        monkeypatch.setenv("FMNIST_BF16", env)
        D.fast_cpu_bf16.cache_clear()
        assert D.amp_dtype(cpu) == expect
    D.fast_cpu_bf16.cache_clear()


@pytest.mark.parametrize("avx512_bf16,amx,expect", [(False, False, False), (True, False, True), (False, True, True)])
def test_cpu_bf16_needs_native_bf16_not_just_avx512(monkeypatch, avx512_bf16, amx, expect):
    """oneDNN's own check says yes on any AVX-512 CPU; bf16 is fast only with AVX-512 bf16 or AMX."""
    monkeypatch.delenv("FMNIST_BF16", raising=False)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)    # any AVX-512 CPU
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    D.fast_cpu_bf16.cache_clear()
    try:
        assert D.fast_cpu_bf16() is expect
    finally:
        D.fast_cpu_bf16.cache_clear()


def test_fmnist_amp_overrides_every_device(monkeypatch):
    for env, expect in (("fp16", torch.float16), ("bf16", torch.bfloat16), ("fp32", None)):
        monkeypatch.setenv(D.AMP_VAR, env)
        for dev in ("cpu", "cuda", "mps"):
            assert D.amp_dtype(torch.device(dev)) == expect
        assert D.amp_dtype(torch.device("cpu"), enabled=False) is None     # cfg.bf16=False still wins
    monkeypatch.setenv(D.AMP_VAR, "half")
    with pytest.raises(D.DeviceError, match="FMNIST_AMP='half': use bf16, fp16 or fp32"):
        D.amp_dtype(torch.device("cpu"))


def test_an_unusable_nvidia_gpu_is_said_in_one_line(monkeypatch, capsys):
    """nvidia-smi is here but torch sees no GPU (a driver older than the CUDA build): said, not silent."""
    monkeypatch.delenv(D.ENV_VAR, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(D, "_mps_available", lambda: False)
    monkeypatch.setattr(D.shutil, "which", lambda name: "/usr/bin/nvidia-smi" if name == "nvidia-smi" else None)
    D._say_unusable_gpu.cache_clear()
    try:
        assert D.get_device() == torch.device("cpu")
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "NVIDIA GPU is here" in err and "driver" in err and torch.__version__ in err
        D.get_device()
        assert capsys.readouterr().err == ""                     # once per process
        with pytest.raises(D.DeviceError, match="NVIDIA GPU is here.*cannot use it"):
            D.get_device("cuda")
    finally:
        D._say_unusable_gpu.cache_clear()
    monkeypatch.setattr(D.shutil, "which", lambda name: None)
    assert D.unusable_gpu() is None


def test_cpu_autocast_only_where_fast(monkeypatch):
    """cfg.bf16 asks for bf16; on the CPU it is used only where it runs fast (or when forced)."""
    monkeypatch.delenv(D.AMP_VAR, raising=False)
    x, w, cpu = torch.randn(4, 8), torch.randn(8, 8), torch.device("cpu")
    for env, expect in (("1", torch.bfloat16), ("0", torch.float32)):
        monkeypatch.setenv("FMNIST_BF16", env)
        D.fast_cpu_bf16.cache_clear()
        with D.autocast(cpu, True):
            assert (x @ w).dtype == expect
        with D.autocast(cpu, False):
            assert (x @ w).dtype == torch.float32
    D.fast_cpu_bf16.cache_clear()


def test_initial_noise_is_drawn_on_the_cpu_then_moved(monkeypatch, tiny_model_dir):
    """A seed means the same starting noise on every device: generate draws it from a CPU
    generator before any .to(device). Checked by spying on the draw: whatever the pipeline's
    device, the draw happens on the CPU, equals torch.randn with a CPU generator of that seed,
    and is what the run starts from."""
    import fmnist_ldm.pipeline as P
    draws = []

    def spy(shape, seed, device):
        out = D.randn(shape, seed, device)
        draws.append((device, out.clone()))
        return out
    monkeypatch.setattr(P, "randn", spy)
    pipe = Pipeline.from_pretrained(tiny_model_dir, device="cpu")
    a = pipe.generate([0, 3, 7], steps=3, seed=11)
    (device, noise), = draws
    assert device == torch.device("cpu")
    torch.testing.assert_close(noise, torch.randn(noise.shape, generator=torch.Generator().manual_seed(11)))
    b = pipe.generate([0, 3, 7], steps=3, seed=999, x_start=noise)      # start from that noise by hand
    assert torch.equal(a.images, b.images)


def test_randn_moves_after_drawing():
    meta = D.randn((2, 3), 5, torch.device("meta"))
    assert meta.device.type == "meta" and meta.shape == (2, 3)
    noise = D.PerImageNoise(5, range(2))(torch.empty(2, 3, device="meta"))
    assert noise.device.type == "meta"


@pytest.mark.parametrize("sampler,eta,steps", [("ddim", 1.0, 6), ("ddpm", 0.0, 1000)])
def test_stochastic_samplers_do_not_depend_on_the_batch_size(cheap_pipe, sampler, eta, steps):
    """With DDIM eta = 1 or DDPM, each step adds fresh noise; it is a function of (seed, image
    index), so batching 4 images as 4, 2+2 or 3+1 gives the same pictures. (Up to one grey level:
    a convolution over 2 images may round differently from one over 4; with one generator for
    all chunks, pixels moved by up to 185 levels.)"""
    labels = [1, 4, 10, 8]
    runs = [cheap_pipe.generate(labels, sampler=sampler, steps=steps, eta=eta, seed=3, batch_size=b).images.int()
            for b in (4, 2, 3)]
    assert (runs[0] - runs[1]).abs().max() <= 1 and (runs[0] - runs[2]).abs().max() <= 1
    other = cheap_pipe.generate(labels, sampler=sampler, steps=steps, eta=eta, seed=4).images.int()
    assert (runs[0] - other).abs().max() > 50


def test_per_image_noise_streams_are_distinct():
    like = torch.empty(3, 4, 7, 7)
    a, b = D.PerImageNoise(0, range(3))(like), D.PerImageNoise(0, range(3))(like)
    assert torch.equal(a, b)                                    # same seed, same draws
    assert not torch.equal(a[0], a[1])                          # images differ from each other
    assert not torch.equal(a, D.PerImageNoise(1, range(3))(like))   # seeds differ
    assert D.image_seed(0, 1) != D.image_seed(1, 0)


def test_cli_device_flag(capsys, tmp_path, tiny_model_dir, monkeypatch):
    from fmnist_ldm.cli import main
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "a.png"
    main(["sample", "--device", "cpu", "--model-dir", str(tiny_model_dir), "--n-per-class", "1",
          "--steps", "2", "--out", str(out)])
    assert out.is_file()
    for argv in (["sample", "--model-dir", str(tiny_model_dir), "--out", str(tmp_path / "b.png")],
                 ["train", "--preset", "fast", "--out-dir", str(tmp_path / "run")],
                 ["evaluate"], ["figures", "--out-dir", str(tmp_path / "figs")]):
        with pytest.raises(SystemExit) as e:
            main([*argv, "--device", "cuda"])
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.startswith("error:") and err.count("\n") == 1 and "no CUDA GPU" in err
    assert not (tmp_path / "b.png").exists() and not (tmp_path / "run").exists()


def test_notebook_mode(monkeypatch):
    from fmnist_ldm.course.notebook import notebook_mode
    for var in ("FMNIST_LDM_MODE", "CI"):
        monkeypatch.delenv(var, raising=False)
    assert notebook_mode(torch.device("cpu"))[0] == "fast"
    assert notebook_mode(torch.device("mps"))[0] == "fast"
    assert notebook_mode(torch.device("cuda")) == ("full", "a GPU is here")
    monkeypatch.setenv("CI", "true")
    assert notebook_mode(torch.device("cuda")) == ("fast", "running under CI")
    monkeypatch.setenv("FMNIST_LDM_MODE", "full")
    assert notebook_mode(torch.device("cpu"))[0] == "full"
    monkeypatch.setenv("FMNIST_LDM_MODE", "quick")
    with pytest.raises(ValueError, match="FMNIST_LDM_MODE"):
        notebook_mode()
