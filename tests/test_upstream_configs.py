"""Every distinct critic config of upstream's pipelines builds and runs (tests/data/...json)."""

import json
from pathlib import Path

import pytest
import torch
from easydict import EasyDict
from tensordict import TensorDict
from torch import nn

import grl_torchrl
from grl_torchrl.nn import TensorDictConcatenateEncoder, register_encoder

DATA = json.loads((Path(__file__).parent / "data" / "upstream_critic_configs.json").read_text())
ENTRIES = DATA["unique"]
RAW_OBS = {"position": 5, "velocity": 4}  # the dm_control-like dict observation fed to encoders


def _encoder_type(cfg):
    return cfg.get("state_encoder", {}).get("type", "identity")


# Output size of each pipeline-defined encoder = the first hidden size of its VNetwork config.
ENCODER_DIMS = {
    _encoder_type(e["config"]): e["config"]["backbone"]["args"]["hidden_sizes"][0]
    for e in ENTRIES
    if e["class"] == "VNetwork" and "upstream_fails" not in e
}


def _make_pipeline_encoder(out_dim):
    class PipelineEncoder(nn.Module):
        """Stand-in for an encoder an upstream pipeline defines: dict obs -> [*B, out_dim]."""

        def __init__(self):
            super().__init__()
            self.concat = TensorDictConcatenateEncoder()
            self.linear = nn.Linear(sum(RAW_OBS.values()), out_dim)

        def forward(self, x):
            return self.linear(self.concat(x))

    return PipelineEncoder


class StateEncoder(nn.Module):
    """Stand-in for the pipelines' ``statenocder(input_dims, output_dim)``."""

    def __init__(self, input_dims, output_dim):
        super().__init__()
        self.linear = nn.Linear(input_dims, output_dim)

    def forward(self, x):
        return self.linear(x)


CUSTOM = {
    "finger_turn_hard",
    "fish_swim",
    "humanoid_run_encoder",
    "manipulator_insert",
    "walker_encoder",
}
for _name in CUSTOM:
    register_encoder(_make_pipeline_encoder(ENCODER_DIMS[_name]), _name, override=True)
register_encoder(StateEncoder, "statenocder", override=True)


def _inputs(entry, batch):
    cfg = entry["config"]
    in_dim = cfg["backbone"]["args"]["hidden_sizes"][0]
    enc = _encoder_type(cfg).lower()
    is_q = entry["class"] == "DoubleQNetwork"
    if enc in CUSTOM:
        state = TensorDict({k: torch.randn(*batch, d) for k, d in RAW_OBS.items()}, batch)
        state_dim = ENCODER_DIMS[enc]
    elif enc == "statenocder":
        args = cfg["state_encoder"]["args"]
        state, state_dim = torch.randn(*batch, args["input_dims"]), args["output_dim"]
    else:
        state_dim = in_dim - 2 if is_q else in_dim
        if enc == "tensordictconcatenateencoder":
            state = TensorDict(
                {"a": torch.randn(*batch, 1), "b": torch.randn(*batch, state_dim - 1)}, batch
            )
        else:
            state = torch.randn(*batch, state_dim)
    action = torch.randn(*batch, in_dim - state_dim) if is_q else None
    return state, action


def _ids(entries):
    return [f"{i}-{e['class']}-{_encoder_type(e['config'])}" for i, e in enumerate(entries)]


OK = [e for e in ENTRIES if "upstream_fails" not in e]
FAILS = [e for e in ENTRIES if "upstream_fails" in e]


def test_corpus_is_complete():
    assert len(ENTRIES) == 25 and len(FAILS) == 2
    assert sum(e["count"] for e in ENTRIES) == DATA["total_blocks"]


@pytest.mark.parametrize("entry", OK, ids=_ids(OK))
@pytest.mark.parametrize("as_easydict", [False, True])
def test_upstream_config_builds_and_runs(entry, as_easydict):
    cfg = EasyDict(entry["config"]) if as_easydict else json.loads(json.dumps(entry["config"]))
    cls = getattr(grl_torchrl, entry["class"])
    net = cls(cfg)
    for batch in ([4], [2, 3]):
        state, action = _inputs(entry, batch)
        out = net(action, state) if action is not None else net(state)
        assert out.shape == (*batch, 1)
        assert torch.isfinite(out).all()
    if action is not None:  # TorchRL style on the same inputs
        td = net(TensorDict({"observation": state, "action": action}, batch))
        torch.testing.assert_close(td["state_action_value"], out)


@pytest.mark.parametrize("entry", FAILS, ids=_ids(FAILS))
def test_upstream_failing_blocks_raise_clearly(entry):
    cls = getattr(grl_torchrl, entry["class"])
    with pytest.raises(TypeError, match="state_encoder.*TensorDictConcatenateEncoder.*usePixel"):
        cls(entry["config"])
