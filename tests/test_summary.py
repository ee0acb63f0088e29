"""The layer table: computed MACs agree with torch's FLOP counter; parameters with the model."""

from dataclasses import replace

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from deconvnet.config import get_preset
from deconvnet.model.network import build_model
from deconvnet.model.summary import format_table, group_totals, layer_table


@pytest.mark.parametrize("kind", ["deconvnet", "fcn8s"])
@pytest.mark.parametrize("preset", ["quick", "cpu"])
def test_macs_and_params_agree_with_torch(kind, preset):
    cfg = replace(get_preset(preset).model, pretrained=False)
    rows = layer_table(cfg, kind)
    model = build_model(cfg, kind).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.rand(1, 3, cfg.input_size, cfg.input_size))
    assert sum(r.macs for r in rows) * 2 == counter.get_total_flops()
    assert sum(r.params for r in rows) == sum(p.numel() for p in model.parameters())


def test_paper_table_matches_the_release():
    rows = layer_table(get_preset("paper").model)
    names = [r.name for r in rows]
    assert names[:3] == ["conv1_1", "conv1_2", "pool1"] and names[-1] == "score"
    assert names.count("unpool5") == 1 and "fc6_deconv" in names
    assert len([r for r in rows if r.kind in ("conv", "fc", "deconv", "score")]) == 13 + 2 + 1 + 13 + 1
    totals = group_totals(rows)
    assert sum(t["params"] for t in totals.values()) == 251_805_653
    assert 0.87 < totals["fc"]["params"] / 251_805_653 < 0.89
    gmacs = {g: t["macs"] / 1e9 for g, t in totals.items()}
    assert round(gmacs["encoder"], 1) == 15.3 and round(gmacs["decoder"], 1) == 17.1
    assert round(sum(gmacs.values()), 1) == 32.7
    assert rows[names.index("fc7")].output_shape == (4096, 1, 1)
    assert "251,805,653" in format_table(rows)


def test_the_even_kernel_padding_note_stays_off_the_page():
    """PyTorch warns once per process, so a fresh one: chapter 1's table of FCN-8s (fc_kernel=2, "same")."""
    import subprocess
    import sys

    code = "from deconvnet.config import get_preset; from deconvnet.model.summary import layer_table; " \
           "layer_table(get_preset('cpu').model, 'fcn8s')"
    run = subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True, text=True, check=True)
    assert "even kernel lengths" not in run.stderr
