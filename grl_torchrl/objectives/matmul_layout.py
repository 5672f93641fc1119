"""An inductor graph pass: skinny matrix products computed in their fast layout.

On CPU, MKL's single-precision GEMM is slow when the product has few columns and a long
inner dimension: ``[256, 256] @ [256, 4]`` costs ~100 us where its transpose,
``([4, 256] @ [256, 256]).T``, costs ~30 us, and a batched ``[2, 256, 256] @ [2, 256, 1]``
~190 us against ~35 us (measured on the project's 2-core machines, torch 2.14.1, one
thread; see docs/api/objectives.rst). RL updates are full of such products: a critic's
one-unit output layer, an actor's mean/scale layer, the weight gradient of a first layer
over a handful of observation features, the action gradient of the actor loss.
:func:`~grl_torchrl.objectives.make_update` hands :data:`SKINNY_MATMUL_LAYOUT` to inductor
(``torch.compile(options={"post_grad_custom_post_pass": ...})``, inductor's documented hook
for custom passes), which rewrites each such ``mm`` / ``bmm`` / ``addmm`` / ``baddbmm`` of the
compiled graph as the product of the transposes, transposed back. The values are the same
dot products; only the order of the floating-point sums may differ.
"""

from __future__ import annotations

import torch
from torch._inductor.custom_graph_pass import CustomGraphPass, get_hash_for_files
from torch._subclasses.fake_tensor import unset_fake_temporarily

from grl_torchrl.nn._products import is_skinny

__all__ = ["SKINNY_MATMUL_LAYOUT", "SkinnyMatmulLayout", "is_skinny"]

_aten = torch.ops.aten
_PRODUCTS = {
    _aten.mm.default: False,
    _aten.bmm.default: False,
    _aten.addmm.default: True,  # (bias, a, b)
    _aten.baddbmm.default: True,
}


class SkinnyMatmulLayout(CustomGraphPass):
    """Rewrites skinny float32 products of a post-grad FX graph (see :func:`is_skinny`).

    ``a @ b`` becomes ``(b.mT @ a.mT).mT``, and ``addmm(bias, a, b)`` / ``baddbmm`` that
    product plus ``bias`` (an elementwise add inductor fuses into its consumer); products
    with ``alpha`` / ``beta`` are left alone. ``rewritten`` counts the products rewritten so
    far (over every graph the pass was given).

    >>> import torch
    >>> from torch.fx.experimental.proxy_tensor import make_fx
    >>> a, b, bias = torch.randn(64, 64), torch.randn(64, 2), torch.randn(2)
    >>> graph = make_fx(torch.addmm)(bias, a, b)  # an aten graph, as inductor passes see it
    >>> pass_ = SkinnyMatmulLayout()
    >>> pass_(graph.graph)
    >>> _ = graph.recompile()
    >>> pass_.rewritten
    1
    >>> [n.target.__name__ for n in graph.graph.nodes if n.op == "call_function"]
    ['permute.default', 'permute.default', 'mm.default', 'permute.default', 'add.Tensor']
    >>> torch.allclose(graph(bias, a, b), torch.addmm(bias, a, b), atol=1e-5)
    True
    """

    def __init__(self) -> None:
        self.rewritten = 0

    def __call__(self, graph: torch.fx.Graph) -> None:
        for node in list(graph.nodes):
            if node.op != "call_function" or node.target not in _PRODUCTS or node.kwargs:
                continue
            if _PRODUCTS[node.target]:
                bias, a, b = node.args
            else:
                bias, (a, b) = None, node.args
            va, vb = (getattr(x, "meta", {}).get("val") for x in (a, b))
            if not isinstance(va, torch.Tensor) or not isinstance(vb, torch.Tensor):
                continue
            if va.dtype != torch.float32 or va.device.type != "cpu":
                continue
            batched = va.dim() == 3
            rows, inner, columns = va.shape[-2], va.shape[-1], vb.shape[-1]
            if not all(isinstance(d, int) for d in (rows, inner, columns)):
                continue  # dynamic shapes: no static rule applies
            if not is_skinny(rows, inner, columns, batched=batched):
                continue
            # permute, not transpose: inductor lowers aten.transpose.int as a decomposition
            swap = [0, 2, 1] if batched else [1, 0]
            with graph.inserting_before(node):
                a_t = graph.call_function(_aten.permute.default, (a, swap))
                b_t = graph.call_function(_aten.permute.default, (b, swap))
                product_op = _aten.bmm.default if batched else _aten.mm.default
                product = graph.call_function(product_op, (b_t, a_t))
                out = graph.call_function(_aten.permute.default, (product, swap))
                # the example values later passes read (in the fake mode of the graph's own
                # values, not in inductor's ambient one)
                with unset_fake_temporarily():
                    a_t.meta["val"], b_t.meta["val"] = va.permute(swap), vb.permute(swap)
                    product.meta["val"] = va.new_empty((*va.shape[:-2], columns, rows))
                    out.meta["val"] = product.meta["val"].permute(swap)
                if bias is not None:
                    out = graph.call_function(_aten.add.Tensor, (out, bias))
                    out.meta["val"] = node.meta.get("val")
            node.replace_all_uses_with(out)
            graph.erase_node(node)
            self.rewritten += 1
        graph.lint()

    def uuid(self) -> bytes:
        # inductor's FX-graph cache key: this file's contents
        return get_hash_for_files((__file__,))


#: The instance :func:`~grl_torchrl.objectives.make_update` hands to inductor.
SKINNY_MATMUL_LAYOUT = SkinnyMatmulLayout()
