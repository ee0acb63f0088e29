"""Trained models on demand: trained once, then loaded; any change of configuration trains anew."""

import dataclasses

import pytest
import torch

from deconvnet.config import DataConfig, ModelConfig, Preset, TrainConfig
from deconvnet.train.pipeline import trained_model

TINY = Preset(
    name="tiny",
    description="a preset small enough for a unit test",
    model=ModelConfig(width=0.0625, input_size=64, fc_kernel=2, pretrained=False),
    data=DataConfig(train_images=8, val_images=3, image_size=80, proposal_side=80, max_proposals=200),
    stage1=TrainConfig(iterations=2, batch_size=2, accumulate=1, lr_step=10, log_every=1, val_every=2,
                       val_images=2, checkpoint_every=2, workers=0),
    stage2=TrainConfig(iterations=2, batch_size=2, accumulate=1, lr_step=10, log_every=1, val_every=2,
                       val_images=2, checkpoint_every=2, workers=0),
)


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    return {"runs": root / "runs", "data_root": root / "data"}


def test_two_stages_then_reuse(dirs):
    first = trained_model(TINY, "two_stage", stage=2, **dirs)
    assert not first.reused and first.run_dir.name.startswith("two_stage-stage2-")
    assert len(list((dirs["runs"] / "tiny").glob("two_stage-stage1-*/final.pt"))) == 1, "stage 1 came first"
    assert not list((dirs["runs"] / "tiny").glob("*/last.pt")), "a finished run keeps final.pt, not its resume state"
    again = trained_model(TINY, "two_stage", stage=2, **dirs)
    assert again.reused and again.run_dir == first.run_dir
    for name, value in first.model.state_dict().items():
        assert torch.equal(value, again.model.state_dict()[name])
    assert again.history["val"][-1]["step"] == 2


def test_a_changed_config_is_not_served_a_stale_model(dirs):
    base = trained_model(TINY, "two_stage", stage=1, **dirs)
    changed = dataclasses.replace(TINY, stage1=dataclasses.replace(TINY.stage1, lr=0.02))
    other = trained_model(changed, "two_stage", stage=1, **dirs)
    assert not other.reused and other.run_dir != base.run_dir


def test_recipes(dirs):
    no_bn = trained_model(TINY, "no_bn", stage=1, **dirs)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in no_bn.model.modules())
    only = trained_model(TINY, "stage2_only", stage=2, **dirs)
    both = trained_model(TINY, "two_stage", stage=2, **dirs)
    steps = [[r["step"] for r in t.history["train"]] for t in (only, both)]
    rates = [[r["lr"] for r in t.history["train"]] for t in (only, both)]
    assert steps[0] == steps[1] and rates[0] == rates[1], "the same steps and learning-rate drops"
    first = trained_model(TINY, "stage2_only", stage=1, **dirs)
    assert first.run_dir.name.startswith("stage2_only-stage1-")
    with pytest.raises(ValueError, match="valid recipes are: two_stage, stage2_only, no_bn"):
        trained_model(TINY, "one_stage", **dirs)
    with pytest.raises(ValueError, match="has stages 1..2"):
        trained_model(TINY, "stage2_only", stage=3, **dirs)


def test_stage0_classifier_starts_every_recipe(dirs):
    """With ``Preset.pretrain`` every recipe starts from one cached shape classifier (stage 0)."""
    from deconvnet.train.pipeline import pretrained_classifier

    with pytest.raises(ValueError, match="has no stage 0"):
        pretrained_classifier(TINY, **dirs)
    staged = dataclasses.replace(TINY, pretrain=dataclasses.replace(TINY.stage1, iterations=3))
    first = trained_model(staged, "two_stage", stage=1, **dirs)
    classifier = pretrained_classifier(staged, **dirs)
    assert classifier.reused and classifier.run_dir.name.startswith("pretrain-")
    assert classifier.history["train"][-1]["step"] == 3
    plain = trained_model(TINY, "two_stage", stage=1, **dirs)
    assert first.run_dir != plain.run_dir, "stage 0 is part of what made the model"
    fcn = trained_model(staged, "two_stage", stage=1, kind="fcn8s", **dirs)
    assert not fcn.reused
    assert len(list((dirs["runs"] / "tiny").glob("pretrain-*/final.pt"))) == 1, "one classifier for all"


def test_stage0_on_imagenet_starts_from_vgg16_and_its_encoder_reaches_the_network(dirs):
    """With ImageNet's encoder and a stage 0, the classifier starts from VGG16 and hands its encoder on."""
    from deconvnet.model.network import build_model
    from deconvnet.train.pipeline import pretrained_classifier

    model = dataclasses.replace(TINY.model, width=1.0, pretrained=True)
    still = dataclasses.replace(TINY.stage1, iterations=1, lr=1e-12)  # a step that leaves the weights as they were
    staged = dataclasses.replace(TINY, name="tiny-imagenet", model=model, pretrain=still, stage1=still)
    classifier = pretrained_classifier(staged, **dirs).model
    conv1_1 = "encoder.blocks.0.0.weight"
    vgg = dict(build_model(model).named_parameters())[conv1_1]  # ImageNet's conv1_1
    assert vgg.abs().max() > 0.1, "ImageNet's conv1_1, not a Gaussian of std 0.01"
    torch.testing.assert_close(dict(classifier.named_parameters())[conv1_1], vgg, rtol=0, atol=1e-6)
    net = trained_model(staged, "two_stage", stage=1, **dirs).model
    fc6 = dict(net.named_parameters())["fc6.0.weight"]
    torch.testing.assert_close(fc6, dict(classifier.named_parameters())["fc6.0.weight"], rtol=0, atol=1e-6)
