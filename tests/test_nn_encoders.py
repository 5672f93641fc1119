import math

import pytest
import torch
from tensordict import TensorDict

from grl_torchrl.nn import (
    GaussianFourierProjectionEncoder,
    IdentityEncoder,
    TensorDictConcatenateEncoder,
    get_encoder,
)


def test_identity():
    x = torch.randn(3, 2)
    assert get_encoder("identity")().forward(x) is x
    assert isinstance(get_encoder("identity")(), IdentityEncoder)


def test_concat_sorted_key_order_and_batch_dims():
    a, b, c = torch.randn(4, 2, 3), torch.randn(4, 2, 2, 2), torch.randn(4, 2)
    td = TensorDict({"b": b, "a": a, "n": {"c": c}}, batch_size=[4, 2])
    out = TensorDictConcatenateEncoder()(td)
    expected = torch.cat([a, b.reshape(4, 2, 4), c.unsqueeze(-1)], dim=-1)
    torch.testing.assert_close(out, expected)
    # insertion order does not matter
    td2 = TensorDict({"n": {"c": c}, "a": a, "b": b}, batch_size=[4, 2])
    torch.testing.assert_close(TensorDictConcatenateEncoder()(td2), expected)


def test_concat_plain_dict_upstream_rule():
    x = {"z": torch.randn(5), "y": torch.randn(5, 2, 3)}
    out = TensorDictConcatenateEncoder()(x)
    torch.testing.assert_close(out, torch.cat([x["y"].reshape(5, 6), x["z"][:, None]], -1))


def test_concat_rejects_args_like_upstream():
    with pytest.raises(TypeError):
        TensorDictConcatenateEncoder(usePixel=True)


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
