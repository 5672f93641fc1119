"""Stacked-parameter ensembles: H same-structured modules evaluated in one batched pass.

``stack_modules`` turns H independently initialised modules into one module tree whose
parameters carry a leading head dim ``[H, ...]`` (the optimiser sees one tensor per layer, not
H). MLP backbones run as a chain of ``torch.baddbmm`` over the stacked weights; any other
module runs through ``torch.vmap`` over ``torch.func.functional_call`` (tensordict's
``EnsembleModule`` approach), which works for arbitrary modules but costs more per call.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call

from grl_torchrl.nn._products import is_skinny
from grl_torchrl.nn.backbones import ConcatenateMLP, MultiLayerPerceptron

__all__ = [
    "SkinnyStackedLinearReLU",
    "StackedLinearReLU",
    "call_stacked",
    "fused_mlp_path",
    "owner_of",
    "run_fused_mlp",
    "run_stacked_steps",
    "stack_modules",
]


def owner_of(root: nn.Module, name: str) -> tuple[nn.Module, str]:
    path, _, leaf = name.rpartition(".")
    return (root.get_submodule(path) if path else root), leaf


def stack_modules(modules: Sequence[nn.Module]) -> tuple[nn.Module, nn.Module]:
    """Returns ``(stacked, template)`` for modules of identical structure.

    ``stacked`` is a copy of ``modules[0]`` whose every parameter / buffer is replaced by the
    stack over ``modules`` (leading dim ``H``). ``template`` is a parameter-less (meta device)
    copy used as the functional skeleton of one head.
    """
    first = modules[0]
    stacked = copy.deepcopy(first)
    with torch.no_grad():
        for name, param in first.named_parameters():
            owner, leaf = owner_of(stacked, name)
            data = torch.stack([m.get_parameter(name) for m in modules])
            setattr(owner, leaf, nn.Parameter(data, requires_grad=param.requires_grad))
        for name, _ in first.named_buffers():
            owner, leaf = owner_of(stacked, name)
            owner._buffers[leaf] = torch.stack([m.get_buffer(name) for m in modules])
    return stacked, copy.deepcopy(first).to("meta")


def _select(t: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
    return t if index is None else t.index_select(0, index)


def call_stacked(
    stacked: nn.Module,
    template: nn.Module,
    args: Sequence,
    per_head: Sequence[bool],
    index: torch.Tensor | None,
) -> tuple[torch.Tensor, bool]:
    """Evaluates the heads (all, or those in ``index``) of a stacked module on ``args``.

    ``per_head[i]`` says whether ``args[i]`` carries a leading head dim. Returns the output and
    whether it carries a head dim (a module without parameters or buffers, fed no per-head
    input, runs once and is shared by all heads).
    """
    params = {n: _select(p, index) for n, p in stacked.named_parameters()}
    buffers = {n: _select(b, index) for n, b in stacked.named_buffers()}
    arg_dims = tuple(0 if flag else None for flag in per_head)
    if not params and not buffers:
        if not any(per_head):
            return stacked(*args), False
        return torch.vmap(stacked, in_dims=arg_dims, randomness="different")(*args), True

    def one_head(p, b, *a):
        return functional_call(template, (p, b), a)

    vmapped = torch.vmap(one_head, in_dims=(0, 0, *arg_dims), randomness="different")
    return vmapped(params, buffers, *args), True


def fused_mlp_path(backbone: nn.Module) -> str | None:
    """Path of the ``nn.Sequential`` to fuse in an MLP backbone, or ``None`` if not fusable."""
    if isinstance(backbone, ConcatenateMLP):
        path = "model.model"
    elif isinstance(backbone, MultiLayerPerceptron):
        path = "model"
    else:
        return None
    mlp = backbone.model if isinstance(backbone, ConcatenateMLP) else backbone
    if not isinstance(mlp.scale, float):  # upstream's output scale: the vmap path applies it
        return None
    for layer in backbone.get_submodule(path):
        stateless = not any(True for _ in layer.parameters()) and not any(
            True for _ in layer.buffers()
        )
        if not (isinstance(layer, (nn.Linear, nn.LayerNorm)) or stateless):
            return None
    return path


def run_fused_mlp(
    sequential: nn.Sequential, x: torch.Tensor, index: torch.Tensor | None
) -> torch.Tensor:
    """Runs a stacked MLP ``nn.Sequential`` on ``x`` of shape ``[H', N, d]`` -> ``[H', N, out]``.

    Linear layers become one ``baddbmm`` each over the stacked ``[H, out, in]`` weights;
    parameter-free layers (activations, dropout) act elementwise on all heads at once.
    """
    steps: list[tuple] = []
    for layer in sequential:
        if isinstance(layer, nn.Linear):
            bias = None if layer.bias is None else _select(layer.bias, index)
            steps.append(("linear", _select(layer.weight, index), bias))
        elif isinstance(layer, nn.LayerNorm):
            weight = None if layer.weight is None else _select(layer.weight, index)
            bias = None if layer.bias is None else _select(layer.bias, index)
            steps.append(("layernorm", layer, weight, bias))
        else:
            steps.append(("apply", layer))
    return run_stacked_steps(x, steps, skinny_layout=True)


def run_stacked_steps(
    x: torch.Tensor, steps: Sequence[tuple], *, skinny_layout: bool = False
) -> torch.Tensor:
    """Runs resolved MLP steps over stacked heads: ``x`` ``[H, N, d]`` -> ``[H, N, out]``.

    Each step is ``("linear", weight [H, out, in], bias [H, out] | None)``,
    ``("layernorm", layer, weight [H, d] | None, bias [H, d] | None)`` or ``("apply", module)``
    (a parameter-free layer applied to all heads at once). A chain of Linear layers each
    optionally followed by ``nn.ReLU`` runs through :class:`StackedLinearReLU`; anything else
    runs op by op under autograd. Both give the same values and gradients, bit for bit.
    ``skinny_layout=True`` runs the chain through :class:`SkinnyStackedLinearReLU` instead
    (faster skinny products, the same values to float rounding).

    >>> import torch
    >>> w, b = torch.randn(2, 4, 3), torch.randn(2, 4)
    >>> x = torch.randn(2, 5, 3)
    >>> y = run_stacked_steps(x, [("linear", w, b), ("apply", torch.nn.ReLU())])
    >>> torch.equal(y, torch.relu(torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))))
    True
    """
    plan = _linear_relu_plan(steps)
    if plan is not None:
        relu_after, weights, biases = plan
        function = SkinnyStackedLinearReLU if skinny_layout else StackedLinearReLU
        tensors = (x, *weights, *(b for b in biases if b is not None))
        if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
            return function.apply(x, relu_after, *weights, *biases)[0]
        # nothing to differentiate (a target, say): the same ops, without the Function
        return function.forward(x, relu_after, *weights, *biases)[0]
    return _run_steps_with_autograd(x, steps)


def _run_steps_with_autograd(x: torch.Tensor, steps: Sequence[tuple]) -> torch.Tensor:
    for step in steps:
        kind = step[0]
        if kind == "linear":
            weight = step[1].transpose(1, 2)
            if step[2] is None:
                x = torch.bmm(x, weight)
            else:
                x = torch.baddbmm(step[2].unsqueeze(1), x, weight)
        elif kind == "layernorm":
            layer = step[1]
            x = nn.functional.layer_norm(x, layer.normalized_shape, eps=layer.eps)
            if step[2] is not None:
                x = x * step[2].unsqueeze(1)
            if step[3] is not None:
                x = x + step[3].unsqueeze(1)
        else:
            x = step[1](x)
    return x


def _linear_relu_plan(steps: Sequence[tuple]) -> tuple | None:
    relu_after: list[bool] = []
    weights: list[torch.Tensor] = []
    biases: list[torch.Tensor | None] = []
    for step in steps:
        if step[0] == "linear":
            relu_after.append(False)
            weights.append(step[1])
            biases.append(step[2])
        elif step[0] == "apply" and type(step[1]) is nn.ReLU and relu_after and not relu_after[-1]:
            relu_after[-1] = True
        else:
            return None
    return (tuple(relu_after), weights, biases) if weights else None


class StackedLinearReLU(torch.autograd.Function):
    """``baddbmm`` (+ ReLU) layers over stacked heads, with a hand-written backward.

    Written by hand because autograd's own graph for this chain costs more on CPU: each ReLU
    allocates a new activation (here it acts in place on the fresh ``baddbmm`` output), and
    the gradient of a one-unit output layer's input is a rank-1 ``bmm`` (here an elementwise
    product, exact as each entry is a single product). Measured in A/B runs of
    ``benchmarks/bench_losses.py``'s updates: 2-3 % off a SAC update, 3-5 % off a 10-head
    REDQ update. Every other gradient is computed by the very kernels autograd uses (``bmm`` in
    the same operand order, ``threshold_backward``, ``sum``), so values and gradients equal
    the autograd chain's bit for bit. Under ``create_graph=True`` the backward differentiates
    an autograd replay of the chain instead, so gradient penalties stay exact.

    ``apply(x, relu_after, *weights, *biases)``: ``x`` ``[H, N, d]``, ``relu_after[i]`` whether
    layer ``i`` is followed by a ReLU, weights ``[H, out, in]``, biases ``[H, out]`` or ``None``.
    Returns the output and, non-differentiable, the hidden activations the backward reads.
    """

    generate_vmap_rule = True  # everything below is plain torch ops, so vmap can batch it

    @staticmethod
    def forward(x, relu_after, *params):
        return _stacked_forward(x, relu_after, params, skinny_layout=False)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, relu_after, *params = inputs
        out, *hidden = output
        # layer inputs (each also the mask of the ReLU before it), the chain's output when a
        # ReLU ends it, and the weights
        ctx.save_for_backward(x, *hidden, out if relu_after[-1] else None, *params)
        ctx.relu_after = relu_after
        ctx.mark_non_differentiable(*hidden)
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, grad, *unused):
        return _stacked_backward(ctx, grad, skinny_layout=False)


class SkinnyStackedLinearReLU(StackedLinearReLU):
    """:class:`StackedLinearReLU` with skinny products in their fast layout.

    A product with few columns and a long inner dimension (a one-unit output layer, its
    weight gradient, the input gradient of a first layer over a few features; see
    :func:`grl_torchrl.objectives.matmul_layout.is_skinny`) is computed as the product of
    the transposes: a two-head ``[2, 256, 256] @ [2, 256, 1]`` takes ~190 us as ``bmm`` and
    ~35 us transposed on these machines. The values are the same dot products summed in
    another order, so they equal :class:`StackedLinearReLU`'s to float rounding, not bit for
    bit: the ensembles' own forward uses it (``run_fused_mlp``), the fused losses keep
    :class:`StackedLinearReLU`, which reproduces TorchRL's stock losses bit for bit.
    """

    @staticmethod
    def forward(x, relu_after, *params):
        return _stacked_forward(x, relu_after, params, skinny_layout=True)

    @staticmethod
    def backward(ctx, grad, *unused):
        return _stacked_backward(ctx, grad, skinny_layout=True)


def _stacked_forward(x, relu_after, params, *, skinny_layout: bool) -> tuple:
    n = len(relu_after)
    hidden = []  # the inputs of layers 1..n-1, saved for the backward
    for i, (weight, bias) in enumerate(zip(params[:n], params[n:], strict=True)):
        heads, rows, inner = x.shape
        if skinny_layout and is_skinny(rows, inner, weight.shape[1], batched=True):
            # [H, out, in] @ [H, in, N], transposed back: see SkinnyStackedLinearReLU
            if bias is None:
                x = torch.bmm(weight, x.transpose(1, 2)).transpose(1, 2)
            else:
                x = torch.baddbmm(bias.unsqueeze(2), weight, x.transpose(1, 2)).transpose(1, 2)
        elif bias is None:
            x = torch.bmm(x, weight.transpose(1, 2))
        else:
            x = torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))
        if relu_after[i]:
            x = x.relu_()
        if i < n - 1:
            hidden.append(x)
    return x, *hidden


def _stacked_backward(ctx, grad, *, skinny_layout: bool) -> tuple:
    relu_after, n = ctx.relu_after, len(ctx.relu_after)
    saved = ctx.saved_tensors
    layer_inputs, weights, biases = saved[:n], saved[n + 1 : 2 * n + 1], saved[2 * n + 1 :]
    relu_outputs = (*layer_inputs[1:], saved[n])  # what each layer's ReLU produced
    needs = ctx.needs_input_grad  # (x, relu_after, *weights, *biases)
    grad_weights: list[torch.Tensor | None] = [None] * n
    grad_biases: list[torch.Tensor | None] = [None] * n
    grad_x = None
    if grad is None:
        return (None, None, *grad_weights, *grad_biases)
    if torch.is_grad_enabled():
        # create_graph=True (a gradient penalty, say): differentiate an autograd replay of
        # the chain, so that the gradients are themselves differentiable
        return _replay_backward(ctx, grad, layer_inputs[0], weights, biases)
    for i in reversed(range(n)):
        if relu_after[i]:
            grad = torch.ops.aten.threshold_backward(grad, relu_outputs[i], 0)
        if needs[2 + n + i]:
            grad_biases[i] = grad.sum(1)
        heads, rows, columns = grad.shape
        inputs = layer_inputs[i]
        if needs[2 + i]:
            if skinny_layout and is_skinny(inputs.shape[2], rows, columns, batched=True):
                grad_weights[i] = torch.bmm(grad.transpose(1, 2), inputs)
            else:
                # autograd's operand order for baddbmm's second operand, then its transpose
                grad_weights[i] = torch.bmm(inputs.transpose(1, 2), grad).transpose(1, 2)
        if i == 0 and not needs[0]:
            break
        if columns == 1:
            grad = grad * weights[i]  # [H, N, 1] x [H, 1, d]: a rank-1 product
        elif skinny_layout and is_skinny(rows, columns, weights[i].shape[2], batched=True):
            grad = torch.bmm(weights[i].transpose(1, 2), grad.transpose(1, 2)).transpose(1, 2)
        else:
            grad = torch.bmm(grad, weights[i])
        if i == 0:
            grad_x = grad
    return (grad_x, None, *grad_weights, *grad_biases)


def _replay_backward(ctx, grad, x, weights, biases) -> tuple:
    relu_after, needs = ctx.relu_after, ctx.needs_input_grad
    steps: list[tuple] = []
    for weight, bias, relu in zip(weights, biases, relu_after, strict=True):
        steps.append(("linear", weight, bias))
        if relu:
            steps.append(("apply", nn.ReLU()))
    out = _run_steps_with_autograd(x, steps)
    inputs = (x, None, *weights, *biases)
    wanted = [i for i, flag in enumerate(needs) if flag]
    grads = torch.autograd.grad(out, [inputs[i] for i in wanted], grad, create_graph=True)
    result: list[torch.Tensor | None] = [None] * len(inputs)
    for i, g in zip(wanted, grads, strict=True):
        result[i] = g
    return tuple(result)
