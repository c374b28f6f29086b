"""Every exercise checker accepts a right answer, and rejects wrong ones with a hint that names the
mistake, a shape, an error or a stub: no checker passes everything."""
import importlib

import pytest
import torch

from fmnist_ldm.course import exercises as ex
from fmnist_ldm.course.exercises.grading import Verdict

# right answers and typical mistakes, one file per notebook (tests/answers_<NN>_<name>.py)
RIGHT, WRONG = {}, {}
for _num, _module in ex.NOTEBOOK_MODULES.items():
    _answers = importlib.import_module(f"answers_{_num}_{_module.__name__.rsplit('.', 1)[1]}")
    RIGHT.update(_answers.RIGHT)
    WRONG.update(_answers.WRONG)


def passed(verdict) -> bool:
    """A check's result: a Verdict (true or false; a notebook shows nothing of it), never a bool."""
    assert isinstance(verdict, Verdict), type(verdict)
    return verdict.passed


def test_every_checker_is_covered():
    assert set(RIGHT) == set(WRONG) == set(ex.__all__)


@pytest.mark.parametrize("name", sorted(RIGHT))
def test_a_right_answer_passes(name, capsys):
    assert passed(getattr(ex, name)(RIGHT[name])) is True
    assert capsys.readouterr().out.startswith("✓")


@pytest.mark.parametrize("name", sorted(WRONG))
def test_a_wrong_answer_fails_with_a_hint_that_names_the_mistake(name, capsys):
    wrong, word = WRONG[name]
    assert passed(getattr(ex, name)(wrong)) is False
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
    assert passed(check(stub)) is False and "not written yet" in capsys.readouterr().out
    assert passed(check(broken)) is False and "raised RuntimeError" in capsys.readouterr().out
    assert passed(check(forgot_return)) is False and "returned None" in capsys.readouterr().out


def test_a_known_mistake_of_another_shape_is_named(capsys):
    one_number_per_class = lambda x, y, k: torch.stack([x[y == c].float().std() for c in range(k)])
    assert passed(ex.check_class_spread(one_number_per_class)) is False
    assert "pixel by pixel" in capsys.readouterr().out


def test_a_shape_mismatch_says_both_shapes(capsys):
    ex.check_interval_guidance(lambda c, u, t, w, i: (u + w * (c - u))[0])
    assert "shape (3, 6, 7), expected (5, 3, 6, 7)" in capsys.readouterr().out


def test_each_notebook_has_two_to_four_exercises_each_with_a_checked_hidden_solution():
    """The notebooks' side: a stub the student fills in, calling its checker, then a hidden
    solution cell that asserts the same checker (so nbval runs every solution through it). The
    stub's verdict ("✗ ... not written yet", and nothing echoed under it) is the same on every machine: nbval compares it
    with the committed output (tag nbval-check-output), so a checker's changed words show there."""
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
            assert "nbval-check-output" in stub.metadata.get("tags", []), f"{path.name}: {check}'s verdict is not compared"
            used.add(check)
    assert used == set(ex.__all__), f"checkers no notebook uses: {set(ex.__all__) - used}"


def test_an_unknown_wrong_answer_is_told_where_it_is_off(capsys):
    """Past the known mistakes, the message still says which images, channels, ... differ."""
    from fmnist_ldm.course.exercises.grading import grade
    right = torch.arange(5 * 4 * 3 * 2.0).view(5, 4, 3, 2)
    wrong = right.clone()
    wrong[1, 2] += 1
    wrong[3, 2, 0, 1] = float("nan")
    assert passed(grade("t", lambda: wrong, right, axes=("image", "channel", "row", "column"))) is False
    out = capsys.readouterr().out
    assert "images 1, 3 (of 0..4); channel 2 (of 0..3); every row; every column" in out, out
    assert passed(grade("t", lambda: (right, wrong[:, 2:]), (right, right[:, 2:]))) is False
    assert "returned value 2 of 2 differs" in capsys.readouterr().out


def test_a_cell_that_ends_with_a_check_shows_its_line_and_nothing_more():
    """In a kernel, as in a notebook's exercise cell: the ✗ line, no `False` echoed under it; and
    a solution can still assert the check."""
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell, new_notebook
    v = Verdict(False)
    assert not v and v == False and Verdict(True) == True and Verdict(True) and repr(v) == "Verdict(passed=False)"  # noqa: E712
    nb = new_notebook(cells=[new_code_cell(
        "from fmnist_ldm.course.exercises import check_psnr\n"
        "def my_psnr(x, recon):\n    raise NotImplementedError\n\n"
        "check_psnr(my_psnr)"), new_code_cell("assert check_psnr(lambda x, recon: x)")])
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True).execute()
    outs = nb.cells[0].outputs
    assert [(o.output_type, o.name) for o in outs] == [("stream", "stdout")], outs
    assert outs[0].text.startswith("✗ PSNR per image: not written yet"), outs[0].text
    assert [o.output_type for o in nb.cells[1].outputs] == ["stream", "error"]   # a wrong answer fails its assert
