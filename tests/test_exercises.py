"""Every exercise checker accepts a right answer, and rejects wrong ones with a hint that names the
mistake, a shape, an error or a stub: no checker passes everything."""
import math

import pytest
import torch

from fmnist_ldm import exercises as ex

# right answers, written as a student would (the notebooks' solution cells hold the same)
RIGHT = {
    "check_to_model_range": lambda x: (x.float() / 127.5 - 1).unsqueeze(1),
    "check_class_means": lambda x, y: torch.stack([x[y == c].float().mean(0) for c in range(10)]),
    "check_reparameterize": lambda mean, logvar, eps: mean + torch.exp(0.5 * logvar) * eps,
    "check_kl": lambda mean, logvar: (0.5 * (mean**2 + logvar.exp() - 1 - logvar)).sum((1, 2, 3)).mean(),
    "check_timestep_embedding": lambda t, dim: (lambda a: torch.cat([a.cos(), a.sin()], -1))(
        t[:, None].float() * torch.exp(-math.log(10000) * torch.arange(dim // 2) / (dim // 2))),
    "check_attention": lambda q, k, v: torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), -1) @ v,
    "check_cosine_abar": lambda T: (lambda f: f(torch.arange(1, T + 1)) / f(torch.tensor(0)))(
        lambda t: torch.cos((t / T + 0.008) / 1.008 * math.pi / 2) ** 2),
    "check_q_sample": lambda x0, t, noise, abar: (lambda a: a.sqrt() * x0 + (1 - a).sqrt() * noise)(abar[t].view(-1, 1, 1, 1)),
    "check_v_to_x0_eps": lambda v, x, a: (a.sqrt() * x - (1 - a).sqrt() * v, (1 - a).sqrt() * x + a.sqrt() * v),
    "check_cfg": lambda u, c, w: u + w * (c - u),
    "check_ddim_step": lambda x0, eps, an: math.sqrt(an) * x0 + math.sqrt(1 - an) * eps,
    "check_majority_cells": lambda m: (m[:, None].float().unflatten(2, (7, 4)).unflatten(4, (7, 4)).mean((3, 5)) > 0.5).float(),
    "check_frechet_distance": lambda m1, s1, m2, s2: ((m1 - m2) ** 2).sum() + torch.trace(s1 + s2)
    - 2 * torch.linalg.eigvals(s1 @ s2).sqrt().real.sum(),
    "check_precision": lambda real, fake, k: (torch.cdist(fake, real) <= torch.cdist(real, real).kthvalue(k + 1, 1).values).any(1).float().mean(),
    "check_renoise": lambda z0, a, noise: math.sqrt(a) * z0 + math.sqrt(1 - a) * noise,
    "check_distill_loss": lambda v, z, a, end: ((a.sqrt() * z - (1 - a).sqrt() * v - end) ** 2).mean(),
}

# one typical mistake per checker, and a word its hint must contain
WRONG = {
    "check_to_model_range": (lambda x: (x.float() / 255).unsqueeze(1), "[-1, 1]"),
    "check_class_means": (lambda x, y: torch.stack([x.float().mean(0)] * 10), "images[labels == c]"),
    "check_reparameterize": (lambda mean, logvar, eps: mean + logvar.exp() * eps, "exp(logvar / 2)"),
    "check_kl": (lambda mean, logvar: (mean**2 + logvar.exp() - 1 - logvar).sum((1, 2, 3)).mean(), "1/2"),
    "check_timestep_embedding": (lambda t, dim: (lambda a: torch.cat([a.sin(), a.cos()], -1))(
        t[:, None].float() * torch.exp(-math.log(10000) * torch.arange(dim // 2) / (dim // 2))), "swapped"),
    "check_attention": (lambda q, k, v: torch.softmax(q @ k.transpose(-1, -2), -1) @ v, "sqrt(d)"),
    "check_cosine_abar": (lambda T: (lambda f: f(torch.arange(T)) / f(torch.tensor(0)))(
        lambda t: torch.cos((t / T + 0.008) / 1.008 * math.pi / 2) ** 2), "off by one"),
    "check_q_sample": (lambda x0, t, noise, abar: (lambda a: a * x0 + (1 - a) * noise)(abar[t].view(-1, 1, 1, 1)), "square roots"),
    "check_v_to_x0_eps": (lambda v, x, a: ((1 - a).sqrt() * x + a.sqrt() * v, a.sqrt() * x - (1 - a).sqrt() * v), "swapped"),
    "check_cfg": (lambda u, c, w: c + w * (c - u), "unconditional"),
    "check_ddim_step": (lambda x0, eps, an: an * x0 + (1 - an) * eps, "square roots"),
    "check_majority_cells": (lambda m: torch.nn.functional.max_pool2d(m[:, None].float(), 4), "any pixel"),
    "check_frechet_distance": (lambda m1, s1, m2, s2: ((m1 - m2) ** 2).sum() + torch.trace(s1 + s2)
                               - torch.linalg.eigvals(s1 @ s2).sqrt().real.sum(), "twice"),
    "check_precision": (lambda real, fake, k: (torch.cdist(fake, real) <= torch.cdist(real, real).kthvalue(k, 1).values).any(1).float().mean(), "kthvalue(k + 1)"),
    "check_renoise": (lambda z0, a, noise: z0 + math.sqrt(1 - a) * noise, "scaled down"),
    "check_distill_loss": (lambda v, z, a, end: ((v - end) ** 2).mean(), "outputs v"),
}


def test_every_checker_is_covered():
    assert set(RIGHT) == set(WRONG) == set(ex.__all__)


@pytest.mark.parametrize("name", sorted(RIGHT))
def test_a_right_answer_passes(name, capsys):
    assert getattr(ex, name)(RIGHT[name]) is True
    assert capsys.readouterr().out.startswith("✓")


@pytest.mark.parametrize("name", sorted(WRONG))
def test_a_wrong_answer_fails_with_a_hint_that_names_the_mistake(name, capsys):
    wrong, word = WRONG[name]
    assert getattr(ex, name)(wrong) is False
    out = capsys.readouterr().out
    assert out.startswith("✗") and word in out, out


@pytest.mark.parametrize("name", sorted(RIGHT))
def test_a_stub_an_error_and_a_missing_return_are_wrong_answers_not_crashes(name, capsys):
    def stub(*args):
        raise NotImplementedError

    def broken(*args):
        return torch.zeros(3) @ torch.zeros(4)     # a shape error from torch, inside the student's code

    def forgot_return(*args):
        pass

    check = getattr(ex, name)
    assert check(stub) is False and "not written yet" in capsys.readouterr().out
    assert check(broken) is False and "raised RuntimeError" in capsys.readouterr().out
    assert check(forgot_return) is False and "returned None" in capsys.readouterr().out


def test_a_known_mistake_of_another_shape_is_named(capsys):
    assert ex.check_to_model_range(lambda x: x.float() / 127.5 - 1) is False     # no channel axis
    assert "channel axis" in capsys.readouterr().out


def test_a_shape_mismatch_says_both_shapes(capsys):
    ex.check_cfg(lambda u, c, w: (u + w * (c - u))[0])
    out = capsys.readouterr().out
    assert "shape (4, 7, 7), expected (3, 4, 7, 7)" in out


def test_each_notebook_has_two_to_four_exercises_each_with_a_checked_hidden_solution():
    """The notebooks' side: a stub the student fills in, calling its checker, then a hidden
    solution cell that asserts the same checker (so nbval runs every solution through it)."""
    from pathlib import Path
    import jupytext
    used = set()
    for path in sorted(Path(__file__).resolve().parent.parent.glob("notebooks/0*.ipynb")):
        code = [c for c in jupytext.read(path).cells if c.cell_type == "code"]
        stubs = [c for c in code if "raise NotImplementedError" in c.source and "check_" in c.source]
        solutions = [c for c in code if "solution" in c.metadata.get("tags", [])]
        assert 2 <= len(stubs) <= 4, f"{path.name}: {len(stubs)} exercises"
        assert len(solutions) == len(stubs), path.name
        for stub, sol in zip(stubs, solutions):
            check = next(w for w in stub.source.split() if w.startswith("check_") and "(" not in w)
            assert f"assert {check}(" in sol.source, f"{path.name}: the solution to {check} is not checked"
            assert sol.metadata.get("jupyter", {}).get("source_hidden") and sol.metadata.get("cellView") == "form"
            used.add(check)
    assert used == set(ex.__all__), f"checkers no notebook uses: {set(ex.__all__) - used}"
