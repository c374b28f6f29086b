"""`evaluate` below the n where FID means anything: refused below 2 x 256 images (the judge's
feature dimension), warned below 2,000; fid_kid itself stays usable at any n."""
import json

import numpy as np
import pytest
import torch

import fmnist_ldm.metrics as metrics
from fmnist_ldm.cli import main
from fmnist_ldm.metrics import MIN_FID_N, RECOMMENDED_FID_N, FewSamplesWarning, check_sample_count


def _noise(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8), torch.arange(n) % 10


def _npz(path, n):
    images, labels = _noise(n)
    np.savez(path, images=images.numpy(), labels=labels.numpy())
    return path


def test_the_floor_is_twice_the_judge_feature_dimension():
    assert MIN_FID_N == 2 * metrics.Judge.num_features == 512 and RECOMMENDED_FID_N == 2000


def test_evaluate_samples_refuses_two_noise_images(monkeypatch):
    """The issue: 2 noise images scored fid_ratio 0.69, 'better than real'. Refused before any work."""
    monkeypatch.setattr(metrics.fid, "load_fashion_mnist", lambda *a, **k: pytest.fail("refuse before loading data"))
    with pytest.raises(ValueError) as e:
        metrics.evaluate_samples(*_noise(2), judge=object())
    msg = str(e.value)
    assert "n = 2" in msg and "512" in msg and "256" in msg and "5,000" in msg and "\n" not in msg


def test_check_sample_count_warns_between_floor_and_recommendation():
    with pytest.raises(ValueError):
        check_sample_count(MIN_FID_N - 1)
    with pytest.warns(FewSamplesWarning, match="2,000"):
        note = check_sample_count(MIN_FID_N)
    assert "n = 512" in note and "5,000" in note
    assert check_sample_count(RECOMMENDED_FID_N, warn=False) is None
    assert check_sample_count(1000, warn=False) is not None


def test_evaluate_samples_warns_below_the_recommended_n(monkeypatch):
    fake = {"fid": 2.0, "kid": 0.01, "kid_std": 0.001}
    monkeypatch.setattr(metrics.fid, "fid_kid", lambda real, fakes, judge: fake)      # the warning, not FID, is tested
    monkeypatch.setattr(metrics.fid, "class_accuracy", lambda *a: {"accuracy": 1.0})
    monkeypatch.setattr(metrics.fid, "judge_features", lambda judge, images: images)
    fids = iter([2.5, 0.75])                                     # the samples', then the real baseline's
    monkeypatch.setattr(metrics.fid, "fid_kid", lambda real, fakes, judge: {**fake, "fid": next(fids)})
    with pytest.warns(FewSamplesWarning):
        out = metrics.evaluate_samples(*_noise(600), judge=object())
    assert out["n"] == 600
    assert out["fid_minus_real"] == 1.75 and out["fid_real_baseline"] == 0.75   # the headline number


def test_fid_kid_itself_still_works_at_small_n():
    """Unit tests and the n-sweep call fid_kid directly: no floor there."""
    images, _ = _noise(40)
    r = metrics.fid_kid(images[:20], images[20:], metrics.load_judge())
    assert np.isfinite(r["fid"]) and np.isfinite(r["kid"])


def test_scores_from_judge_features_equal_scores_from_images():
    """06 and the benchmarks run the judge once per set and score the features: same numbers."""
    images, _ = _noise(300)
    judge = metrics.load_judge()
    real, fake = images[:150], images[150:]
    from_images = metrics.fid_kid(real, fake, judge)
    feats = metrics.judge_features(judge, real), metrics.judge_features(judge, fake)
    assert feats[0].shape == (150, 256) and feats[0].dtype == torch.float64
    assert metrics.fid_kid(*feats) == from_images
    assert metrics.fid_over_n(*feats, ns=[100, 150]) == metrics.fid_over_n(real, fake, judge, ns=[100, 150])
    with pytest.raises(ValueError, match="need the judge"):
        metrics.fid_kid(real, fake)


def test_cli_refuses_a_small_samples_file_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["evaluate", "--samples", str(_npz(tmp_path / "s.npz", 2))])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "n = 2" in err


def test_cli_refuses_a_small_n_per_class_before_sampling(monkeypatch, capsys):
    import fmnist_ldm.pipeline
    monkeypatch.setattr(fmnist_ldm.pipeline.Pipeline, "from_pretrained",
                        classmethod(lambda cls, *a: pytest.fail("refuse before sampling")))
    with pytest.raises(SystemExit) as e:
        main(["evaluate", "--n-per-class", "10"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "n = 100" in err and "--n-per-class 52" in err


def test_cli_warns_in_one_line_then_reports(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(metrics.fid, "fid_kid", lambda real, fakes, judge: {"fid": 2.0, "kid": 0.01, "kid_std": 0.001})
    main(["evaluate", "--samples", str(_npz(tmp_path / "s.npz", 600))])
    out = capsys.readouterr()
    warning_lines = [line for line in out.err.splitlines() if "n = 600" in line]
    assert len(warning_lines) == 1 and warning_lines[0].startswith("warning: ")
    assert json.loads(out.out)["n"] == 600
