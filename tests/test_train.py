"""The engine: exact resume, refused checkpoints, the sample schedule, and 2-process DDP = 1 process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny_training import MODEL, Squares, config, model

from deconvnet.model.network import DeconvNet
from deconvnet.train import engine
from deconvnet.train.checkpoint import cache_key, load_checkpoint, save_checkpoint, signature
from deconvnet.train.distributed import World
from deconvnet.train.engine import StepBatches, pixel_loss, train


def weights(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


def test_training_lowers_the_loss_and_writes_its_files(tmp_path):
    history = train(model(), Squares(), config(iterations=12, lr_step=100), tmp_path)
    losses = [row["loss"] for row in history["train"]]
    assert len(losses) == 12 and losses[-1] < losses[0]
    assert (tmp_path / "final.pt").is_file() and (tmp_path / "last.pt").is_file()
    assert (tmp_path / "log.csv").read_text().splitlines()[0] == "step,loss,lr,seconds"


def test_interrupted_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    reference = model()
    train(reference, Squares(), config(), tmp_path / "a")

    calls = {"n": 0}
    real = engine.pixel_loss

    def crash_in_step_five(*args):
        calls["n"] += 1
        if calls["n"] == 9:  # first micro-batch of step 5: the last checkpoint is after step 4
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(engine, "pixel_loss", crash_in_step_five)
    with pytest.raises(KeyboardInterrupt):
        train(model(), Squares(), config(), tmp_path / "b")
    assert load_checkpoint(tmp_path / "b" / "last.pt")["step"] == 4
    monkeypatch.setattr(engine, "pixel_loss", real)
    resumed = model()
    history = train(resumed, Squares(), config(), tmp_path / "b")
    assert [r["step"] for r in history["train"]] == [1, 2, 3, 4, 5, 6]
    for name, value in reference.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    small = model()
    save_checkpoint(tmp_path / "x.pt", {"model": small.state_dict(), "signature": signature(small)})
    other = DeconvNet(MODEL.__class__(**{**MODEL.__dict__, "width": 0.125}))
    with pytest.raises(ValueError, match="width=0.0625 vs 0.125"):
        load_checkpoint(tmp_path / "x.pt", signature(other))


def test_step_batches_split_the_same_global_batch_over_processes():
    single = StepBatches(10, config(accumulate=4), seed=3, start=0, world=World(0, 1))
    split = [list(StepBatches(10, config(accumulate=2), seed=3, start=0, world=World(r, 2))) for r in range(2)]
    one = list(single)
    for step in range(6):
        for m in range(2):
            for r in range(2):
                assert split[r][step * 2 + m] == one[step * 4 + m * 2 + r]
    resumed = list(StepBatches(10, config(accumulate=4), seed=3, start=2, world=World(0, 1)))
    assert resumed == one[8:]
    items = sorted(k % 10 for batch in one[:10] for k in batch)  # first 20 samples = two whole epochs
    assert items == sorted(list(range(10)) * 2)


def test_pixel_loss_ignores_void_but_counts_all_pixels():
    scores = torch.zeros(1, 3, 2, 2)
    labels = torch.tensor([[[0, 1], [255, 255]]])
    assert torch.isclose(pixel_loss(scores, labels, 4), torch.log(torch.tensor(3.0)) / 2)


def test_cache_key_changes_with_config_and_code(monkeypatch):
    a = cache_key(model=MODEL, train=config())
    assert a == cache_key(model=MODEL, train=config())
    assert a != cache_key(model=MODEL, train=config(lr=0.1))
    monkeypatch.setattr("deconvnet.train.checkpoint.code_hash", lambda: "edited")
    assert a != cache_key(model=MODEL, train=config())


def test_two_processes_match_one_with_the_same_global_batch(tmp_path):
    """torchrun, 2 CPU processes (gloo), batch 2 each = 1 process accumulating 2 batches of 2.

    Steps 1-2 agree to float precision: the same crops, then the same averaged gradient. Later steps drift
    by ~1e-4: the all-reduce sums in another order, and max-pool switches over ReLU zeros (ties) flip on
    such differences, so we allow 1e-3 there. Halving the gradient, a classic DDP slip, moves step 2 by 1e-2.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers: oneDNN splits its sums by thread count, which changes rounding
    try:
        one = train(model(), Squares(), config(accumulate=2), tmp_path / "one")["train"]
    finally:
        torch.set_num_threads(threads)
    tests = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": str(tests), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
           str(tests / "tiny_training.py"), str(tmp_path / "two"), str(tmp_path / "two.json")]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    two = json.loads((tmp_path / "two.json").read_text())
    assert [r["step"] for r in two] == [r["step"] for r in one]
    for i, (a, b) in enumerate(zip(one, two, strict=True)):
        assert abs(a["loss"] - b["loss"]) <= (1e-6 if i < 2 else 1e-3) * abs(a["loss"]), (a, b)


def test_a_frozen_encoder_keeps_its_weights_and_statistics_while_the_rest_learns(tmp_path):
    net = model()
    before = weights(net)
    train(net, Squares(), config(iterations=3, freeze_encoder=True), tmp_path)
    after = net.state_dict()
    encoder = [k for k in before if k.startswith("encoder.")]
    assert encoder and all(torch.equal(before[k], after[k]) for k in encoder), "weights, BN statistics, all"
    assert not torch.equal(before["fc6.0.weight"], after["fc6.0.weight"])


def test_evaluate_samples_pools_per_item_matrices():
    net = model().eval()
    scores = engine.evaluate_samples(net, Squares(n=5), per_item=True, batch_size=2)
    items = scores["per_item"]
    assert len(items) == 5 and all(int(m.sum()) > 0 for m in items)
    pooled = engine.SegmentationMetrics(3, torch.from_numpy(sum(items)))
    assert pooled.mean_iou() == pytest.approx(scores["mean_iou"])
    assert pooled.object_accuracy() == pytest.approx(scores["object_accuracy"])
