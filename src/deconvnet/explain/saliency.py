"""Five ways to see what drives one class score, all by backpropagating it to the input (chapter 7 demo).

They differ only in what crosses a ReLU on the way back:

* ``vanilla``: the ReLU's own derivative, i.e. the plain gradient (Simonyan et al. 2014).
* ``deconvnet``: only the positive part of the backward signal, whatever the forward input was
  (Zeiler & Fergus 2014); with max pools routing the signal to their switches this is the projection of
  ``projection.project`` and the unpooling of Noh et al. 2015 Sec. 3.1.1 (chapter 2).
* ``guided``: the backward signal where both it and the forward input are positive (Springenberg et al. 2015).
* ``gradcam``: channel weights = spatial mean of the gradient at one layer, ReLU of the weighted sum of that
  layer's maps, upsampled to the input (Selvaraju et al. 2017, Eqs. 1-2).
* ``guided_gradcam``: guided backpropagation times the upsampled Grad-CAM (Selvaraju et al. 2017, Sec. 3.1).

Max pools need no rule of their own: their gradient already sends the signal to the switches. The ReLU rules
work on any model whose nonlinearities are modules (``nn.ReLU``, ``nn.ReLU6``, in-place or not): while a rule is
active each such module is swapped for one that computes the same forward and the rule's backward. Calls of
``torch.nn.functional.relu`` inside a ``forward`` cannot be swapped; a model without ReLU modules is refused.

Every function takes ``classes``, one target class per batch item (or one int for all), and returns maps of the
input's size. The model's outputs may be ``(N, K)`` logits or ``(N, K, H, W)`` score maps; for the latter
``region`` (N, H, W) selects the pixels whose scores are summed (chapter 7, our DeconvNet).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext

import torch
import torch.nn.functional as F
from torch import nn

METHODS = ("vanilla", "deconvnet", "guided", "gradcam", "guided_gradcam")
RULES = ("deconvnet", "guided")


class _ReLURule(torch.autograd.Function):
    """Forward: clamp to ``[low, high]`` like the module it replaces. Backward: the chosen rule."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, low: float, high: float | None, rule: str) -> torch.Tensor:
        ctx.rule = rule
        if rule == "guided":
            # the forward mask is all guided backprop needs; a bool copy cannot be overwritten by in-place ops
            ctx.save_for_backward((x > low) & (x < high) if high is not None else x > low)
        return x.clamp(min=low, max=high)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        if ctx.rule == "deconvnet":
            return grad.clamp(min=0), None, None, None  # Zeiler & Fergus: ignore the forward mask
        (passed,) = ctx.saved_tensors
        return (grad * passed).clamp(min=0), None, None, None  # Springenberg et al.: both must be positive


class _RuleReLU(nn.Module):
    """Stands in for one ReLU-like module while ``relu_rule`` is active."""

    def __init__(self, low: float, high: float | None, rule: str):
        super().__init__()
        self.low, self.high, self.rule = low, high, rule

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ReLURule.apply(x, self.low, self.high, self.rule)


def _relu_range(module: nn.Module) -> tuple[float, float | None] | None:
    """``(low, high)`` of a ReLU-like module (ReLU: 0..inf, ReLU6: 0..6), else None."""
    if isinstance(module, nn.ReLU):
        return 0.0, None
    if isinstance(module, nn.Hardtanh) and module.min_val == 0:  # nn.ReLU6 is Hardtanh(0, 6)
        return 0.0, float(module.max_val)
    return None


@contextmanager
def relu_rule(model: nn.Module, rule: str) -> Iterator[nn.Module]:
    """Swap every ReLU-like module of ``model`` for one with ``rule``'s backward; put them back on exit."""
    if rule not in RULES:
        raise ValueError(f"unknown ReLU rule {rule!r}; valid rules are: {', '.join(RULES)}")
    swapped = [(parent, name, child) for parent in model.modules() for name, child in parent._modules.items()
               if child is not None and _relu_range(child) is not None]
    if not swapped:
        raise ValueError(f"{type(model).__name__} has no ReLU-like modules (nn.ReLU, nn.ReLU6) whose backward "
                         "could be changed; functional relu calls cannot be swapped")
    try:
        for parent, name, child in swapped:
            parent._modules[name] = _RuleReLU(*_relu_range(child), rule)
        yield model
    finally:
        for parent, name, child in swapped:
            parent._modules[name] = child


@contextmanager
def _evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode for the duration: batch items must not share BN statistics or dropout masks."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def find_layer(model: nn.Module, layer: str) -> nn.Module:
    """The submodule called ``layer`` (a name from ``model.named_modules()``); a bad name lists the valid ones."""
    modules = dict(model.named_modules())
    modules.pop("", None)
    if layer not in modules:
        raise ValueError(f"unknown layer {layer!r} in {type(model).__name__}; valid layers are: "
                         + ", ".join(modules))
    return modules[layer]


@contextmanager
def tap(model: nn.Module, layer: str) -> Iterator[list[torch.Tensor]]:
    """Collect the output of ``layer`` at every call (a reused module is read at its last call, ``taps[-1]``)."""
    module = find_layer(model, layer)
    taps: list[torch.Tensor] = []

    def keep(_module, _args, output):
        first = output[0] if isinstance(output, tuple) else output
        taps.append(first)
        # a later in-place op (the ReLU after a conv) must not overwrite the maps we keep
        first = first.clone()
        return (first, *output[1:]) if isinstance(output, tuple) else first

    handle = module.register_forward_hook(keep)
    try:
        yield taps
    finally:
        handle.remove()


def _targets(classes: int | Sequence[int] | torch.Tensor, n: int, device: torch.device) -> torch.Tensor:
    classes = torch.as_tensor(classes, dtype=torch.long, device=device).reshape(-1)
    if classes.numel() == 1:
        classes = classes.expand(n)
    if classes.numel() != n:
        raise ValueError(f"got {classes.numel()} target classes for a batch of {n}: give one per image or one int")
    return classes


def _score(output: torch.Tensor, classes: torch.Tensor, region: torch.Tensor | None) -> torch.Tensor:
    """Sum over the batch of each item's target score; items are independent, so each gets its own gradient."""
    if output.dim() not in (2, 4):
        raise ValueError(f"expected logits (N, K) or score maps (N, K, H, W), got {tuple(output.shape)}")
    scores = output[torch.arange(len(classes), device=output.device), classes]  # (N,) or (N, H, W)
    if region is not None:
        if output.dim() != 4:
            raise ValueError("region needs a model with score maps (N, K, H, W)")
        scores = scores * region.to(scores.dtype)
    return scores.sum()


def _input_gradient(model, x, classes, region) -> torch.Tensor:
    """Gradient of the target scores w.r.t. the input, under whatever ReLU rule is active, ``(N, C, H, W)``."""
    return _shared_gradients(model, x, [(classes, region)])[0][0]


def vanilla(model: nn.Module, x: torch.Tensor, classes, region=None) -> torch.Tensor:
    """The plain gradient of each item's class score w.r.t. its input pixels, ``(N, C, H, W)``."""
    return _input_gradient(model, x, classes, region)


def deconvnet(model: nn.Module, x: torch.Tensor, classes, region=None) -> torch.Tensor:
    """Zeiler & Fergus (2014): at each ReLU pass the positive part of the backward signal, ``(N, C, H, W)``."""
    with relu_rule(model, "deconvnet"):
        return _input_gradient(model, x, classes, region)


def guided_backprop(model: nn.Module, x: torch.Tensor, classes, region=None) -> torch.Tensor:
    """Springenberg et al. (2015): pass the signal where forward input and signal are positive, ``(N, C, H, W)``."""
    with relu_rule(model, "guided"):
        return _input_gradient(model, x, classes, region)


def grad_cam(model: nn.Module, x: torch.Tensor, classes, layer: str, region=None,
             upsample: bool = True) -> torch.Tensor:
    """Selvaraju et al. (2017): the class-discriminative map of ``layer``, ``(N, 1, H, W)`` (or the layer's size).

    Pick a late convolutional layer (after its ReLU); the map is not normalised, so values compare across
    classes of one image. The map itself is ``cam_from_gradients``.
    """
    x = x.detach().clone().requires_grad_(True)  # makes a graph even when the model's weights are frozen
    with torch.enable_grad(), _evaluating(model), tap(model, layer) as taps:
        score = _score(model(x), _targets(classes, len(x), x.device), region)
        if not taps:
            raise ValueError(f"layer {layer!r} is not called in {type(model).__name__}'s forward pass")
        maps = taps[-1]  # (N, C, h, w)
        (grads,) = torch.autograd.grad(score, maps)
    return cam_from_gradients(grads, maps.detach(), x.shape[-2:] if upsample else None)


def cam_from_gradients(grads: torch.Tensor, maps: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
    r"""Grad-CAM from a layer's maps ``A`` (N, C, h, w) and the class score's gradient there, ``(N, 1, ...)``.

    .. math:: \alpha_k^c = \frac{1}{Z} \sum_{i, j} \frac{\partial y^c}{\partial A^k_{ij}}, \qquad
              L^c = \mathrm{ReLU}\left( \sum_k \alpha_k^c A^k \right)

    ``size``: upsample bilinearly to the input's ``(H, W)``; None keeps the layer's ``(h, w)``.
    """
    weights = grads.mean((2, 3), keepdim=True)  # (N, C, 1, 1), the paper's alpha_k^c (Eq. 1)
    cam = F.relu((weights * maps).sum(1, keepdim=True))  # (N, 1, h, w), Eq. 2
    if size is None:
        return cam
    return F.interpolate(cam, size=size, mode="bilinear", align_corners=False)  # (N, 1, H, W)


def guided_grad_cam(model: nn.Module, x: torch.Tensor, classes, layer: str, region=None) -> torch.Tensor:
    """Selvaraju et al. (2017): guided backpropagation times the upsampled Grad-CAM, ``(N, C, H, W)``."""
    return guided_backprop(model, x, classes, region) * grad_cam(model, x, classes, layer, region)


def explain(model: nn.Module, x: torch.Tensor, classes, methods: Iterable[str] = METHODS,
            layer: str | None = None, region=None) -> dict[str, torch.Tensor]:
    """Every method in ``methods`` for the same inputs and classes, each computed once (chapter 7 grid).

    ``layer`` is needed by ``gradcam`` and ``guided_gradcam``; guided Grad-CAM reuses the other two maps.
    """
    return explain_targets(model, x, [(classes, region)], methods, layer)[0]


def explain_targets(model: nn.Module, x: torch.Tensor, targets: Sequence[tuple], methods: Iterable[str] = METHODS,
                    layer: str | None = None) -> list[dict[str, torch.Tensor]]:
    """``explain`` for several ``(classes, region)`` targets of the same inputs: one dict of maps per target.

    Each backward rule makes one forward pass that every target's backward pass shares, and the plain rule
    serves the vanilla gradient and Grad-CAM together: chapter 7's pointing game asks four questions of each
    image (two regions x two classes), which took 4 x 4 forward passes where 3 do.
    """
    methods = check_methods(methods)
    if layer is None and {"gradcam", "guided_gradcam"} & set(methods):
        raise ValueError("gradcam and guided_gradcam need a layer name")
    wanted = set(methods)
    maps: list[dict[str, torch.Tensor]] = [{} for _ in targets]
    if wanted & {"vanilla", "gradcam", "guided_gradcam"}:  # the ReLUs' own backward
        cam_layer = layer if wanted & {"gradcam", "guided_gradcam"} else None
        found = _shared_gradients(model, x, targets, cam_layer, inputs="vanilla" in wanted)
        for out, (grad, cam) in zip(maps, found, strict=True):
            out.update(vanilla=grad, gradcam=cam)
    for rule, needed_by in (("deconvnet", {"deconvnet"}), ("guided", {"guided", "guided_gradcam"})):
        if wanted & needed_by:
            with relu_rule(model, rule):
                for out, (grad, _) in zip(maps, _shared_gradients(model, x, targets), strict=True):
                    out[rule] = grad
    for out in maps:
        if "guided_gradcam" in wanted:
            out["guided_gradcam"] = out["guided"] * out["gradcam"]
    return [{m: out[m] for m in methods} for out in maps]


def _shared_gradients(model, x, targets, layer: str | None = None, inputs: bool = True):
    """Per target: the input gradient (if ``inputs``) and Grad-CAM at ``layer`` (if given), from one forward."""
    x = x.detach().clone().requires_grad_(True)
    found = []
    with torch.enable_grad(), _evaluating(model), (tap(model, layer) if layer else nullcontext([])) as taps:
        output = model(x)
        if layer and not taps:
            raise ValueError(f"layer {layer!r} is not called in {type(model).__name__}'s forward pass")
        wrt = ((x,) if inputs else ()) + ((taps[-1],) if layer else ())
        for i, (classes, region) in enumerate(targets):
            score = _score(output, _targets(classes, len(x), x.device), region)
            grads = torch.autograd.grad(score, wrt, retain_graph=i < len(targets) - 1)
            cam = cam_from_gradients(grads[-1], taps[-1].detach(), x.shape[-2:]) if layer else None
            found.append((grads[0] if inputs else None, cam))
    return found


def check_methods(methods: str | Iterable[str]) -> tuple[str, ...]:
    """``"all"``, ``"vanilla,guided"`` or a list, as a tuple of valid method names; unknown ones are refused."""
    if isinstance(methods, str):
        methods = METHODS if methods == "all" else [m.strip() for m in methods.split(",") if m.strip()]
    methods = tuple(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"unknown method(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
                         f"valid methods are: {', '.join(METHODS)} (or 'all')")
    return methods


class RegionScore(nn.Module):
    """A segmentation net seen as a classifier: per image and class, the scores summed over a region, ``(N, K)``.

    ``region`` is ``(N, H, W)``, one per batch item. Tools written for classifiers (captum) can then explain
    a region of a segmentation map; the functions above take ``region=`` directly and give the same maps,
    which chapter 7 checks on the trained DeconvNet.
    """

    def __init__(self, model: nn.Module, region: torch.Tensor):
        super().__init__()
        self.model = model
        self.register_buffer("region", region.bool())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = self.model(x)  # (N, K, H, W)
        return (scores * self.region[:, None].to(scores.dtype)).sum((2, 3))  # (N, K)
