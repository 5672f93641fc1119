import math

import numpy as np
import pytest
import torch
from easydict import EasyDict
from tensordict import TensorDict
from torch import nn

from grl_torchrl import VNetwork
from grl_torchrl.nn import (
    DiscreteEmbeddingEncoder,
    ExponentialFourierProjectionTimeEncoder,
    GaussianFourierProjectionEncoder,
    GaussianFourierProjectionTimeEncoder,
    IdentityEncoder,
    SinusoidalPosEmb,
    TensorDictConcatenateEncoder,
    build_block,
    get_encoder,
)


def test_identity():
    x = torch.randn(3, 2)
    assert get_encoder("identity")().forward(x) is x
    assert isinstance(get_encoder("identity")(), IdentityEncoder)


# --- TensorDictConcatenateEncoder: insertion order (upstream), or the order `keys` names ---


def test_concat_insertion_order_and_batch_dims():
    a, b, c = torch.randn(4, 2, 3), torch.randn(4, 2, 2, 2), torch.randn(4, 2)
    td = TensorDict({"b": b, "a": a, "n": {"c": c}}, batch_size=[4, 2])
    out = TensorDictConcatenateEncoder()(td)
    torch.testing.assert_close(out, torch.cat([b.reshape(4, 2, 4), a, c.unsqueeze(-1)], dim=-1))
    td2 = TensorDict({"n": {"c": c}, "a": a, "b": b}, batch_size=[4, 2])
    torch.testing.assert_close(
        TensorDictConcatenateEncoder()(td2),
        torch.cat([c.unsqueeze(-1), a, b.reshape(4, 2, 4)], dim=-1),
    )


def test_concat_plain_dict_upstream_rule():
    x = {"z": torch.randn(5), "y": torch.randn(5, 2, 3)}
    out = TensorDictConcatenateEncoder()(x)
    torch.testing.assert_close(out, torch.cat([x["z"][:, None], x["y"].reshape(5, 6)], -1))


def test_concat_explicit_keys_override_insertion_order():
    pos, vel, extra = torch.randn(6, 2), torch.randn(6, 3), torch.randn(6, 4)
    td = TensorDict({"velocity": vel, "extra": extra, "position": pos}, [6])
    enc = TensorDictConcatenateEncoder(keys=["position", "velocity"])
    torch.testing.assert_close(enc(td), torch.cat([pos, vel], -1))  # "extra" is not selected
    torch.testing.assert_close(enc(dict(td.items())), torch.cat([pos, vel], -1))
    assert "keys=['position', 'velocity']" in repr(enc)
    # nested keys: a tuple, or a list as JSON / EasyDict configs give it
    nested = TensorDict({"n": {"c": pos, "d": vel}, "a": extra}, [6])
    for key in [("n", "d"), ["n", "d"]]:
        enc = TensorDictConcatenateEncoder(keys=[key, "a"])
        torch.testing.assert_close(enc(nested), torch.cat([vel, extra], -1))
    # a sub-dict named as a whole contributes its leaves in insertion order
    enc = TensorDictConcatenateEncoder(keys=["a", "n"])
    torch.testing.assert_close(enc(nested), torch.cat([extra, pos, vel], -1))


def test_concat_keys_from_an_easydict_config():
    block = EasyDict(type="TensorDictConcatenateEncoder", args=dict(keys=["position", ("n", "c")]))
    enc = build_block(block, kind="encoder", where="state_encoder")
    pos, c = torch.randn(3, 2), torch.randn(3, 1)
    td = TensorDict({"n": {"c": c}, "position": pos}, [3])
    torch.testing.assert_close(enc(td), torch.cat([pos, c], -1))


def test_vnetwork_with_fixed_weights_sees_upstream_order():
    # Upstream concatenates x.values(): with its weights loaded, the first two inputs of
    # linear0 belong to "velocity" when velocity was inserted first.
    cfg = {
        "backbone": {
            "type": "MultiLayerPerceptron",
            "args": {"hidden_sizes": [5, 8], "output_size": 1, "activation": "relu"},
        },
        "state_encoder": {"type": "TensorDictConcatenateEncoder", "args": {}},
    }
    v = VNetwork(cfg)
    explicit = VNetwork(
        {
            **cfg,
            "state_encoder": {
                "type": "TensorDictConcatenateEncoder",
                "args": {"keys": ["position", "velocity"]},
            },
        }
    )
    explicit.load_state_dict(v.state_dict())  # same weights: the encoder holds no parameters
    vel, pos = torch.randn(7, 2), torch.randn(7, 3)
    state = TensorDict({"velocity": vel, "position": pos}, [7])
    mlp = v.model["backbone"].model

    def hand(x):
        h = torch.relu(x @ mlp.linear0.weight.T + mlp.linear0.bias)
        return h @ mlp.linear1.weight.T + mlp.linear1.bias

    torch.testing.assert_close(v(state), hand(torch.cat([vel, pos], -1)))
    torch.testing.assert_close(explicit(state), hand(torch.cat([pos, vel], -1)))
    assert not torch.allclose(v(state), explicit(state))


def test_concat_rejects_args_like_upstream():
    with pytest.raises(TypeError):
        TensorDictConcatenateEncoder(usePixel=True)


# --- Fourier features ---


def test_gaussian_fourier_matches_formula():
    torch.manual_seed(0)
    enc = GaussianFourierProjectionEncoder(embed_dim=6, x_shape=[2], scale=0.5)
    torch.manual_seed(0)
    w = torch.randn(3)  # the same draw as the encoder's frequencies
    x = torch.randn(4, 2)
    arg = 2 * math.pi * 0.5 * w * x[..., None]  # [4, 2, 3]
    expected = torch.cat([torch.sin(arg), torch.cos(arg)], -1).reshape(4, 12)
    torch.testing.assert_close(enc(x), expected)
    assert enc.output_dim == 12
    assert not enc.W.requires_grad
    unflat = GaussianFourierProjectionEncoder(6, [2], flatten=False)
    assert unflat(torch.randn(7, 5, 2)).shape == (7, 5, 2, 6)
    with pytest.raises(ValueError, match="x_shape"):
        enc(torch.randn(4, 3))


def test_gaussian_fourier_time_encoder_formula_and_layout():
    torch.manual_seed(3)
    enc = GaussianFourierProjectionTimeEncoder(embed_dim=8, scale=2.0)
    torch.manual_seed(3)
    w = np.float64(2 * math.pi * 2.0) * torch.randn(4).double().numpy()
    t = torch.rand(5)
    arg = t.double().numpy()[:, None] * w[None, :]
    expected = torch.from_numpy(np.concatenate([np.sin(arg), np.cos(arg)], -1)).float()
    torch.testing.assert_close(enc(t), expected, rtol=1e-5, atol=1e-5)
    # upstream's layout: one parameter "W" of size embed_dim // 2, frozen unless asked
    assert {k: tuple(v.shape) for k, v in enc.state_dict().items()} == {"W": (4,)}
    assert not enc.W.requires_grad
    assert GaussianFourierProjectionTimeEncoder(8, requires_grad=True).W.requires_grad
    assert enc(torch.tensor(0.3)).shape == (1, 8)  # a 0-d time is a batch of one, as upstream
    assert enc(torch.rand(2, 3)).shape == (2, 3, 8)


def _exp_features(t: np.ndarray, size: int) -> np.ndarray:
    half = size // 2
    freqs = np.array([10000.0 ** (-i / half) for i in range(half)])
    args = t[:, None] * freqs[None, :]
    feats = [np.cos(args), np.sin(args)]
    if size % 2:
        feats.append(np.zeros((len(t), 1)))
    return np.concatenate(feats, -1)


@pytest.mark.parametrize("freq_size", [6, 7])
def test_exponential_fourier_time_encoder_formula_and_layout(freq_size):
    enc = ExponentialFourierProjectionTimeEncoder(hidden_size=5, frequency_embedding_size=freq_size)
    assert {k: tuple(v.shape) for k, v in enc.state_dict().items()} == {
        "mlp.0.weight": (5, freq_size),
        "mlp.0.bias": (5,),
        "mlp.2.weight": (5, 5),
        "mlp.2.bias": (5,),
    }
    assert isinstance(enc.mlp[1], nn.SiLU)
    t = torch.tensor([0.0, 1.0, 7.5, 900.0])
    feats = torch.from_numpy(_exp_features(t.double().numpy(), freq_size)).float()
    torch.testing.assert_close(enc.timestep_embedding(t, freq_size), feats, rtol=1e-4, atol=1e-4)
    sd = enc.state_dict()
    h = feats @ sd["mlp.0.weight"].T + sd["mlp.0.bias"]
    h = h * torch.sigmoid(h)
    expected = h @ sd["mlp.2.weight"].T + sd["mlp.2.bias"]
    torch.testing.assert_close(enc(t), expected, rtol=1e-4, atol=1e-4)
    assert enc(torch.tensor(2.0)).shape == (1, 5)
    assert enc(torch.rand(2, 3)).shape == (2, 3, 5)


def test_sinusoidal_pos_emb_formula():
    enc = SinusoidalPosEmb(8)
    assert not list(enc.state_dict())
    half = 4
    freqs = np.exp(-np.log(10000.0) * np.arange(half) / (half - 1))  # 1 ... 1e-4
    x = np.array([0.0, 1.0, 3.0, 250.0])
    args = x[:, None] * freqs[None, :]
    expected = torch.from_numpy(np.concatenate([np.sin(args), np.cos(args)], -1)).float()
    torch.testing.assert_close(
        enc(torch.tensor(x, dtype=torch.float32)), expected, rtol=1e-4, atol=1e-4
    )
    # integer steps are accepted (as upstream) and give the same features
    torch.testing.assert_close(enc(torch.tensor([0, 1, 3, 250])), expected, rtol=1e-4, atol=1e-4)


# --- DiscreteEmbeddingEncoder ---


def test_discrete_embedding_encoder_formula_and_layout():
    enc = DiscreteEmbeddingEncoder(x_dim=5, x_num=3, hidden_dim=4)
    assert {k: tuple(v.shape) for k, v in enc.state_dict().items()} == {
        "embedding.weight": (5, 4),
        "linear.weight": (4, 12),
        "linear.bias": (4,),
    }
    x = torch.tensor([[0, 4, 2], [1, 1, 3]])
    table, w, b = enc.embedding.weight, enc.linear.weight, enc.linear.bias
    rows = [torch.cat([table[i] for i in sample.tolist()]) for sample in x]
    expected = torch.stack(rows) @ w.T + b
    torch.testing.assert_close(enc(x), expected)
    assert enc(x.expand(6, 2, 3)).shape == (6, 2, 4)  # extra batch dims are kept


def test_discrete_embedding_single_feature_takes_a_batch_of_indices():
    enc = DiscreteEmbeddingEncoder(x_dim=16, x_num=1, hidden_dim=3)
    states = torch.tensor([0, 15, 7])  # FrozenLake-style state indices
    torch.testing.assert_close(enc(states), enc(states[:, None]))
    expected = enc.embedding.weight[states] @ enc.linear.weight.T + enc.linear.bias
    torch.testing.assert_close(enc(states), expected)


@pytest.mark.parametrize(
    "name, cls",
    [
        ("gaussianfourierprojectiontimeencoder", GaussianFourierProjectionTimeEncoder),
        ("ExponentialFourierProjectionTimeEncoder", ExponentialFourierProjectionTimeEncoder),
        ("SINUSOIDALPOSEMB", SinusoidalPosEmb),
        ("DiscreteEmbeddingEncoder", DiscreteEmbeddingEncoder),
        ("GaussianFourierProjectionEncoder", GaussianFourierProjectionEncoder),
    ],
)
def test_upstream_encoder_names_are_registered(name, cls):
    assert get_encoder(name) is cls
