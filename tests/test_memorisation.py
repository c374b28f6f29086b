"""The memorisation check: nearest_neighbours is exact, batched and CPU-out; memorisation finds a
planted training image at distance 0 with its index, in random and in real Fashion-MNIST images."""
import pytest
import torch

from fmnist_ldm.data import load_fashion_mnist
from fmnist_ldm.metrics import load_judge, memorisation, nearest_neighbours, pixel_vectors


def brute_force(queries, references):
    """Every distance, from the differences, as the definition says: [n, N] at once."""
    d = (queries[:, None, :] - references[None, :, :]).pow(2).sum(-1).sqrt()
    return d.min(dim=1)


@pytest.fixture(scope="module")
def judge():
    return load_judge()


@pytest.fixture(scope="module")
def real():
    """Real images: 1,000 training images as the 'training set', 200 test images."""
    train, _ = load_fashion_mnist("train")
    test, _ = load_fashion_mnist("test")
    return train[:1000], test[:200]


def random_images(n, seed):
    return torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("d, n, N, dtype", [(5, 37, 203, torch.float64),       # small: cdist computes directly
                                            (784, 60, 500, torch.float32)])    # pixel-sized: cdist's matrix product
def test_distances_and_indices_match_brute_force(d, n, N, dtype):
    g = torch.Generator().manual_seed(d)
    queries, references = torch.rand(n, d, generator=g, dtype=dtype), torch.rand(N, d, generator=g, dtype=dtype)
    dist, idx = nearest_neighbours(queries, references, batch=16)
    want_dist, want_idx = brute_force(queries, references)
    assert torch.equal(idx, want_idx)
    torch.testing.assert_close(dist, want_dist, rtol=0, atol=1e-12 if dtype == torch.float64 else 1e-5)


def test_copies_are_at_exactly_zero_where_the_matrix_product_rounds():
    """Pixel vectors of real images, copies of 100 of them among the queries: torch.cdist alone puts
    about a third of these copies above 0 (up to ~0.01, float32 rounding); the result must not."""
    train = pixel_vectors(load_fashion_mnist("train")[0][:300])
    queries = torch.cat([train[:100], torch.rand(20, 784, generator=torch.Generator().manual_seed(0))])
    assert (torch.cdist(queries[:100], train).diagonal() > 0).sum() > 10     # the rounding is there to remove
    dist, idx = nearest_neighbours(queries, train)
    assert (dist[:100] == 0).all() and torch.equal(idx[:100], torch.arange(100))
    assert (dist[100:] > 1).all()            # uniform noise is nowhere near a garment


def test_a_near_tie_goes_to_the_truly_nearest_reference():
    """Far from the origin, cdist's matrix product rounds by more than the gap between a copy and
    a near copy (d = 0 against d ~ 0.03): the exact distances must settle which is nearest."""
    g = torch.Generator().manual_seed(2)
    queries = 100 + torch.rand(40, 784, generator=g)                       # |q|^2 ~ 8e6: float32 rounds d^2 by ~1
    near = queries + 1e-3 * torch.rand(40, 784, generator=g)                # distance ~0.02
    references = torch.cat([near, queries])                                 # the near copy first, the copy second
    assert (torch.cdist(queries, references).argmin(1) < 40).any()         # cdist alone picks some near copies
    dist, idx = nearest_neighbours(queries, references)
    assert torch.equal(idx, torch.arange(40, 80)) and (dist == 0).all()


def test_batching_gives_the_same_result_as_one_batch():
    g = torch.Generator().manual_seed(1)
    queries, references = torch.randn(50, 12, generator=g), torch.randn(400, 12, generator=g)
    whole = nearest_neighbours(queries, references, batch=len(queries))
    for batch in (1, 7, 49):
        parts = nearest_neighbours(queries, references, batch=batch)
        assert torch.equal(parts[0], whole[0]) and torch.equal(parts[1], whole[1]), batch


def test_never_more_than_a_batch_of_distances_at_once(monkeypatch):
    shapes, cdist = [], torch.cdist
    monkeypatch.setattr(torch, "cdist",
                        lambda a, b, *args, **kw: shapes.append((len(a), len(b))) or cdist(a, b, *args, **kw))
    nearest_neighbours(torch.rand(100, 3), torch.rand(250, 3), batch=32)
    assert shapes == [(32, 250)] * 3 + [(4, 250)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shapes_dtypes_and_device_are_as_documented(dtype):
    dist, idx = nearest_neighbours(torch.rand(9, 4, dtype=dtype), torch.rand(20, 4, dtype=dtype))
    assert dist.shape == idx.shape == (9,)
    assert dist.dtype == dtype and idx.dtype == torch.int64
    assert dist.device.type == idx.device.type == "cpu"
    assert ((idx >= 0) & (idx < 20)).all()


def test_bad_input_is_refused_in_plain_words():
    with pytest.raises(TypeError, match="pixel_vectors"):
        nearest_neighbours(torch.zeros(3, 4, dtype=torch.uint8), torch.zeros(5, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\[n, d\]"):
        nearest_neighbours(torch.rand(3, 4), torch.rand(5, 6))


@pytest.mark.parametrize("data", ["random", "real"])
def test_a_planted_training_image_is_found_at_distance_0_with_its_index(data, judge, real):
    if data == "random":
        train, test, others = random_images(300, 0), random_images(40, 1), random_images(25, 2)
    else:
        train, test = real
        others = test[100:125]                       # real images, none of them in this training set
    planted = {3: 17, 11: 250, 20: 299}              # sample position -> training index
    samples = others.clone()
    for pos, i in planted.items():
        samples[pos] = train[i]
    m = memorisation(samples, train, test, judge)
    pos, where = list(planted), list(planted.values())
    for space, tol in (("pixels", 0.0), ("judge", 1e-4)):    # judge: float32 arithmetic varies with the batch
        dist, idx = m[space]["samples"]
        assert idx[pos].tolist() == where, space
        assert (dist[pos] <= tol).all(), (space, dist[pos])
        others_at = [j for j in range(len(samples)) if j not in planted]
        assert (dist[others_at] > 100 * max(tol, 1e-4)).all(), space   # new images are not at 0


def test_memorisation_returns_n_test_images_and_the_documented_fields(judge):
    train, samples, test = random_images(200, 3), random_images(30, 4), random_images(80, 5)
    m = memorisation(samples, train, test, judge)
    assert m["n"] == 30 and m["test_images"].shape == (30, 28, 28) and m["test_images"].dtype == torch.uint8
    # the test images used are distinct rows of the test set
    rows = {bytes(t.flatten().tolist()) for t in test}
    assert all(bytes(t.flatten().tolist()) in rows for t in m["test_images"])
    assert len({bytes(t.flatten().tolist()) for t in m["test_images"]}) == 30
    # drawn at random, not the first n, and by its own seed: the caller's RNG is left alone
    assert not torch.equal(m["test_images"], test[:30])
    assert m["test_index"].dtype == torch.int64 and torch.equal(test[m["test_index"]], m["test_images"])
    state = torch.get_rng_state()
    assert not torch.equal(memorisation(samples, train, test, judge, seed=1)["test_images"], m["test_images"])
    assert torch.equal(torch.get_rng_state(), state)
    for space in ("judge", "pixels"):
        for who in ("samples", "test"):
            dist, idx = m[space][who]
            assert dist.shape == idx.shape == (30,) and idx.dtype == torch.int64 and dist.device.type == "cpu"
            assert ((idx >= 0) & (idx < 200)).all()
        s = m["summary"][space]
        assert set(s) == {"median_samples", "median_test", "test_5th_percentile", "share_below"}
        assert s["median_test"] == pytest.approx(m[space]["test"][0].double().quantile(0.5).item())
    # the pixel distances of the test images are those of their own nearest-neighbour search
    dist, idx = nearest_neighbours(pixel_vectors(m["test_images"]), pixel_vectors(train))
    assert torch.equal(idx, m["pixels"]["test"][1])
    with pytest.raises(ValueError, match="at least as many test images"):
        memorisation(samples, train, test[:10], judge)
    with pytest.raises(TypeError, match="uint8"):
        memorisation(samples.float(), train, test, judge)


def test_a_model_that_only_copies_scores_share_1_and_new_images_about_5_percent(judge, real):
    train, test = real
    copies = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:100]]
    copied = memorisation(copies, train, test, judge)["summary"]
    new = memorisation(test[100:200], train, test[:100], judge)["summary"]      # unseen real images
    for space in ("judge", "pixels"):
        assert copied[space]["share_below"] == 1.0 and copied[space]["median_samples"] < 1e-4
        assert new[space]["share_below"] < 0.2 and copied[space]["median_test"] > 1
