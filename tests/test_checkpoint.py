"""Checkpoints torch cannot or must not load: one line naming the file and what to do, never a traceback."""

import pickle

import pytest
import torch

from deconvnet.train.checkpoint import load_checkpoint, save_checkpoint


class Code:
    """Pickles as a call to print: what a checkpoint carrying code looks like."""

    def __reduce__(self):
        return print, ("this ran",)


@pytest.fixture
def run_dir(tmp_path):
    folder = tmp_path / "runs" / "quick" / "two_stage-stage2-0123456789abcdef"
    save_checkpoint(folder / "final.pt", {"model": {"w": torch.ones(64, 64)}, "history": {}})
    return folder


@pytest.mark.parametrize("cut", ["half", "empty"])
def test_damaged_checkpoint_names_the_file_and_the_run_folder_to_delete(run_dir, cut):
    path = run_dir / "final.pt"
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2] if cut == "half" else b"")
    with pytest.raises(ValueError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert message.startswith(f"checkpoint {path} is damaged or incomplete (")
    assert message.endswith(f"delete its run folder {run_dir} and it is trained again")
    assert "\n" not in message
    assert ("not a complete checkpoint archive" in message) if cut == "half" else "(the file is empty)" in message
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_not_a_checkpoint_at_all(run_dir):
    path = run_dir / "final.pt"
    path.write_bytes(path.read_bytes()[:100])  # the zip's first bytes only
    with pytest.raises(ValueError, match=r"damaged or incomplete \(RuntimeError: PytorchStreamReader failed"):
        load_checkpoint(path)
    path.write_bytes(b"hello world")
    with pytest.raises(ValueError, match=rf"checkpoint {path} is damaged or incomplete .*delete its run folder"):
        load_checkpoint(path)
    torch.save(torch.ones(2), path)  # readable, but a bare tensor, not a checkpoint's dict
    with pytest.raises(ValueError, match=r"damaged or incomplete \(it holds a Tensor"):
        load_checkpoint(path)


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_checkpoint_carrying_code_is_refused_in_one_line_without_torchs_advice(run_dir, capsys, writer):
    path = run_dir / "final.pt"
    if writer == "torch":
        torch.save({"model": Code()}, path)
    else:
        path.write_bytes(pickle.dumps({"model": Code()}, protocol=2))
    with pytest.raises(ValueError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert message.startswith(f"{path} carries pickled Python code (")
    assert "refused" in message and f"delete its run folder {run_dir}" in message
    assert "weights_only" not in message and "\n" not in message
    if writer == "torch":
        assert "it names print" in message
    assert "this ran" not in capsys.readouterr().out, "the code must not run"


def test_good_checkpoint_still_loads(run_dir):
    assert torch.equal(load_checkpoint(run_dir / "final.pt")["model"]["w"], torch.ones(64, 64))


def test_the_code_hash_covers_every_training_file_and_refuses_a_pattern_that_matches_none(tmp_path):
    from deconvnet.train.checkpoint import TRAINING_CODE, code_hash

    (tmp_path / "model.py").write_text("a = 1\n")
    before = code_hash(("model.py",), tmp_path)
    (tmp_path / "model.py").write_text("a = 2\n")
    assert code_hash(("model.py",), tmp_path) != before, "an edit retires the cached models"
    with pytest.raises(FileNotFoundError, match="'layers.py', which matches no file"):
        code_hash(("model.py", "layers.py"), tmp_path)
    code_hash(TRAINING_CODE)  # today's list matches the package
