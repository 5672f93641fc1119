"""``grl_torchrl.objectives.make_update``: the compiled update step against the eager one.

The compiled checks compile small networks (hidden 32, batch 32: just wide enough that the
critics' one-unit output layers are products ``matmul_layout`` rewrites): what takes the
time is dynamo tracing TorchRL's loss code, about 10-40 s per loss on a 2-core machine,
whatever the network size. Each loss is compiled once (module-scoped fixture) and serves several tests.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch._dynamo
import torch._inductor.config
from tensordict.nn import NormalParamExtractor, TensorDictModule, TensorDictSequential
from torch import nn
from torchrl.data import Bounded
from torchrl.modules import MLP, ProbabilisticActor, TanhModule, TanhNormal, ValueOperator
from torchrl.objectives import HardUpdate, SoftUpdate, group_optimizers
from torchrl.objectives import SACLoss as StockSACLoss

from grl_torchrl import DoubleQNetwork, EnsembleQNetwork, VNetwork
from grl_torchrl.objectives import CQLLoss, IQLLoss, REDQLoss, SACLoss, TD3Loss, make_update
from tests.transitions import transition_batch

OBS, ACT, HIDDEN, BATCH, STEPS = 3, 1, 32, 32, 20
SPEC = Bounded(-1.0, 1.0, (ACT,))


def q_config() -> dict:
    return {
        "backbone": {
            "type": "ConcatenateMLP",
            "args": {"hidden_sizes": [ACT + OBS, HIDDEN], "output_size": 1, "activation": "relu"},
        }
    }


def stochastic_actor() -> ProbabilisticActor:
    net = nn.Sequential(MLP(OBS, 2 * ACT, num_cells=[HIDDEN]), NormalParamExtractor())
    return ProbabilisticActor(
        TensorDictModule(net, ["observation"], ["loc", "scale"]),
        in_keys=["loc", "scale"],
        spec=SPEC,
        distribution_class=TanhNormal,
    )


def make_loss(algo: str):
    torch.manual_seed(0)
    if algo == "td3":
        # as TorchRL's TD3 script builds its actor: an MLP, then TanhModule (bounds as buffers)
        actor = TensorDictSequential(
            TensorDictModule(MLP(OBS, ACT, num_cells=[HIDDEN]), ["observation"], ["param"]),
            TanhModule(in_keys=["param"], out_keys=["action"], spec=SPEC),
        )
        loss = TD3Loss(actor, qvalue_network=DoubleQNetwork(q_config()), action_spec=SPEC)
    elif algo == "redq":
        critic = EnsembleQNetwork(q_config(), num_heads=4)
        loss = REDQLoss(stochastic_actor(), qvalue_network=critic, action_spec=SPEC)
    elif algo == "iql":
        value = VNetwork(
            {
                "backbone": {
                    "type": "MultiLayerPerceptron",
                    "args": {"hidden_sizes": [OBS, HIDDEN], "output_size": 1, "activation": "relu"},
                }
            }
        )
        loss = IQLLoss(stochastic_actor(), DoubleQNetwork(q_config()), value)
    else:
        cls = {"sac": SACLoss, "cql": CQLLoss}[algo]
        loss = cls(stochastic_actor(), qvalue_network=DoubleQNetwork(q_config()), action_spec=SPEC)
    loss.make_value_estimator(gamma=0.99)
    return loss


def batches(seed: int = 3) -> list:
    data = transition_batch(BATCH * STEPS, OBS, ACT, seed=seed, done_prob=0.1)
    return list(data.reshape(STEPS, BATCH).unbind(0))


def grouped_adam(loss) -> torch.optim.Adam:
    """One Adam per network, each with its own ``lr`` and ``eps``, merged into one optimiser
    by TorchRL's ``group_optimizers``, as TorchRL's SAC/TD3/IQL scripts build theirs."""
    params: dict[str, list] = {}
    for name, param in loss.named_parameters():
        params.setdefault(name.split(".")[0], []).append(param)
    per_network = [
        torch.optim.Adam(group, lr=1e-2 / (i + 1), eps=10.0 ** (i - 8))
        for i, group in enumerate(params.values())
    ]
    assert len(per_network) >= 2
    return group_optimizers(*per_network)


def train(loss, *, compile: bool):  # noqa: A002
    """``STEPS`` steps of ``make_update`` from seed 7; returns (step, losses per step)."""
    optimizer = grouped_adam(loss)
    step = make_update(loss, optimizer, SoftUpdate(loss, tau=0.1), compile=compile)
    torch.manual_seed(7)
    return step, [step(batch) for batch in batches()]


def stock_update(loss, optimizer, updater, batch):
    """The update as TorchRL's tutorials write it."""
    out = loss(batch)
    total = sum(out[key] for key in out.keys() if key.startswith("loss_"))
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    updater.step()
    return out


def state(loss) -> dict:
    """Every parameter and buffer of the loss (targets included), by name."""
    return {
        **dict(loss.named_parameters()),
        **{k: v for k, v in loss.named_buffers() if v.is_floating_point()},
    }


@pytest.fixture(scope="module", params=["sac", "td3", "redq", "iql", "cql"])
def trained(request):
    """(algo, eager loss, eager losses, compiled loss, compiled losses, compiled step)."""
    # the compiled graph draws its random numbers with eager's kernels and generator
    previous = torch._inductor.config.fallback_random
    torch._inductor.config.fallback_random = True
    try:
        eager = make_loss(request.param)
        compiled = copy.deepcopy(eager)
        _, eager_out = train(eager, compile=False)
        graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
        step, compiled_out = train(compiled, compile=True)
        step.graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"] - graphs
        yield request.param, eager, eager_out, compiled, compiled_out, step
    finally:
        torch._inductor.config.fallback_random = previous
        torch._dynamo.reset()


def test_compiled_matches_eager(trained):
    algo, eager, eager_out, compiled, compiled_out, _ = trained
    for a, b in zip(eager_out, compiled_out, strict=True):
        assert sorted(a.keys()) == sorted(b.keys())
        for key in a.keys():
            torch.testing.assert_close(b[key], a[key], rtol=1e-3, atol=1e-4, msg=key)
    expected, got = state(eager), state(compiled)
    assert expected.keys() == got.keys()
    for name in expected:
        # float32 rounding, amplified by Adam where a gradient is near zero (its step is
        # +-lr whatever the gradient's size): 20 steps at lr 1e-2
        torch.testing.assert_close(got[name], expected[name], rtol=1e-3, atol=2e-4, msg=name)
    # the parameters did move, and the targets with them
    fresh = state(make_loss(algo))
    targets = [n for n in got if n.startswith("target_") and n in fresh]
    assert targets and any(not torch.equal(fresh[n], got[n]) for n in targets)
    assert all(not torch.equal(fresh[n], got[n]) for n in dict(compiled.named_parameters()))


def test_optimizer_state_is_adams(trained):
    _, eager, _, compiled, _, step = trained
    for group in step.optimizer.param_groups:
        for param in group["params"]:
            state_ = step.optimizer.state[param]
            assert state_["step"].item() == STEPS
            assert state_["exp_avg"].shape == param.shape


def test_no_recompilation_after_warm_up(trained):
    *_, step = trained
    assert step.graphs == 1  # one graph for the 20 training steps, no graph break
    counters = torch._dynamo.utils.counters
    before = (counters["stats"]["unique_graphs"], counters["stats"]["calls_captured"])
    for group in step.optimizer.param_groups:
        group["lr"] = 3e-3  # an input of the graph, not a constant: no recompilation
    for batch in batches(seed=11)[:3]:
        step(batch)
        # the priority the loss computes inside the graph reaches the caller's batch
        assert batch["td_error"].shape == (BATCH,)
    # a second step on one batch (which now holds the priority the first wrote) too
    batch = batches(seed=12)[0]
    step(batch)
    step(batch)
    assert (counters["stats"]["unique_graphs"], counters["stats"]["calls_captured"]) == before


# one loss suffices (the check is make_update's, not the loss's) and a recompilation costs
# 25-80 s per loss on a loaded 2-core machine
@pytest.mark.parametrize("trained", ["td3"], indirect=True)
def test_a_new_batch_layout_compiles_again(trained):
    """After warm-up the step skips dynamo's guards; a batch of another size must still
    reach a graph compiled for it, with the eager loss's values, not the old graph."""
    *_, compiled, _, step = trained
    counters = torch._dynamo.utils.counters
    graphs = counters["stats"]["unique_graphs"]
    small = batches(seed=13)[0][: BATCH // 2]
    torch.manual_seed(3)
    expected = compiled(small.clone())  # the loss, eagerly, at the same weights
    torch.manual_seed(3)
    got = step(small.clone())
    assert counters["stats"]["unique_graphs"] == graphs + 1
    for key in (k for k in expected.keys() if k.startswith("loss_")):
        torch.testing.assert_close(got[key], expected[key].detach(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("trained", ["td3"], indirect=True)
def test_a_changed_thread_count_is_guarded_again(trained):
    """Dynamo guards on global state too: TorchRL's collectors change the thread count
    between updates, which a step skipping guards must notice, not fail on."""
    *_, compiled, _, step = trained
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads + 1)
        batch = batches(seed=14)[0]
        torch.manual_seed(3)
        expected = compiled(batch.clone())
        torch.manual_seed(3)
        got = step(batch.clone())
    finally:
        torch.set_num_threads(threads)
    for key in (k for k in expected.keys() if k.startswith("loss_")):
        torch.testing.assert_close(got[key], expected[key].detach(), rtol=1e-4, atol=1e-5)
    step(batches(seed=15)[0])  # and back


@pytest.mark.parametrize("algo", ["sac", "td3", "redq", "iql", "cql"])
def test_eager_fallback_is_the_stock_update(algo):
    ours = make_loss(algo)
    stock = copy.deepcopy(ours)
    step = make_update(
        ours, torch.optim.Adam(ours.parameters(), lr=1e-2), SoftUpdate(ours, tau=0.1), compile=False
    )
    optimizer = torch.optim.Adam(stock.parameters(), lr=1e-2)
    updater = SoftUpdate(stock, tau=0.1)
    for batch in batches()[:5]:
        torch.manual_seed(5)
        got = step(batch.clone())
        torch.manual_seed(5)
        expected = stock_update(stock, optimizer, updater, batch.clone())
        for key in expected.keys():
            assert torch.equal(got[key], expected[key].detach()), key
    expected_state, got_state = state(stock), state(ours)
    assert all(torch.equal(got_state[n], expected_state[n]) for n in expected_state)


def test_priority_is_written_into_the_batch():
    loss = make_loss("td3")
    optimizer = torch.optim.Adam(loss.parameters())
    step = make_update(loss, optimizer, SoftUpdate(loss, tau=0.1), compile=False)
    batch = batches()[0]
    step(batch)
    assert batch["td_error"].shape == (BATCH,)


def test_bad_arguments():
    loss = make_loss("sac")
    adam = torch.optim.Adam(loss.parameters())
    with pytest.raises(TypeError, match="loss must be one of .*got SACLoss"):
        stock = StockSACLoss(
            stochastic_actor(),
            qvalue_network=ValueOperator(
                MLP(OBS + ACT, 1, num_cells=[HIDDEN]), ["observation", "action"]
            ),
        )
        make_update(stock, torch.optim.Adam(stock.parameters()))
    with pytest.raises(TypeError, match="optimizer must be torch.optim.Adam or AdamW, got SGD"):
        make_update(loss, torch.optim.SGD(loss.parameters(), lr=0.1))
    foreign = torch.optim.Adam([*loss.parameters(), nn.Parameter(torch.zeros(2, 5))])
    with pytest.raises(
        ValueError, match=r"shape \(2, 5\) that is not a parameter or buffer of the loss"
    ):
        make_update(loss, foreign)
    with pytest.raises(ValueError, match="differentiable=True"):
        make_update(loss, torch.optim.Adam(loss.parameters(), differentiable=True))
    with pytest.raises(
        TypeError, match="target_updater must be .*SoftUpdate or None, got HardUpdate"
    ):
        make_update(loss, adam, HardUpdate(loss, value_network_update_interval=2))
    other = make_loss("sac")
    with pytest.raises(ValueError, match="target_updater updates another loss"):
        make_update(loss, adam, SoftUpdate(other, tau=0.1))
    with pytest.raises(TypeError, match="compile must be a bool, got 'yes'"):
        make_update(loss, adam, compile="yes")
    with pytest.raises(TypeError, match="batch must be a TensorDict, got dict"):
        make_update(loss, adam, compile=False)({"observation": torch.zeros(2, OBS)})


def test_changed_optimizer_refused_before_compiling():
    loss = make_loss("sac")
    adam = torch.optim.Adam(loss.parameters())
    step = make_update(loss, adam)  # compiles lazily: nothing traced until the first batch
    adam.param_groups[0]["betas"] = (0.5, 0.999)
    with pytest.raises(ValueError, match="hyperparameters changed after make_update"):
        step(batches()[0])
    adam.param_groups[0]["betas"] = (0.9, 0.999)
    adam.add_param_group({"params": [nn.Parameter(torch.zeros(1))]})
    with pytest.raises(ValueError, match="parameter groups changed after make_update"):
        step(batches()[0])


@pytest.mark.parametrize(
    "optimizer_class, options",
    [
        (torch.optim.Adam, {}),
        (torch.optim.Adam, {"amsgrad": True, "betas": (0.8, 0.99)}),
        (torch.optim.Adam, {"maximize": True, "eps": 1e-3}),
        (torch.optim.Adam, {"weight_decay": 0.1}),
        (torch.optim.AdamW, {"weight_decay": 0.1, "amsgrad": True}),
    ],
)
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_in_graph_adam_equals_torch_adam(optimizer_class, options, compiled):
    """The step's own Adam (``_adam_step`` with ``_adam_coefficients``) against PyTorch's,
    with an ``lr`` that changes between steps as a scheduler changes it."""
    from grl_torchrl.objectives.compiled import _adam_coefficients, _adam_state, _adam_step, _frozen

    torch.manual_seed(0)
    reference = [nn.Parameter(torch.randn(5, 3)), nn.Parameter(torch.randn(3))]
    ours = [nn.Parameter(p.detach().clone()) for p in reference]
    torch_adam = optimizer_class(reference, lr=1e-2, foreach=True, **options)
    holder = optimizer_class(ours, lr=1e-2, **options)  # our step keeps its state here
    group = holder.param_groups[0]
    hyper, decoupled = _frozen(group), optimizer_class is torch.optim.AdamW
    step = torch.compile(_adam_step, fullgraph=True) if compiled else _adam_step
    for index, lr in enumerate([1e-2, 1e-2, 3e-3, 3e-3, 1e-3]):
        grads = [torch.randn_like(p) for p in reference]
        for param, grad in zip(reference, grads, strict=True):
            param.grad = grad.clone()
        torch_adam.param_groups[0]["lr"] = lr
        torch_adam.step()
        states = [_adam_state(holder, p, group["amsgrad"]) for p in ours]
        steps = [s["step"] for s in states]
        state_ = (
            [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states],
            [s["max_exp_avg_sq"] for s in states] if group["amsgrad"] else [],
            steps,
            _adam_coefficients(lr, hyper, steps),
        )
        with torch.no_grad():
            step(ours, grads, state_, hyper, decoupled)
        for got, expected in zip(ours, reference, strict=True):
            torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6, msg=f"step {index}")
    for got, expected in zip(ours, reference, strict=True):
        for key, value in torch_adam.state[expected].items():
            torch.testing.assert_close(holder.state[got][key], value, rtol=1e-6, atol=1e-6)


def sota_td3_update(loss, optimizer_actor, optimizer_critic, updater, batch, update_actor):
    """TorchRL's sota-implementations/td3 ``update()``: two Adams, critic first, the actor
    (with the updated critic) and the targets every ``policy_update_delay``-th call."""
    q_loss, metadata = loss.value_loss(batch)
    q_loss.backward()
    optimizer_critic.step()
    optimizer_critic.zero_grad(set_to_none=True)
    if update_actor:
        actor_loss, _ = loss.actor_loss(batch)
        actor_loss.backward()
        optimizer_actor.step()
        optimizer_actor.zero_grad(set_to_none=True)
        updater.step()
    return q_loss.detach(), metadata["td_error"].detach().max(0)[0]


def td3_optimizers(loss):
    """The two Adams of TorchRL's TD3 script: over ``*_network_params``, whose actor entries
    include TanhModule's bounds, buffers that Adam never steps."""
    critic = list(loss.qvalue_network_params.flatten_keys().values())
    actor = list(loss.actor_network_params.flatten_keys().values())
    assert any(not t.requires_grad for t in actor)
    return torch.optim.Adam(actor, lr=1e-2), torch.optim.Adam(critic, lr=3e-3, eps=1e-6)


def delayed_td3_step(loss, *, compile: bool, policy_delay: int):  # noqa: A002
    """``make_update`` over the TD3 script's two Adams, merged by ``group_optimizers``."""
    return make_update(
        loss,
        group_optimizers(*td3_optimizers(loss)),
        SoftUpdate(loss, tau=0.1),
        compile=compile,
        policy_delay=policy_delay,
    )


def test_eager_policy_delay_is_torchrls_td3_script_update():
    reference = make_loss("td3")
    ours = copy.deepcopy(reference)
    optimizer_actor, optimizer_critic = td3_optimizers(reference)
    reference_updater = SoftUpdate(reference, tau=0.1)
    step = delayed_td3_step(ours, compile=False, policy_delay=3)
    fresh = {name: t.detach().clone() for name, t in state(ours).items()}
    for index, batch in enumerate(batches()[:7]):
        torch.manual_seed(index)  # the target policy noise
        q_loss, priority = sota_td3_update(
            reference,
            optimizer_actor,
            optimizer_critic,
            reference_updater,
            batch.clone(),
            (index + 1) % 3 == 0,
        )
        torch.manual_seed(index)
        ours_batch = batch.clone()
        losses = step(ours_batch)
        assert torch.equal(losses["loss_qvalue"], q_loss)
        assert torch.equal(ours_batch["td_error"], priority)
        if index == 1:  # two critic-only calls: the actor and the targets have not moved
            got = state(ours)
            for name in got:
                if name.startswith(("actor_network_params", "target_")):
                    assert torch.equal(got[name], fresh[name]), name
                elif name.startswith("qvalue_network_params"):
                    assert not torch.equal(got[name], fresh[name]), name
    assert step.updates == 7
    expected, got = state(reference), state(ours)
    assert all(torch.equal(got[name], expected[name]) for name in expected)
    # Adam stepped the critic 7 times, the actor twice, the actor's bounds never
    steps = {id(p): s["step"].item() for p, s in step.optimizer.state.items() if "step" in s}
    actor = list(ours.actor_network_params.flatten_keys().values())
    critic = list(ours.qvalue_network_params.flatten_keys().values())
    assert {steps.get(id(p)) for p in critic} == {7.0}
    assert {steps.get(id(p)) for p in actor if p.requires_grad} == {2.0}
    assert {steps.get(id(p)) for p in actor if not p.requires_grad} == {None}


def test_compiled_policy_delay_matches_eager_in_two_graphs():
    previous = torch._inductor.config.fallback_random
    torch._inductor.config.fallback_random = True
    try:
        runs = {}
        for compiled in (False, True):
            loss = make_loss("td3")
            step = delayed_td3_step(loss, compile=compiled, policy_delay=2)
            graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
            torch.manual_seed(7)
            outs = [step(batch) for batch in batches()[:8]]
            runs[compiled] = (loss, outs)
            if compiled:
                # the critic-only and the critic-and-actor graph, nothing recompiled
                assert torch._dynamo.utils.counters["stats"]["unique_graphs"] - graphs == 2
        (eager, eager_out), (compiled_loss, compiled_out) = runs[False], runs[True]
        for a, b in zip(eager_out, compiled_out, strict=True):
            assert sorted(a.keys()) == ["loss_actor", "loss_qvalue"] == sorted(b.keys())
            for key in a.keys():
                torch.testing.assert_close(b[key], a[key], rtol=1e-3, atol=1e-4, msg=key)
        assert [float(o["loss_actor"]) == 0 for o in compiled_out] == [True, False] * 4
        expected, got = state(eager), state(compiled_loss)
        for name in expected:
            torch.testing.assert_close(got[name], expected[name], rtol=1e-3, atol=2e-4, msg=name)
    finally:
        torch._inductor.config.fallback_random = previous
        torch._dynamo.reset()


def test_policy_delay_is_checked():
    with pytest.raises(ValueError, match="policy_delay must be an int >= 1, got 0"):
        make_update(
            make_loss("td3"), torch.optim.Adam([nn.Parameter(torch.zeros(1))]), policy_delay=0
        )
    loss = make_loss("sac")
    with pytest.raises(ValueError, match="SACLoss has no delayed actor"):
        make_update(loss, torch.optim.Adam(loss.parameters()), policy_delay=2)
