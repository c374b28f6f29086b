"""Behaviour stays: the shipped weights draw, for the same seeds and inputs, the images that the
code drew before the samplers moved into fmnist_ldm/samplers/ (tests/data/reference_images.npz,
made by tests/data/make_reference_images.py), for every sampler and entry point.

In float32 (FMNIST_AMP=fp32), since bf16 on a CPU that has it rounds differently by design.
Equal, or at most one grey level apart: float32 convolutions take other kernels on other CPUs
(AVX2, AVX-512, AMX), whose sums round differently in the last bits, and a value that sits at a
grey level's edge can round to the neighbour when the image is turned into uint8."""
import sys
from pathlib import Path

import numpy as np
import pytest

from fmnist_ldm.pipeline import Pipeline

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "data"))
from make_reference_images import reference_images  # noqa: E402


@pytest.fixture(scope="module")
def images_now():
    mp = pytest.MonkeyPatch()
    mp.setenv("FMNIST_AMP", "fp32")
    try:
        yield reference_images(Pipeline.from_pretrained(device="cpu"))
    finally:
        mp.undo()


REFERENCE = np.load(HERE / "data" / "reference_images.npz")


@pytest.mark.parametrize("what", sorted(REFERENCE.files))
def test_the_same_seed_draws_the_same_images_as_before(images_now, what):
    now, before = images_now[what].astype(int), REFERENCE[what].astype(int)
    assert now.shape == before.shape
    diff = np.abs(now - before)
    assert diff.max() <= 1, f"{what}: {int((diff > 1).sum())} pixels differ by more than one grey level (max {diff.max()})"
