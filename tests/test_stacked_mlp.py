"""run_stacked_steps / StackedLinearReLU: the hand-written backward of the stacked Linear+ReLU
chain gives the values and gradients of the op-by-op autograd chain, bit for bit."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from grl_torchrl.rl_modules.ensemble import StackedLinearReLU, run_stacked_steps

HEADS, BATCH = 3, 7


def reference_chain(x, steps):
    """The chain written op by op, differentiated by autograd (independent of the module)."""
    for step in steps:
        if step[0] == "linear":
            weight, bias = step[1].transpose(1, 2), step[2]
            x = (
                torch.bmm(x, weight)
                if bias is None
                else torch.baddbmm(bias.unsqueeze(1), x, weight)
            )
        elif step[0] == "layernorm":
            x = nn.functional.layer_norm(x, step[1].normalized_shape, eps=step[1].eps)
            x = x * step[2].unsqueeze(1) + step[3].unsqueeze(1)
        else:
            x = step[1](x)
    return x


def relu_mlp(dims, *, bias=True, final_relu=False, requires_grad=True):
    steps = []
    for i, (n_in, n_out) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        weight = torch.randn(HEADS, n_out, n_in, requires_grad=requires_grad)
        b = torch.randn(HEADS, n_out, requires_grad=requires_grad) if bias else None
        steps.append(("linear", weight, b))
        if i < len(dims) - 2 or final_relu:
            steps.append(("apply", nn.ReLU()))
    return steps


def leaves(x, steps):
    tensors = [x] + [t for step in steps if step[0] == "linear" for t in step[1:]]
    return [t for t in tensors if t is not None and t.requires_grad]


# odd widths included: there bmm(g^T, x) and bmm(x^T, g)^T differ in their last bits, so
# only autograd's own operand order reproduces its weight gradients
@pytest.mark.parametrize("dims", [(5, 16, 9, 1), (4, 17, 5, 3), (3, 32, 32, 1)])
@pytest.mark.parametrize(
    "bias,final_relu,x_grad,w_grad", list(itertools.product([True, False], repeat=4))
)
def test_values_and_gradients_equal_the_autograd_chain_bit_for_bit(
    dims, bias, final_relu, x_grad, w_grad
):
    torch.manual_seed(0)
    steps = relu_mlp(dims, bias=bias, final_relu=final_relu, requires_grad=w_grad)
    x = torch.randn(HEADS, BATCH, dims[0], requires_grad=x_grad)
    out = run_stacked_steps(x, steps)
    expected = reference_chain(x, steps)
    assert torch.equal(out, expected)
    if not (x_grad or w_grad):
        assert out.grad_fn is None
        return
    assert type(out.grad_fn).__name__ == "StackedLinearReLUBackward"  # the fast path ran
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, leaves(x, steps), grad)
    want = torch.autograd.grad(expected, leaves(x, steps), grad)
    for g, w in zip(got, want, strict=True):
        assert torch.equal(g, w)


def test_a_relu_killing_every_unit_gives_zero_gradients_like_autograd():
    torch.manual_seed(0)
    steps = relu_mlp((4, 8, 1))
    with torch.no_grad():
        steps[0][2].fill_(-1e3)  # every hidden pre-activation is negative
    x = torch.randn(HEADS, BATCH, 4)
    out = run_stacked_steps(x, steps)
    grads = torch.autograd.grad(out.sum(), leaves(x, steps))
    want = torch.autograd.grad(reference_chain(x, steps).sum(), leaves(x, steps))
    assert grads[0].abs().sum() == 0
    for g, w in zip(grads, want, strict=True):
        assert torch.equal(g, w)


def test_create_graph_gives_exact_gradient_penalty_gradients():
    # a gradient penalty on d Q / d x: second-order gradients through the chain
    torch.manual_seed(0)
    steps = relu_mlp((5, 12, 1))
    x = torch.randn(HEADS, BATCH, 5, requires_grad=True)
    results = []
    for fn in (run_stacked_steps, reference_chain):
        (grad_x,) = torch.autograd.grad(fn(x, steps).sum(), x, create_graph=True)
        penalty = grad_x.pow(2).sum()
        # the output bias does not reach d Q / d x: its gradient is None for both
        results.append(torch.autograd.grad(penalty, leaves(x, steps)[1:], allow_unused=True))
    for g, w in zip(*results, strict=True):
        assert (g is None and w is None) or torch.equal(g, w)
    assert results[0][0].abs().sum() > 0 and results[0][-1] is None


def test_vmap_over_stacked_parameters_matches_a_loop():
    torch.manual_seed(0)
    weights = torch.randn(4, HEADS, 8, 5, requires_grad=True)
    biases = torch.randn(4, HEADS, 8, requires_grad=True)
    x = torch.randn(HEADS, BATCH, 5)

    def head(w, b):
        return run_stacked_steps(x, [("linear", w, b), ("apply", nn.ReLU())])

    out = torch.vmap(head)(weights, biases)
    loop = torch.stack(
        [
            reference_chain(x, [("linear", weights[i], biases[i]), ("apply", nn.ReLU())])
            for i in range(4)
        ]
    )
    torch.testing.assert_close(out, loop, rtol=0, atol=0)
    got = torch.autograd.grad(out.sum(), (weights, biases))
    want = torch.autograd.grad(loop.sum(), (weights, biases))
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("layer", ["tanh", "layernorm", "relu-first"])
def test_other_chains_run_op_by_op_with_the_same_values(layer):
    torch.manual_seed(0)
    steps = relu_mlp((4, 8, 1))
    if layer == "tanh":
        steps[1] = ("apply", nn.Tanh())
    elif layer == "layernorm":
        norm = nn.LayerNorm(8)
        steps.insert(1, ("layernorm", norm, torch.rand(HEADS, 8), torch.rand(HEADS, 8)))
    else:
        steps.insert(0, ("apply", nn.ReLU()))
    x = torch.randn(HEADS, BATCH, 4)
    out = run_stacked_steps(x, steps)
    assert type(out.grad_fn).__name__ != "StackedLinearReLUBackward"
    assert torch.equal(out, reference_chain(x, steps))


def test_the_function_returns_the_hidden_activations_it_keeps_for_backward():
    torch.manual_seed(0)
    steps = relu_mlp((4, 8, 6, 1))
    x = torch.randn(HEADS, BATCH, 4)
    weights = [s[1] for s in steps if s[0] == "linear"]
    biases = [s[2] for s in steps if s[0] == "linear"]
    out, *hidden = StackedLinearReLU.apply(x, (True, True, False), *weights, *biases)
    h1 = torch.relu(torch.baddbmm(biases[0].unsqueeze(1), x, weights[0].transpose(1, 2)))
    assert [h.shape[-1] for h in hidden] == [8, 6]
    assert torch.equal(hidden[0], h1) and not hidden[0].requires_grad
    assert out.requires_grad


def test_compiles_with_fullgraph_with_and_without_grad():
    torch.manual_seed(0)
    steps = relu_mlp((4, 8, 1))
    x = torch.randn(HEADS, BATCH, 4)
    compiled = torch.compile(lambda inp: run_stacked_steps(inp, steps), fullgraph=True)
    with torch.no_grad():  # a target evaluation
        assert torch.equal(compiled(x), reference_chain(x, steps))
    out = compiled(x)
    torch.testing.assert_close(out, reference_chain(x, steps), rtol=1e-6, atol=1e-6)
    got = torch.autograd.grad(out.sum(), leaves(x, steps))
    want = torch.autograd.grad(reference_chain(x, steps).sum(), leaves(x, steps))
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("final_relu", [True, False])
def test_skinny_layout_gives_the_chains_values_and_gradients_to_rounding(bias, final_relu):
    """``skinny_layout=True`` (the ensembles' own forward): a one-unit output layer, its
    weight gradient and the first layer's input gradient over 4 features are products
    computed transposed; values and all gradients equal the autograd chain's to float
    rounding."""
    torch.manual_seed(0)
    rows = 64
    steps = relu_mlp((4, 64, 64, 1), bias=bias, final_relu=final_relu)
    x = torch.randn(HEADS, rows, 4, requires_grad=True)
    out = run_stacked_steps(x, steps, skinny_layout=True)
    assert type(out.grad_fn).__name__ == "SkinnyStackedLinearReLUBackward"
    expected = reference_chain(x, steps)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    assert out.stride(-1) == rows  # the output layer ran transposed: [H, 1, N] seen as [H, N, 1]
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, leaves(x, steps), grad)
    want = torch.autograd.grad(expected, leaves(x, steps), grad)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # the Function-free path takes the same layout
        torch.testing.assert_close(
            run_stacked_steps(x, steps, skinny_layout=True), expected, rtol=1e-5, atol=1e-5
        )
