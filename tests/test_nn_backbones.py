import pytest
import torch
from easydict import EasyDict
from tensordict import TensorDict
from torch import nn
from torch.func import functional_call

from grl_torchrl.nn import ConcatenateMLP, MultiLayerPerceptron, build_block


def _hand_mlp(mlp_seq, x, act=torch.relu):
    linears = [m for m in mlp_seq if isinstance(m, nn.Linear)]
    for i, lin in enumerate(linears):
        x = x @ lin.weight.T + lin.bias
        if i < len(linears) - 1:
            x = act(x)
    return x


def test_mlp_upstream_layout_and_hand_computation():
    mlp = MultiLayerPerceptron([4, 8, 6], output_size=2, activation="relu")
    assert [n for n, _ in mlp.model.named_children()] == [
        "linear0",
        "activation0",
        "linear1",
        "activation1",
        "linear2",
    ]
    assert mlp.model.linear2.out_features == 2
    assert mlp.model.activation0 is not mlp.model.activation1
    x = torch.randn(3, 5, 4)
    torch.testing.assert_close(mlp(x), _hand_mlp(mlp.model, x))


def test_mlp_dropout_layernorm_final_activation_names_are_unique():
    mlp = MultiLayerPerceptron(
        [4, 8, 6],
        output_size=1,
        activation=["tanh", "silu"],
        dropout=0.1,
        layernorm=True,
        final_activation="tanh",
    )
    names = [n for n, _ in mlp.model.named_children()]
    assert names == [
        "linear0",
        "activation0",
        "dropout0",
        "layernorm0",
        "linear1",
        "activation1",
        "dropout1",
        "layernorm1",
        "linear2",
        "final_activation",
    ]
    assert mlp.model.layernorm0.normalized_shape == (8,)
    assert mlp.model.layernorm1.normalized_shape == (6,)
    assert isinstance(mlp.model.activation1, nn.SiLU)
    mlp.eval()
    out = mlp(torch.randn(7, 4) * 100)
    assert out.abs().max() <= 1


def test_concatenate_mlp_concatenates_in_order():
    net = ConcatenateMLP(hidden_sizes=[5, 8], output_size=1, activation="relu")
    a, b = torch.randn(2, 3, 2), torch.randn(2, 3, 3)
    expected = _hand_mlp(net.model.model, torch.cat([a, b], -1))
    torch.testing.assert_close(net(a, b), expected)
    assert "model.model.linear0.weight" in net.state_dict()


def test_wrong_input_size_names_expected_size():
    net = ConcatenateMLP(hidden_sizes=[5, 8], output_size=1, activation="relu")
    with pytest.raises(ValueError, match=r"6 \(= 2 \+ 4\).*expects 5"):
        net(torch.randn(2, 2), torch.randn(2, 4))
    with pytest.raises(ValueError, match="expects 4"):
        MultiLayerPerceptron([4, 8], 1, "relu")(torch.randn(3, 5))


def test_dict_and_easydict_blocks_build_the_same():
    block = {
        "type": "MultiLayerPerceptron",
        "args": {"hidden_sizes": [3, 8], "output_size": 1, "activation": "mish", "layernorm": True},
    }
    torch.manual_seed(0)
    a = build_block(block, kind="module", where="backbone")
    torch.manual_seed(0)
    b = build_block(EasyDict(block), kind="module", where="backbone")
    assert a.state_dict().keys() == b.state_dict().keys()
    for k in a.state_dict():
        torch.testing.assert_close(a.state_dict()[k], b.state_dict()[k])
    assert "model.layernorm0.weight" in a.state_dict()


def test_bad_block_args_give_clear_error():
    with pytest.raises(TypeError, match="config.backbone.*MultiLayerPerceptron.*rejected"):
        build_block(
            {"type": "MultiLayerPerceptron", "args": {"bogus": 1}}, kind="module", where="backbone"
        )
    with pytest.raises(ValueError, match="'type'"):
        build_block({"args": {}}, kind="module", where="backbone")


# --- upstream's scale / shrink and the swish / square activations ---


def _upstream_mlp_keys(n_linear, swish=False, scale=False, prefix=""):
    # Upstream: "scale" (a parameter of the MLP itself) comes before the Sequential's entries.
    keys = [f"{prefix}scale"] if scale else []
    for i in range(n_linear):
        keys += [f"{prefix}model.linear{i}.weight", f"{prefix}model.linear{i}.bias"]
        if swish and i < n_linear - 1:
            keys.append(f"{prefix}model.activation{i}.beta")
    return keys


def test_mlp_scale_multiplies_output_and_is_upstreams_frozen_parameter():
    mlp = MultiLayerPerceptron([4, 8], output_size=2, activation="relu", scale=-2.5)
    assert list(mlp.state_dict()) == _upstream_mlp_keys(2, scale=True)
    assert mlp.scale.shape == () and not mlp.scale.requires_grad
    assert [n for n, p in mlp.named_parameters() if p.requires_grad] == [
        "model.linear0.weight",
        "model.linear0.bias",
        "model.linear1.weight",
        "model.linear1.bias",
    ]
    x = torch.randn(3, 4)
    torch.testing.assert_close(mlp(x), -2.5 * _hand_mlp(mlp.model, x))
    # an upstream checkpoint's scale loads into ours
    sd = mlp.state_dict()
    sd["scale"] = torch.tensor(0.5)
    mlp.load_state_dict(sd)
    torch.testing.assert_close(mlp(x), 0.5 * _hand_mlp(mlp.model, x))
    plain = MultiLayerPerceptron([4, 8], output_size=2, activation="relu")
    assert "scale" not in plain.state_dict() and plain.scale == 1.0


def test_concatenate_mlp_applies_scale():
    net = ConcatenateMLP(hidden_sizes=[5, 8], output_size=1, activation="relu", scale=3.0)
    assert list(net.state_dict()) == _upstream_mlp_keys(2, scale=True, prefix="model.")
    a, b = torch.randn(2, 3, 2), torch.randn(2, 3, 3)
    torch.testing.assert_close(net(a, b), 3.0 * _hand_mlp(net.model.model, torch.cat([a, b], -1)))


@pytest.mark.parametrize("final_activation", [None, "tanh"])
def test_mlp_shrink_redraws_only_the_last_linear_weight(final_activation):
    torch.manual_seed(0)
    ref = MultiLayerPerceptron([16, 256], 64, "relu", final_activation=final_activation)
    torch.manual_seed(0)
    mlp = MultiLayerPerceptron(
        [16, 256], 64, "relu", final_activation=final_activation, shrink=0.01
    )
    last = mlp.model.linear1
    assert abs(last.weight.std().item() - 0.01) < 0.001  # 16,384 draws of N(0, 0.01²)
    assert abs(last.weight.mean().item()) < 0.001
    # the default init would have std ~ 1/sqrt(3 * 256) ~ 0.036; bias and first layer untouched
    assert ref.model.linear1.weight.std().item() > 0.03
    torch.testing.assert_close(last.bias, ref.model.linear1.bias)
    torch.testing.assert_close(mlp.model.linear0.weight, ref.model.linear0.weight)


def test_mlp_swish_layout_and_learnable_beta():
    mlp = MultiLayerPerceptron([3, 6, 5], output_size=1, activation="swish")
    assert list(mlp.state_dict()) == _upstream_mlp_keys(3, swish=True)
    assert mlp.model.activation0.beta is not mlp.model.activation1.beta
    with torch.no_grad():
        mlp.model.activation0.beta.fill_(0.5)
        mlp.model.activation1.beta.fill_(2.0)
    x = torch.randn(4, 3)
    lin = [mlp.model.linear0, mlp.model.linear1, mlp.model.linear2]
    h = x
    for layer, beta in zip(lin[:2], [0.5, 2.0], strict=True):
        z = h @ layer.weight.T + layer.bias
        h = z / (1 + torch.exp(-beta * z))
    expected = h @ lin[2].weight.T + lin[2].bias
    torch.testing.assert_close(mlp(x), expected)
    mlp(x).sum().backward()
    assert mlp.model.activation0.beta.grad is not None  # beta trains


def test_mlp_scale_applies_under_functional_calls():
    # TorchRL losses run the critic with swapped-in parameters (TensorDict.to_module,
    # torch.func.functional_call): "scale" then arrives as a plain tensor.
    mlp = MultiLayerPerceptron([3, 8], 1, "relu", scale=10.0)
    x = torch.randn(4, 3)
    params = dict(mlp.named_parameters())
    params["scale"] = torch.tensor(2.0)
    torch.testing.assert_close(functional_call(mlp, params, (x,)), 2.0 * _hand_mlp(mlp.model, x))
    swapped = TensorDict.from_module(mlp).clone()
    swapped["scale"] = torch.tensor(3.0)
    with swapped.to_module(mlp):
        torch.testing.assert_close(mlp(x), 3.0 * _hand_mlp(mlp.model, x))
