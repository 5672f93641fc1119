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

from grl_torchrl.nn.backbones import ConcatenateMLP, MultiLayerPerceptron

__all__ = ["call_stacked", "fused_mlp_path", "owner_of", "run_fused_mlp", "stack_modules"]


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
    for layer in sequential:
        if isinstance(layer, nn.Linear):
            weight = _select(layer.weight, index).transpose(1, 2)
            if layer.bias is None:
                x = torch.bmm(x, weight)
            else:
                x = torch.baddbmm(_select(layer.bias, index).unsqueeze(1), x, weight)
        elif isinstance(layer, nn.LayerNorm):
            x = nn.functional.layer_norm(x, layer.normalized_shape, eps=layer.eps)
            if layer.weight is not None:
                x = x * _select(layer.weight, index).unsqueeze(1)
            if layer.bias is not None:
                x = x + _select(layer.bias, index).unsqueeze(1)
        else:
            x = layer(x)
    return x
