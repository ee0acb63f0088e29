import pytest
import torch

from deconvnet.config import PRESETS, ModelConfig, auto_preset_name, get_preset


def test_presets_exist_and_unknown_is_refused_with_the_list():
    assert {"quick", "cpu", "paper"} <= set(PRESETS)
    with pytest.raises(ValueError, match="valid presets are: cpu, paper, quick"):
        get_preset("fast")


def test_auto_is_cpu_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # holds on a machine with a GPU too
    assert get_preset("auto").name == auto_preset_name() == "cpu"


def test_paper_preset_has_the_paper_sizes():
    m = get_preset("paper").model
    assert (m.width, m.input_size, m.fc_kernel, m.num_classes, m.batch_norm, m.pretrained) == (
        1.0, 224, 7, 21, True, True)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"input_size": 100}, "multiple of 32"),
        ({"input_size": 96, "fc_kernel": 7}, "fc_kernel=7 must lie in 1..3"),
        ({"width": 0.001, "pretrained": False}, "width"),
        ({"num_classes": 1}, "at least 2 classes"),
        ({"width": 0.5}, "pretrained=True needs width=1.0"),
    ],
)
def test_bad_model_configs_say_what_is_wrong(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**kwargs)


def test_auto_takes_the_paper_preset_when_cuda_is_there(monkeypatch):

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert auto_preset_name() == "paper" and get_preset("auto").name == "paper"


def test_what_chapters_2_3_and_7_measure_is_one_config_per_preset():
    from dataclasses import replace

    from deconvnet.config import ExplainConfig

    cpu = get_preset("cpu").explain  # the paper's settings but for how many objects chapter 7's pointing game scores
    assert cpu.pointing_objects < ExplainConfig().pointing_objects
    assert cpu == replace(ExplainConfig(), pointing_objects=cpu.pointing_objects)
    assert get_preset("paper").explain == ExplainConfig()
    quick = get_preset("quick").explain
    assert quick.probe_eval_images < ExplainConfig().probe_eval_images and dict(quick.projection_channels)
    with pytest.raises(ValueError, match="every count must be >= 1"):
        ExplainConfig(projection_channels=(("conv5_3", 0),))
