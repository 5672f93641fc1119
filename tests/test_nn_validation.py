"""Bad config values and bad inputs raise at once, with the type and key in the message.

Every case here would, before validation, have built a wrong network silently (``int(3.7)``,
``True`` as 1, an odd ``embed_dim`` losing a feature), or failed later with an error that
names no argument.
"""

import math

import numpy as np
import pytest
import torch
from tensordict import TensorDict

from grl_torchrl import DoubleQNetwork, VNetwork
from grl_torchrl.nn import (
    ConcatenateMLP,
    DiscreteEmbeddingEncoder,
    ExponentialFourierProjectionTimeEncoder,
    GaussianFourierProjectionEncoder,
    GaussianFourierProjectionTimeEncoder,
    IdentityEncoder,
    MultiLayerPerceptron,
    SinusoidalPosEmb,
    TensorDictConcatenateEncoder,
    build_block,
    get_activation,
)

MLP_OK = {"hidden_sizes": [3, 8, 8], "output_size": 1, "activation": "relu"}


def _mlp(**over):
    return lambda: MultiLayerPerceptron(**{**MLP_OK, **over})


def _cmlp(**over):
    return lambda: ConcatenateMLP(**{**MLP_OK, **over})


def _without(key):
    return lambda: ConcatenateMLP(**{k: v for k, v in MLP_OK.items() if k != key})


# (id, constructor, exception type, regex the message must match: owner and key)
CONFIG_CASES = [
    # MultiLayerPerceptron
    ("mlp-hidden-float", _mlp(hidden_sizes=[3.7, 16]), TypeError,
     r"^MultiLayerPerceptron: hidden_sizes\[0\] must be a positive int, got 3\.7"),
    ("mlp-hidden-float-later", _mlp(hidden_sizes=[3, 1.5]), TypeError, r"hidden_sizes\[1\].*1\.5"),
    ("mlp-hidden-str", _mlp(hidden_sizes="3,16"), TypeError,
     r"hidden_sizes must be a list of ints, got '3,16'"),
    ("mlp-hidden-int", _mlp(hidden_sizes=16), TypeError, r"hidden_sizes must be a list"),
    ("mlp-hidden-empty", _mlp(hidden_sizes=[]), ValueError, r"hidden_sizes must hold at least"),
    ("mlp-hidden-zero", _mlp(hidden_sizes=[3, 0]), ValueError, r"hidden_sizes\[1\].*got 0"),
    ("mlp-hidden-negative", _mlp(hidden_sizes=[3, -4]), ValueError, r"hidden_sizes\[1\]"),
    ("mlp-hidden-bool", _mlp(hidden_sizes=[True, 16]), TypeError, r"hidden_sizes\[0\].*True"),
    ("mlp-hidden-none", _mlp(hidden_sizes=None), TypeError, r"hidden_sizes"),
    ("mlp-out-zero", _mlp(output_size=0), ValueError, r"output_size must be a positive int"),
    ("mlp-out-float", _mlp(output_size=1.5), TypeError, r"output_size.*1\.5"),
    ("mlp-out-bool", _mlp(output_size=True), TypeError, r"output_size.*True"),
    ("mlp-out-str", _mlp(output_size="1"), TypeError, r"output_size.*'1'"),
    ("mlp-out-none", _mlp(output_size=None), TypeError, r"output_size.*None"),
    ("mlp-act-unknown", _mlp(activation="nope"), ValueError,
     r"activation is 'nope', not a known activation; known activations: .*relu"),
    ("mlp-act-too-few", _mlp(activation=["relu"]), ValueError, r"activation must be one name or 2"),
    ("mlp-act-too-many", _mlp(activation=["relu"] * 3), ValueError, r"activation.*got 3"),
    ("mlp-act-unknown-in-list", _mlp(activation=["relu", "bogus"]), ValueError,
     r"activation\[1\] is 'bogus'"),
    ("mlp-act-non-str-in-list", _mlp(activation=["relu", 3]), TypeError, r"activation\[1\]"),
    ("mlp-act-none", _mlp(activation=None), TypeError, r"activation must be a name"),
    ("mlp-dropout-one", _mlp(dropout=1.0), ValueError, r"dropout must be a number in \[0, 1\)"),
    ("mlp-dropout-negative", _mlp(dropout=-0.1), ValueError, r"dropout"),
    ("mlp-dropout-nan", _mlp(dropout=math.nan), ValueError, r"dropout"),
    ("mlp-dropout-bool", _mlp(dropout=True), TypeError, r"dropout.*True"),
    ("mlp-dropout-str", _mlp(dropout="0.1"), TypeError, r"dropout"),
    ("mlp-layernorm-int", _mlp(layernorm=1), TypeError, r"layernorm must be True or False"),
    ("mlp-layernorm-str", _mlp(layernorm="yes"), TypeError, r"layernorm"),
    ("mlp-final-unknown", _mlp(final_activation="nope"), ValueError, r"final_activation"),
    ("mlp-final-int", _mlp(final_activation=1), TypeError, r"final_activation"),
    ("mlp-scale-zero", _mlp(scale=0), ValueError, r"scale must be a finite non-zero number"),
    ("mlp-scale-nan", _mlp(scale=math.nan), ValueError, r"scale"),
    ("mlp-scale-str", _mlp(scale="2"), TypeError, r"scale"),
    ("mlp-scale-bool", _mlp(scale=True), TypeError, r"scale"),
    ("mlp-shrink-zero", _mlp(shrink=0), ValueError, r"shrink must be a finite number > 0"),
    ("mlp-shrink-negative", _mlp(shrink=-0.01), ValueError, r"shrink"),
    ("mlp-shrink-inf", _mlp(shrink=math.inf), ValueError, r"shrink"),
    # ConcatenateMLP: the same checks, naming ConcatenateMLP
    ("cmlp-hidden-float", _cmlp(hidden_sizes=[3.7, 16]), TypeError,
     r"^ConcatenateMLP: hidden_sizes\[0\] must be a positive int, got 3\.7"),
    ("cmlp-out-zero", _cmlp(output_size=0), ValueError, r"^ConcatenateMLP: output_size"),
    ("cmlp-act-unknown", _cmlp(activation="nope"), ValueError, r"^ConcatenateMLP: activation"),
    ("cmlp-unknown-arg", _cmlp(bogus=1), TypeError, r"^ConcatenateMLP: .*bogus"),
    ("cmlp-missing-arg", _without("output_size"), TypeError, r"^ConcatenateMLP: .*output_size"),
    # GaussianFourierProjectionEncoder
    ("gfp-embed-odd", lambda: GaussianFourierProjectionEncoder(7, [3]), ValueError,
     r"embed_dim must be an even int >= 2, got 7"),
    ("gfp-embed-one", lambda: GaussianFourierProjectionEncoder(1, [3]), ValueError, r"embed_dim"),
    ("gfp-embed-float", lambda: GaussianFourierProjectionEncoder(8.0, [3]), TypeError,
     r"embed_dim.*8\.0"),
    ("gfp-embed-bool", lambda: GaussianFourierProjectionEncoder(True, [3]), TypeError,
     r"embed_dim"),
    ("gfp-xshape-float", lambda: GaussianFourierProjectionEncoder(8, [3.5]), TypeError,
     r"x_shape\[0\]"),
    ("gfp-xshape-str", lambda: GaussianFourierProjectionEncoder(8, "3"), TypeError, r"x_shape"),
    ("gfp-xshape-zero", lambda: GaussianFourierProjectionEncoder(8, 0), ValueError, r"x_shape"),
    ("gfp-xshape-zero-dim", lambda: GaussianFourierProjectionEncoder(8, [2, 0]), ValueError,
     r"x_shape\[1\]"),
    ("gfp-xshape-bool", lambda: GaussianFourierProjectionEncoder(8, True), TypeError,
     r"x_shape"),
    ("gfp-scale-zero", lambda: GaussianFourierProjectionEncoder(8, [3], scale=0), ValueError,
     r"scale must be a finite number > 0"),
    ("gfp-scale-negative", lambda: GaussianFourierProjectionEncoder(8, [3], scale=-1.0),
     ValueError, r"scale"),
    ("gfp-scale-inf", lambda: GaussianFourierProjectionEncoder(8, [3], scale=math.inf),
     ValueError, r"scale"),
    ("gfp-scale-str", lambda: GaussianFourierProjectionEncoder(8, [3], scale="30"), TypeError,
     r"scale"),
    ("gfp-flatten-str", lambda: GaussianFourierProjectionEncoder(8, [3], flatten="no"),
     TypeError, r"flatten"),
    # GaussianFourierProjectionTimeEncoder
    ("gfpt-embed-zero", lambda: GaussianFourierProjectionTimeEncoder(0), ValueError,
     r"^GaussianFourierProjectionTimeEncoder: embed_dim"),
    ("gfpt-embed-odd", lambda: GaussianFourierProjectionTimeEncoder(5), ValueError, r"embed_dim"),
    ("gfpt-embed-str", lambda: GaussianFourierProjectionTimeEncoder("8"), TypeError,
     r"embed_dim"),
    ("gfpt-scale-nan", lambda: GaussianFourierProjectionTimeEncoder(8, scale=math.nan),
     ValueError, r"scale"),
    ("gfpt-requires-grad-int", lambda: GaussianFourierProjectionTimeEncoder(8, requires_grad=1),
     TypeError, r"requires_grad"),
    # ExponentialFourierProjectionTimeEncoder
    ("efpt-hidden-zero", lambda: ExponentialFourierProjectionTimeEncoder(0), ValueError,
     r"^ExponentialFourierProjectionTimeEncoder: hidden_size"),
    ("efpt-hidden-float", lambda: ExponentialFourierProjectionTimeEncoder(2.5), TypeError,
     r"hidden_size"),
    ("efpt-freq-one", lambda: ExponentialFourierProjectionTimeEncoder(8, 1), ValueError,
     r"frequency_embedding_size must be an int >= 2"),
    ("efpt-freq-bool", lambda: ExponentialFourierProjectionTimeEncoder(8, True), TypeError,
     r"frequency_embedding_size"),
    # SinusoidalPosEmb
    ("spe-dim-two", lambda: SinusoidalPosEmb(2), ValueError,
     r"^SinusoidalPosEmb: dim must be an even int >= 4, got 2"),
    ("spe-dim-odd", lambda: SinusoidalPosEmb(7), ValueError, r"dim"),
    ("spe-dim-float", lambda: SinusoidalPosEmb(8.0), TypeError, r"dim"),
    # DiscreteEmbeddingEncoder
    ("dee-xdim-zero", lambda: DiscreteEmbeddingEncoder(0, 1, 8), ValueError,
     r"^DiscreteEmbeddingEncoder: x_dim"),
    ("dee-xdim-negative", lambda: DiscreteEmbeddingEncoder(-3, 1, 8), ValueError, r"x_dim"),
    ("dee-xnum-float", lambda: DiscreteEmbeddingEncoder(16, 1.5, 8), TypeError, r"x_num"),
    ("dee-hidden-bool", lambda: DiscreteEmbeddingEncoder(16, 1, False), TypeError,
     r"hidden_dim"),
    # TensorDictConcatenateEncoder
    ("tdc-keys-str", lambda: TensorDictConcatenateEncoder(keys="position"), TypeError,
     r"^TensorDictConcatenateEncoder: keys must be a list"),
    ("tdc-keys-tuple", lambda: TensorDictConcatenateEncoder(keys=("a", "b")), TypeError,
     r"keys must be a list"),
    ("tdc-keys-empty", lambda: TensorDictConcatenateEncoder(keys=[]), ValueError, r"keys"),
    ("tdc-keys-twice", lambda: TensorDictConcatenateEncoder(keys=["a", ("a",)]), ValueError,
     r"keys\[1\] 'a' is given twice"),
    ("tdc-keys-int", lambda: TensorDictConcatenateEncoder(keys=["a", 3]), TypeError,
     r"keys\[1\]"),
    ("tdc-keys-empty-str", lambda: TensorDictConcatenateEncoder(keys=["a", ""]), TypeError,
     r"keys\[1\]"),
    ("tdc-unknown-arg", lambda: TensorDictConcatenateEncoder(usePixel=True), TypeError,
     r"usePixel"),
    # IdentityEncoder would silently ignore arguments as nn.Identity does
    ("identity-arg", lambda: IdentityEncoder(embed_dim=3), TypeError, r"embed_dim"),
    # get_activation
    ("act-non-str", lambda: get_activation(3), TypeError, r"name must be an activation name"),
    ("act-unknown", lambda: get_activation("swishh"), ValueError, r"'swishh'.*known.*swish"),
    # build_block: the {type, args} block itself
    ("block-not-mapping", lambda: build_block("MultiLayerPerceptron", kind="module",
                                              where="backbone"),
     TypeError, r"config\.backbone must be a mapping with a 'type' key, got str"),
    ("block-type-not-str", lambda: build_block({"type": 3, "args": {}}, kind="module",
                                               where="backbone"),
     TypeError, r"config\.backbone\.type must be a str, got 3"),
    ("block-args-list", lambda: build_block({"type": "MultiLayerPerceptron", "args": [3, 8]},
                                            kind="module", where="backbone"),
     TypeError, r"config\.backbone\.args must be a mapping, got \[3, 8\]"),
    ("block-unknown-type", lambda: build_block({"type": "SinusoidalPosEmbedding"},
                                               kind="encoder", where="condition_encoder"),
     ValueError, r"Unknown encoder type 'SinusoidalPosEmbedding'; known types: .*sinusoidalposemb"),
    # through the config of a value network: the config entry is named too
    ("cfg-v-hidden-float",
     lambda: VNetwork({"backbone": {"type": "MultiLayerPerceptron", "args": {
         **MLP_OK, "hidden_sizes": [3.7, 16]}}}),
     TypeError, r"config\.backbone.*MultiLayerPerceptron: hidden_sizes\[0\]"),
    ("cfg-dq-output-zero",
     lambda: DoubleQNetwork({"backbone": {"type": "ConcatenateMLP", "args": {
         **MLP_OK, "output_size": 0}}}),
     ValueError, r"config\.backbone.*ConcatenateMLP: output_size"),
    ("cfg-v-encoder-odd",
     lambda: VNetwork({
         "backbone": {"type": "MultiLayerPerceptron", "args": {**MLP_OK, "hidden_sizes": [21]}},
         "state_encoder": {"type": "GaussianFourierProjectionEncoder",
                           "args": {"embed_dim": 7, "x_shape": [3]}}}),
     ValueError, r"config\.state_encoder.*embed_dim"),
    ("cfg-v-encoder-keys",
     lambda: VNetwork({
         "backbone": {"type": "MultiLayerPerceptron", "args": MLP_OK},
         "state_encoder": {"type": "TensorDictConcatenateEncoder", "args": {"keys": "a"}}}),
     TypeError, r"config\.state_encoder.*keys must be a list"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("make", "error", "pattern"),
    [case[1:] for case in CONFIG_CASES],
    ids=[case[0] for case in CONFIG_CASES],
)
def test_bad_config_value_raises_naming_the_key(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()


def test_good_config_values_still_accepted():
    # numpy ints (e.g. read from an array) are ints; a tuple of sizes is a list of sizes
    mlp = MultiLayerPerceptron((np.int64(3), 8), np.int64(2), ("relu",), layernorm=np.bool_(True))
    assert mlp.model.linear1.out_features == 2 and isinstance(mlp.hidden_sizes[0], int)
    assert GaussianFourierProjectionEncoder(4, 3).x_shape == (3,)
    assert GaussianFourierProjectionEncoder(4, []).output_dim == 4


def _discrete():
    return DiscreteEmbeddingEncoder(x_dim=4, x_num=2, hidden_dim=3)


# (id, call, exception type, regex): inputs checked before any work
INPUT_CASES = [
    ("dee-float-input", lambda: _discrete()(torch.zeros(2, 2)), TypeError,
     r"DiscreteEmbeddingEncoder: input must be an integer tensor.*float32"),
    ("dee-bool-input", lambda: _discrete()(torch.zeros(2, 2, dtype=torch.bool)), TypeError,
     r"integer tensor"),
    ("dee-too-large", lambda: _discrete()(torch.tensor([[0, 4]])), ValueError,
     r"values must lie in \[0, x_dim=4\), got values in \[0, 4\]"),
    ("dee-negative", lambda: _discrete()(torch.tensor([[-1, 0]])), ValueError, r"x_dim=4"),
    ("dee-wrong-width", lambda: _discrete()(torch.zeros(2, 3, dtype=torch.long)), ValueError,
     r"input shape \(2, 3\) must end with x_num=2"),
    ("dee-numpy", lambda: _discrete()(np.zeros((2, 2), dtype=np.int64)), TypeError,
     r"torch\.Tensor, got ndarray"),
    ("gfpt-numpy", lambda: GaussianFourierProjectionTimeEncoder(4)(np.zeros(3)), TypeError,
     r"GaussianFourierProjectionTimeEncoder: input must be a torch\.Tensor"),
    ("spe-bool", lambda: SinusoidalPosEmb(4)(torch.zeros(3, dtype=torch.bool)), TypeError,
     r"SinusoidalPosEmb: input must be a real-valued tensor"),
    ("efpt-list", lambda: ExponentialFourierProjectionTimeEncoder(4, 4)([0.0, 1.0]), TypeError,
     r"ExponentialFourierProjectionTimeEncoder: input must be a torch\.Tensor"),
    ("gfp-rank", lambda: GaussianFourierProjectionEncoder(4, [2, 3])(torch.zeros(3)), ValueError,
     r"input shape \(3,\) does not end with x_shape \(2, 3\)"),
    ("tdc-missing-key",
     lambda: TensorDictConcatenateEncoder(keys=["position", "speed"])(
         {"position": torch.zeros(2, 1), "velocity": torch.zeros(2, 1)}),
     KeyError, r"key 'speed' \(from keys\) is not in the input; it holds \['position', 'velocity'\]"),
    ("tdc-missing-nested-key",
     lambda: TensorDictConcatenateEncoder(keys=[("n", "d")])(
         TensorDict({"n": {"c": torch.zeros(2, 1)}}, [2])),
     KeyError, r"key \('n', 'd'\) .*not in entry \('n',\); it holds \['c'\]"),
    ("tdc-non-tensor-leaf",
     lambda: TensorDictConcatenateEncoder()({"a": torch.zeros(2, 1), "b": [1.0, 2.0]}),
     TypeError, r"leaf 'b' must be a tensor, got list"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("call", "error", "pattern"),
    [case[1:] for case in INPUT_CASES],
    ids=[case[0] for case in INPUT_CASES],
)
def test_bad_input_raises_naming_it(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()
