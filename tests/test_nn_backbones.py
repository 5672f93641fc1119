import pytest
import torch
from easydict import EasyDict
from torch import nn

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
