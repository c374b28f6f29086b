"""precision_recall (Kynkaenniemi et al. 2019; density/coverage, Naeem et al. 2020) on sets whose
answer is known: identical sets, a set that covers one of two modes, a set collapsed to a point;
and fid_kid's KID, seeded."""
import torch

from fmnist_ldm.metrics import precision_recall


def two_modes(n, gen, dim=16):
    """Half the points around -5, half around +5 (in every coordinate): two far-apart modes."""
    centres = torch.where(torch.arange(n)[:, None] < n // 2, -5.0, 5.0)
    return centres + torch.randn(n, dim, generator=gen)


def test_identical_sets_score_one():
    x = two_modes(400, torch.Generator().manual_seed(0))
    r = precision_recall(x, x.clone(), k=5)
    assert r["precision"] == r["recall"] == r["coverage"] == 1.0
    assert abs(r["density"] - 6 / 5) < 1e-6          # its own ball and its k neighbours' balls


def test_same_distribution_scores_high():
    gen = torch.Generator().manual_seed(1)
    r = precision_recall(two_modes(1000, gen), two_modes(1000, gen), k=5)
    assert r["precision"] > 0.8 and r["recall"] > 0.8 and r["coverage"] > 0.8   # k-NN balls in 16-D
    assert 0.8 < r["density"] < 1.2


def test_one_mode_of_two_is_real_looking_but_half_the_variety():
    gen = torch.Generator().manual_seed(2)
    real = two_modes(1000, gen)
    fake = -5.0 + torch.randn(1000, 16, generator=gen)        # only the first mode
    r = precision_recall(real, fake, k=5)
    assert r["precision"] > 0.8                               # every sample looks real ...
    assert 0.4 < r["recall"] < 0.6 and 0.4 < r["coverage"] < 0.6   # ... but half the reals are never made


def test_a_set_collapsed_to_one_point_has_no_recall():
    gen = torch.Generator().manual_seed(3)
    real = two_modes(1000, gen)
    fake = real[:1] + 1e-3 * torch.randn(1000, 16, generator=gen)  # 1,000 copies of one real image, jittered
    r = precision_recall(real, fake, k=5)
    assert r["precision"] == 1.0                              # that one image is real enough
    assert r["recall"] < 0.01 and r["coverage"] < 0.05   # the few real balls around it


def test_kid_is_reproducible_and_leaves_the_global_rng_alone():
    """KID averages over random subsets (1,000 of the 1,200 here): fid_kid seeds them."""
    from fmnist_ldm.metrics import fid_kid, load_judge
    gen = torch.Generator().manual_seed(4)
    real = torch.randint(0, 256, (1200, 28, 28), generator=gen, dtype=torch.uint8)
    fake = (real.float() * 0.7).to(torch.uint8)
    judge = load_judge(device="cpu")
    torch.manual_seed(123)
    a = fid_kid(real, fake, judge)
    b = fid_kid(real, fake, judge)                      # unseeded, the second call would draw other subsets
    assert a == b and a["kid_std"] > 0                  # random subsets, the same ones twice
    after = torch.rand(1)
    torch.manual_seed(123)
    assert torch.equal(after, torch.rand(1))            # the caller's random stream is untouched
