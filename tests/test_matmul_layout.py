"""``grl_torchrl.objectives.matmul_layout``: skinny products rewritten, values unchanged."""

from __future__ import annotations

import pytest
import torch
import torch._inductor.config
from torch.fx.experimental.proxy_tensor import make_fx

from grl_torchrl.objectives.matmul_layout import SkinnyMatmulLayout, is_skinny


def rewrite(fn, *args):
    """``fn`` traced to aten ops (what inductor's post-grad passes see), then rewritten."""
    graph = make_fx(fn)(*args)
    layout = SkinnyMatmulLayout()
    layout(graph.graph)
    graph.recompile()
    return graph, layout.rewritten


def products(graph) -> list[tuple]:
    """(op name, shape of the first operand, shape of the second) of each product."""
    out = []
    for node in graph.graph.nodes:
        if node.op == "call_function" and node.target.__name__.split(".")[0] in ("mm", "bmm"):
            out.append((node.target.__name__, *(tuple(a.meta["val"].shape) for a in node.args)))
    return out


@pytest.mark.parametrize(
    "rows, inner, columns, batched, expected",
    [
        (256, 256, 4, False, True),
        (256, 256, 8, False, True),
        (256, 256, 16, False, False),  # measured: the plain product is as fast
        (256, 256, 1, False, False),  # a matrix-vector product: already fast
        (256, 256, 1, True, True),  # but not when batched
        (256, 4, 4, False, False),  # a short inner dimension: nothing to gain
        (8, 256, 4, False, False),  # too few rows
    ],
)
def test_rule(rows, inner, columns, batched, expected):
    assert is_skinny(rows, inner, columns, batched=batched) is expected


def test_skinny_products_are_rewritten_and_keep_their_values():
    torch.manual_seed(0)
    x, w, bias = torch.randn(64, 48), torch.randn(3, 48), torch.randn(3)
    stacked_x, stacked_w = torch.randn(2, 64, 48), torch.randn(2, 1, 48)

    def fn(x, w, bias, stacked_x, stacked_w):
        return (
            torch.nn.functional.linear(x, w, bias),  # addmm [64, 48] @ [48, 3]
            torch.bmm(stacked_x, stacked_w.transpose(1, 2)),  # [2, 64, 48] @ [2, 48, 1]
            x.t() @ torch.randn(64, 64),  # [48, 64] @ [64, 64]: wide, left alone
        )

    args = (x, w, bias, stacked_x, stacked_w)
    graph, rewritten = rewrite(fn, *args)
    assert rewritten == 2
    # the two skinny products now have the long dimension last: [3, 48] @ [48, 64] ...
    assert ("mm.default", (3, 48), (48, 64)) in products(graph)
    assert ("bmm.default", (2, 1, 48), (2, 48, 64)) in products(graph)
    got = graph(*args)
    torch.testing.assert_close(got[0], x @ w.t() + bias)
    torch.testing.assert_close(got[1], torch.einsum("hnd,hod->hno", stacked_x, stacked_w))
    assert got[0].shape == (64, 3) and got[1].shape == (2, 64, 1)


def test_products_with_alpha_or_beta_other_dtypes_and_wide_ones_are_left_alone():
    x, w, bias = torch.randn(64, 48), torch.randn(48, 3), torch.randn(3)
    _, rewritten = rewrite(lambda x, w, b: torch.addmm(b, x, w, beta=0.5), x, w, bias)
    assert rewritten == 0
    _, rewritten = rewrite(lambda x, w: x @ w, x.double(), w.double())
    assert rewritten == 0
    _, rewritten = rewrite(lambda x, w: x @ w, x, torch.randn(48, 64))
    assert rewritten == 0


def test_compiled_gradients_equal_eager_ones():
    """An actor-like MLP (3 -> 64 -> 2) and a one-unit head under ``torch.compile`` with the
    pass: its weight gradients are the skinny products ``[64, batch] @ [batch, 3]`` and the
    like; values and gradients equal the eager ones."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(3, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 2),
    )
    obs = torch.randn(128, 3)

    def grads(obs):
        out = net(obs)
        return out, torch.autograd.grad(out.pow(2).mean(), list(net.parameters()))

    layout = SkinnyMatmulLayout()
    compiled = torch.compile(grads, options={"post_grad_custom_post_pass": layout})
    with torch._inductor.config.patch(fx_graph_cache=False):  # so that the pass runs
        got_out, got_grads = compiled(obs)
    assert layout.rewritten >= 2  # at least the output layer and the first weight gradient
    out, expected = grads(obs)
    torch.testing.assert_close(got_out, out)
    for g, e in zip(got_grads, expected, strict=True):
        torch.testing.assert_close(g, e)
