"""Bad inputs to the losses, the critic binding, checkpoints and the actor (issue 18, 1-6):
each is refused before any work, with an error naming the argument."""

from __future__ import annotations

import copy
import functools

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torchrl.data import Bounded
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.modules import MLP, TanhNormal
from torchrl.modules import ProbabilisticActor as StockProbabilisticActor
from transitions import transition_batch

from grl_torchrl import (
    DoubleQNetwork,
    DoubleVNetwork,
    EnsembleQNetwork,
    EnsembleVNetwork,
    OneShotValueFunction,
    QNetwork,
    VNetwork,
    objectives,
    to_upstream_state_dict,
)
from grl_torchrl.rl_modules import ProbabilisticActor

S, A, H = 3, 2, 8
SPEC = Bounded(-1.0, 1.0, shape=(A,))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def q_cfg(activation="relu", output_size=1, **extra):
    args = {"hidden_sizes": [A + S, H], "output_size": output_size, "activation": activation}
    return {"backbone": {"type": "ConcatenateMLP", "args": {**args, **extra}}}


def v_cfg(output_size=1):
    args = {"hidden_sizes": [S, H], "output_size": output_size, "activation": "relu"}
    return {"backbone": {"type": "MultiLayerPerceptron", "args": args}}


def stochastic_actor(cls=StockProbabilisticActor):
    net = torch.nn.Sequential(
        MLP(in_features=S, out_features=2 * A, num_cells=[H]), NormalParamExtractor()
    )
    return cls(
        TensorDictModule(net, ["observation"], ["loc", "scale"]),
        in_keys=["loc", "scale"],
        spec=SPEC,
        distribution_class=TanhNormal,
    )


def deterministic_actor():
    return TensorDictModule(
        MLP(in_features=S, out_features=A, num_cells=[H]), ["observation"], ["action"]
    )


# name: the loss built around a given qvalue_network
LOSSES = {
    "sac": lambda q: objectives.SACLoss(stochastic_actor(), q, action_spec=SPEC),
    "td3": lambda q: objectives.TD3Loss(deterministic_actor(), q, action_spec=SPEC),
    "redq": lambda q: objectives.REDQLoss(stochastic_actor(), q, action_spec=SPEC),
    "iql": lambda q: objectives.IQLLoss(stochastic_actor(), q, VNetwork(v_cfg())),
    "cql": lambda q: objectives.CQLLoss(stochastic_actor(), q, action_spec=SPEC),
}
LOSS_CLASSES = (
    objectives.SACLoss,
    objectives.TD3Loss,
    objectives.REDQLoss,
    objectives.IQLLoss,
    objectives.CQLLoss,
)


@pytest.fixture
def stock_init_calls(monkeypatch):
    """Records calls of every stock TorchRL loss constructor (to assert nothing ran)."""
    calls = []
    for cls in LOSS_CLASSES:
        stock = cls._stock_class()
        original = stock.__init__

        @functools.wraps(original)
        def spy(self, *args, _original=original, **kwargs):
            calls.append(type(self).__name__)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(stock, "__init__", spy)
    return calls


# ------------------------------------------------------------------ 1. V network as Q network
# name: (factory, what the error names)
V_AS_Q = {
    "VNetwork": (lambda: VNetwork(v_cfg()), "qvalue_network must be a Q network, got VNetwork"),
    "DoubleVNetwork.heads": (
        lambda: DoubleVNetwork(v_cfg()).heads,
        r"qvalue_network\[0\] must be a Q network, got VNetwork",
    ),
    "EnsembleVNetwork": (
        lambda: EnsembleVNetwork(v_cfg(), num_heads=2),
        "qvalue_network must be a Q network, got EnsembleVNetwork",
    ),
    "OneShotValueFunction": (
        lambda: OneShotValueFunction({"DoubleVNetwork": v_cfg()}),
        "qvalue_network must be a Q network, got OneShotValueFunction",
    ),
}


@pytest.mark.parametrize("critic", sorted(V_AS_Q))
@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_value_network_given_as_qvalue_network_is_refused(loss, critic, stock_init_calls):
    factory, message = V_AS_Q[critic]
    given = factory()
    with pytest.raises(TypeError, match=message):
        LOSSES[loss](given)
    assert stock_init_calls == []  # refused before TorchRL's constructor ran


def test_a_v_head_among_q_heads_is_named_by_index():
    heads = [*DoubleQNetwork(q_cfg()).heads, VNetwork(v_cfg())]
    with pytest.raises(TypeError, match=r"qvalue_network\[2\] must be a Q network, got VNetwork"):
        objectives.REDQLoss(stochastic_actor(), heads, action_spec=SPEC)


@pytest.mark.parametrize(
    "value", [lambda: QNetwork(q_cfg()), lambda: DoubleQNetwork(q_cfg())], ids=["Q", "DoubleQ"]
)
def test_q_network_given_as_iql_value_network_is_refused(value, stock_init_calls):
    with pytest.raises(TypeError, match=r"value_network must be a state-value network, got \w*Q"):
        objectives.IQLLoss(stochastic_actor(), DoubleQNetwork(q_cfg()), value())
    assert stock_init_calls == []


def test_q_network_given_as_sac_value_network_is_refused(stock_init_calls):
    with pytest.raises(TypeError, match="value_network must be a state-value network, got QNet"):
        objectives.SACLoss(
            stochastic_actor(), DoubleQNetwork(q_cfg()), value_network=QNetwork(q_cfg())
        )
    assert stock_init_calls == []


def test_iql_still_takes_a_v_network():
    loss = objectives.IQLLoss(stochastic_actor(), DoubleQNetwork(q_cfg()), VNetwork(v_cfg()))
    out = loss(transition_batch(16, S, A, seed=1))
    assert torch.isfinite(out["loss_value"]) and torch.isfinite(out["loss_qvalue"])


# ------------------------------------------------------------------ 2. several Q outputs
# name: (factory, what the error names)
WIDE_Q = {
    "QNetwork": (
        lambda: QNetwork(q_cfg(output_size=2)),
        r"qvalue_network \(QNetwork\) outputs 2 values .*output_size=2",
    ),
    "DoubleQNetwork": (
        lambda: DoubleQNetwork(q_cfg(output_size=2)),
        r"qvalue_network \(DoubleQNetwork\) outputs 2 values .*output_size=2",
    ),
    "EnsembleQNetwork.heads": (
        lambda: EnsembleQNetwork(q_cfg(output_size=3), num_heads=2).heads,
        r"qvalue_network\[0\] \(QNetwork\) outputs 3 values .*output_size=3",
    ),
}


@pytest.mark.parametrize("critic", sorted(WIDE_Q))
@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_q_network_with_several_outputs_is_refused(loss, critic, stock_init_calls):
    factory, message = WIDE_Q[critic]
    given = factory()
    with pytest.raises(ValueError, match=message):
        LOSSES[loss](given)
    assert stock_init_calls == []


def test_v_network_with_several_outputs_is_refused_by_iql(stock_init_calls):
    with pytest.raises(ValueError, match=r"value_network \(VNetwork\) outputs 2 .*output_size=2"):
        objectives.IQLLoss(stochastic_actor(), DoubleQNetwork(q_cfg()), VNetwork(v_cfg(2)))
    assert stock_init_calls == []


# ------------------------------------------------------------------ 3. binding another model
OTHER_ARCHITECTURE = {
    "activation": dict(activation="tanh"),
    "dropout_rate": dict(dropout=0.2),
    "final_activation": dict(final_activation="tanh"),
}


@pytest.mark.parametrize("target", [False, True], ids=["live", "target"])
@pytest.mark.parametrize("change", sorted(OTHER_ARCHITECTURE))
def test_binding_a_critic_of_another_architecture_is_refused(change, target):
    base = {"dropout": 0.1} if change == "dropout_rate" else {}
    loss = objectives.SACLoss(
        stochastic_actor(), DoubleQNetwork(q_cfg(**base)).heads, action_spec=SPEC
    )
    other = DoubleQNetwork(q_cfg(**{**base, **OTHER_ARCHITECTURE[change]}))
    # same parameter names and shapes: only the modules differ
    assert {k: v.shape for k, v in other.stacked.state_dict().items()} == {
        ".".join(k[1:]): v.shape for k, v in loss.qvalue_network_params.items(True, True)
    }
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(ValueError, match=r"bind_to_loss: loss.qvalue_network is not built like"):
        other.bind_to_loss(loss, target=target)
    # nothing changed: the critic keeps its own tensors
    for key, value in other.state_dict().items():
        assert torch.equal(value, before[key])
    own = {id(p) for p in other.parameters()}
    assert not own & {id(p) for p in loss.parameters()}


def test_binding_a_v_ensemble_to_a_q_loss_is_refused():
    loss = objectives.SACLoss(stochastic_actor(), DoubleQNetwork(q_cfg()), action_spec=SPEC)
    with pytest.raises(ValueError, match=r"qvalue_network is not built like .*action_encoder"):
        DoubleVNetwork(v_cfg()).bind_to_loss(loss, "qvalue_network")


# ------------------------------------------------------------------ 4. deepcopy keeps binding
def head_values(loss, params, td, head=0):
    """Head ``head`` of the loss's own Q network with ``params`` (independent of the critic)."""
    with params[head].to_module(loss.qvalue_network):
        return loss.qvalue_network(td.copy())["state_action_value"]


@pytest.mark.parametrize("critic_first", [True, False], ids=["critic_first", "loss_first"])
def test_deepcopy_of_loss_and_bound_critic_stays_bound(critic_first):
    critic = DoubleQNetwork(q_cfg())
    loss = objectives.SACLoss(stochastic_actor(), critic, action_spec=SPEC)
    holder = torch.nn.Module()
    for name, module in (("critic", critic), ("loss", loss))[:: 1 if critic_first else -1]:
        holder.add_module(name, module)
    original = {k: v.clone() for k, v in holder.state_dict().items()}
    batch = transition_batch(16, S, A, seed=3)
    copied = copy.deepcopy(holder)
    assert len(list(copied.parameters())) == len(list(holder.parameters()))
    live = dict(copied.loss.qvalue_network_params.items(True, True))
    for pname, param in copied.critic.stacked.named_parameters():
        assert param is live[("model", *pname.split("."))]  # the same entry, not just any

    optim = torch.optim.SGD(copied.loss.parameters(), lr=0.5)
    optim.zero_grad()
    copied.loss(batch.clone())["loss_qvalue"].backward()
    optim.step()
    # the copied critic follows the copied loss ...
    obs, act = batch["observation"], batch["action"]
    for head in range(2):
        torch.testing.assert_close(
            copied.critic.compute_heads(act, obs)[head],
            head_values(copied.loss, copied.loss.qvalue_network_params, batch, head).detach(),
        )
    # ... and the original is untouched
    for key, value in holder.state_dict().items():
        assert torch.equal(value, original[key]), key
    assert not torch.equal(copied.critic.compute_heads(act, obs), critic.compute_heads(act, obs))


def shares_loss_params(critic, loss, target=False):
    params = loss.target_qvalue_network_params if target else loss.qvalue_network_params
    live = {id(t) for t in params.values(True, True)}
    own = [*critic.stacked.parameters(), *critic.stacked.buffers()]
    return bool(own) and all(id(t) in live for t in own)


def test_deepcopy_of_a_copy_and_of_a_loss_holding_its_critic_stay_bound():
    critic = DoubleQNetwork(q_cfg())
    loss = objectives.SACLoss(stochastic_actor(), critic, action_spec=SPEC)
    holder = torch.nn.ModuleDict({"critic": critic, "loss": loss})
    twice = copy.deepcopy(copy.deepcopy(holder))
    assert shares_loss_params(twice["critic"], twice["loss"])
    loss.held_critic = critic  # the loss itself holds the critic: copied while it is copied
    copied = copy.deepcopy(loss)
    assert shares_loss_params(copied.held_critic, copied)
    assert len(list(copied.parameters())) == len(list(loss.parameters()))


def test_deepcopy_of_target_bound_critic_follows_copied_target():
    loss = objectives.SACLoss(stochastic_actor(), DoubleQNetwork(q_cfg()), action_spec=SPEC)
    q_target = DoubleQNetwork(q_cfg()).bind_to_loss(loss, target=True)
    holder = torch.nn.ModuleDict({"loss": loss, "q_target": q_target})
    copied = copy.deepcopy(holder)
    assert shares_loss_params(copied["q_target"], copied["loss"], target=True)
    with torch.no_grad():
        copied["loss"].target_qvalue_network_params.apply_(lambda t: t.add_(1.0))
    batch = transition_batch(8, S, A, seed=4)
    expected = head_values(copied["loss"], copied["loss"].target_qvalue_network_params, batch)
    got = copied["q_target"].compute_heads(batch["action"], batch["observation"])[0]
    torch.testing.assert_close(got, expected)
    assert not torch.equal(got, q_target.compute_heads(batch["action"], batch["observation"])[0])


def test_deepcopy_of_bound_critic_alone_is_an_independent_snapshot():
    critic = DoubleQNetwork(q_cfg())
    loss = objectives.SACLoss(stochastic_actor(), critic, action_spec=SPEC)
    snapshot = copy.deepcopy(critic)
    obs, act = torch.randn(5, S), torch.randn(5, A)
    before = snapshot.compute_heads(act, obs).detach()
    torch.testing.assert_close(before, critic.compute_heads(act, obs).detach())
    with torch.no_grad():
        loss.qvalue_network_params.apply_(lambda t: t.mul_(2.0))
    torch.testing.assert_close(snapshot.compute_heads(act, obs).detach(), before)
    assert not {id(p) for p in snapshot.parameters()} & {id(p) for p in loss.parameters()}


# ------------------------------------------------------------------ 5. checkpoints
def test_to_upstream_state_dict_of_a_state_dict_is_a_type_error():
    critic = DoubleQNetwork(q_cfg())
    with pytest.raises(TypeError, match=r"module must be an nn.Module.*got OrderedDict"):
        to_upstream_state_dict(critic.state_dict())


@pytest.mark.parametrize(
    "make", [lambda: DoubleQNetwork(q_cfg()), lambda: DoubleVNetwork(v_cfg())], ids=["Q", "V"]
)
def test_checkpoint_holding_both_layouts_is_refused_naming_the_keys(make):
    source, target = make(), make()
    both = {**source.state_dict(), **to_upstream_state_dict(source)}
    before = {k: v.clone() for k, v in target.state_dict().items()}
    tag = "q" if isinstance(target, DoubleQNetwork) else "v"
    with pytest.raises(ValueError, match=rf"both layouts.*'stacked\..*'model\.{tag}1\.model\."):
        target.load_state_dict(both)
    for key, value in target.state_dict().items():
        assert torch.equal(value, before[key])  # nothing loaded


# ------------------------------------------------------------------ 6. actor, missing key
def test_actor_get_dist_without_its_input_key_raises_torchrl_keyerror():
    td = TensorDict({"obs": torch.randn(4, S)}, [4])
    ours, stock = stochastic_actor(ProbabilisticActor), stochastic_actor()
    with set_exploration_type(ExplorationType.RANDOM):
        assert ours._direct_parts() is not None  # the fast path is the one tested
        with pytest.raises(KeyError) as stock_err:
            stock.get_dist(td.clone())
        with pytest.raises(KeyError, match="observation") as our_err:
            ours.get_dist(td.clone())
    assert str(our_err.value) == str(stock_err.value)
