"""grl_torchrl.rl_modules.ProbabilisticActor: TorchRL's actor with a direct get_dist that gives
the stock distribution, values and loss gradients, and falls back where it cannot."""

from __future__ import annotations

import copy

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import NormalParamExtractor, TensorDictModule, TensorDictSequential
from torchrl.data import Bounded
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.modules import MLP, SafeModule, TanhNormal
from torchrl.modules import ProbabilisticActor as StockActor
from torchrl.objectives import SACLoss as StockSAC
from transitions import transition_batch

from grl_torchrl import DoubleQNetwork, objectives
from grl_torchrl.rl_modules import ProbabilisticActor

OBS, ACT, BATCH = 3, 2, 16
SPEC = Bounded(-2.0, 2.0, shape=(ACT,))


def network():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        MLP(in_features=OBS, out_features=2 * ACT, num_cells=[16]), NormalParamExtractor()
    )


def build(cls, net=None, det=None):
    det = (
        det
        if det is not None
        else TensorDictModule(net or network(), ["observation"], ["loc", "scale"])
    )
    return cls(
        det,
        in_keys=["loc", "scale"],
        spec=SPEC,
        distribution_class=TanhNormal,
        distribution_kwargs={"low": -2.0, "high": 2.0},
    )


def batch(seed=1):
    return transition_batch(BATCH, OBS, ACT, seed=seed, done_prob=0.2, action_bound=2.0)


def count_wrapper_calls(actor):
    """Counts calls of the TensorDictModule wrapping the network (the stock route)."""
    calls = []
    actor.module[0].register_forward_hook(lambda *_: calls.append(1))
    return calls


def sample(actor, td, seed=3):
    torch.manual_seed(seed)
    with set_exploration_type(ExplorationType.RANDOM):
        dist = actor.get_dist(td)
        return dist.rsample_and_log_prob()


def test_get_dist_gives_the_stock_distribution_without_the_tensordict_route():
    net = network()
    ours, stock = build(ProbabilisticActor, net), build(StockActor, net)
    calls = count_wrapper_calls(ours)
    td_ours, td_stock = batch(), batch()
    action, log_prob = sample(ours, td_ours)
    want_action, want_log_prob = sample(stock, td_stock)
    assert calls == []  # the direct path ran
    assert torch.equal(action, want_action) and torch.equal(log_prob, want_log_prob)
    # the network outputs land in the tensordict, as with the stock method
    for key in ("loc", "scale"):
        assert torch.equal(td_ours[key], td_stock[key])
    # an independent computation of the distribution parameters
    loc, scale = net(td_stock["observation"])
    assert torch.equal(td_ours["loc"], loc) and torch.equal(td_ours["scale"], scale)


@pytest.mark.parametrize("loss_cls", [objectives.SACLoss, StockSAC], ids=["fused", "stock"])
def test_sac_losses_and_gradients_equal_those_with_torchrl_actor(loss_cls):
    torch.manual_seed(0)
    critic = DoubleQNetwork(
        {
            "backbone": {
                "type": "ConcatenateMLP",
                "args": {"hidden_sizes": [ACT + OBS, 16], "output_size": 1, "activation": "relu"},
            }
        }
    )
    heads = critic.heads
    q = critic if loss_cls is objectives.SACLoss else heads
    ours = loss_cls(build(ProbabilisticActor), qvalue_network=q, action_spec=SPEC)
    stock = loss_cls(build(StockActor), qvalue_network=copy.deepcopy(heads), action_spec=SPEC)
    # different actor weights than the modules were built with: get_dist must read the loss's
    with torch.no_grad():
        for value in ours.actor_network_params.values(True, True):
            value.add_(0.1 * torch.randn_like(value))
    stock.load_state_dict(ours.state_dict())
    results = []
    for loss in (ours, stock):
        torch.manual_seed(7)
        out = loss(batch())
        total = out["loss_actor"] + out["loss_qvalue"] + out["loss_alpha"]
        loss.zero_grad(set_to_none=True)
        total.backward()
        results.append((out.detach(), {n: p.grad for n, p in loss.named_parameters()}))
    (out_ours, grads_ours), (out_stock, grads_stock) = results
    for key in out_stock.keys():
        assert torch.equal(out_ours[key], out_stock[key]), key
    for name, grad in grads_stock.items():
        assert (grad is None) == (grads_ours[name] is None), name
        if grad is not None:
            assert torch.equal(grads_ours[name], grad), name
    assert any(
        n.startswith("actor_network_params") and g is not None for n, g in grads_ours.items()
    )


def test_other_shapes_and_arguments_take_the_stock_path():
    net = network()
    # no exploration type set: the stock method applies the module's default around the call
    actor = build(ProbabilisticActor, net)
    calls = count_wrapper_calls(actor)
    actor.get_dist(batch())
    assert calls == [1]
    # an explicit tensordict_out
    with set_exploration_type(ExplorationType.RANDOM):
        out = TensorDict({}, [BATCH])
        actor.get_dist(batch(), out)
    assert calls == [1, 1] and "loc" in out.keys()
    # a SafeModule (spec checks) or a sequence as the network part
    for det in (
        SafeModule(net, ["observation"], ["loc", "scale"]),
        TensorDictSequential(TensorDictModule(net, ["observation"], ["loc", "scale"])),
    ):
        other = build(ProbabilisticActor, det=det)
        assert other._direct_parts() is None
        want = sample(build(StockActor, det=copy.deepcopy(det)), batch())
        got = sample(other, batch())
        assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))


def test_forward_is_torchrl_forward():
    net = network()
    ours, stock = build(ProbabilisticActor, net), build(StockActor, net)
    for mode in (ExplorationType.RANDOM, ExplorationType.DETERMINISTIC):
        outs = []
        for actor in (ours, stock):
            torch.manual_seed(11)
            with set_exploration_type(mode):
                outs.append(actor(batch()))
        assert torch.equal(outs[0]["action"], outs[1]["action"]), mode


def test_a_network_with_the_wrong_number_of_outputs_is_named():
    det = TensorDictModule(
        MLP(in_features=OBS, out_features=2 * ACT, num_cells=[8]), ["observation"], ["loc", "scale"]
    )
    actor = build(ProbabilisticActor, det=det)
    with (
        set_exploration_type(ExplorationType.RANDOM),
        pytest.raises(RuntimeError, match="out_keys"),
    ):
        actor.get_dist(batch())
