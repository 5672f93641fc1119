"""The private TorchRL hooks grl_torchrl.objectives overrides still exist and are still used.

The fused losses replace callables that TorchRL 0.14's ``_make_vmap`` builds (e.g.
``SACLoss._vmap_qnetworkN0``). If a TorchRL release renames them, stops calling them, or
evaluates the Q network some other way, these tests fail by name instead of the fused losses
silently falling back to vmap (or computing something else).
"""

from __future__ import annotations

import inspect

import pytest
import torch
from test_objectives import CASES, _seed, fixed_batch, make_pair  # noqa: F401
from torchrl.objectives import cql, iql, redq, sac, td3

from grl_torchrl import QNetwork, objectives
from grl_torchrl.objectives import FusedQEnsemble

STOCK = {
    "sac": sac.SACLoss,
    "td3": td3.TD3Loss,
    "redq": redq.REDQLoss,
    "iql": iql.IQLLoss,
    "cql": cql.CQLLoss,
}


@pytest.mark.parametrize("name", list(CASES))
def test_the_fused_class_subclasses_the_stock_one_with_its_signature(name):
    fused_cls = CASES[name][0]
    assert fused_cls.__bases__[-1] is STOCK[name]
    assert fused_cls._stock_class() is STOCK[name]
    ours, stock = inspect.signature(fused_cls), inspect.signature(STOCK[name])
    assert [(p.name, p.kind, p.default) for p in ours.parameters.values()] == [
        (p.name, p.kind, p.default) for p in stock.parameters.values()
    ]


@pytest.mark.parametrize("name", list(CASES))
def test_stock_make_vmap_builds_and_the_loss_calls_each_hook(name):
    fused_cls = CASES[name][0]
    source = inspect.getsource(STOCK[name])
    _, _, stock = make_pair(name)
    for attr, _ in fused_cls._fused_hooks:
        # the stock loss methods call the hook by this name ...
        assert f"self.{attr}(" in source, f"{STOCK[name].__name__} no longer calls {attr}"
        # ... and the stock _make_vmap builds it (SAC's 00 hook only with a value network)
        if attr in fused_cls._optional_hooks:
            continue
        assert callable(getattr(stock, attr, None)), f"{STOCK[name].__name__}.{attr} is gone"
    assert "def _make_vmap(self)" in inspect.getsource(STOCK[name])


@pytest.mark.parametrize("name", list(CASES))
def test_no_q_evaluation_bypasses_the_hooks(name, monkeypatch):
    # Every Q evaluation of the stock loss goes through QNetwork.forward (under vmap); the
    # fused loss must never call it: a Q evaluation TorchRL moved out of the hooks would.
    calls = []
    forward = QNetwork.forward

    def counting(self, *args, **kwargs):
        calls.append(type(self).__name__)
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(QNetwork, "forward", counting)
    _, ours, stock = make_pair(name)
    td = fixed_batch()
    stock(td.clone())
    assert calls, "the stock loss no longer evaluates the QNetwork"
    calls.clear()
    out = ours(td.clone())
    sum(v for k, v in out.items() if k.startswith("loss_")).backward()
    assert calls == [], f"{type(ours).__name__} evaluated the QNetwork outside the fused hooks"


def test_a_missing_hook_fails_loudly(monkeypatch):
    # what a TorchRL release renaming _vmap_qnetworkN0 would do to SACLoss
    def renamed(self):
        self._vmap_qnetwork_renamed = None

    monkeypatch.setattr(sac.SACLoss, "_make_vmap", renamed)
    with pytest.raises(RuntimeError, match=r"no longer sets '_vmap_qnetworkN0'"):
        make_pair("sac")


def test_set_vmap_randomness_rebuilds_the_fused_hooks():
    # LossModule.set_vmap_randomness calls _make_vmap again: the fused callables must survive
    _, ours, _ = make_pair("sac")
    ours.set_vmap_randomness("different")
    assert isinstance(ours._vmap_qnetworkN0, FusedQEnsemble)
    assert ours.fused
    assert isinstance(objectives.SACLoss.__mro__[1], type)
    assert torch.is_tensor(ours(fixed_batch())["loss_qvalue"])


def test_redq_params_cat_hook_is_still_the_only_feed_of_the_q_hook():
    # REDQLoss builds the [detached, subsampled target, live] stack in _qvalue_params_cat and
    # hands it to _vmap_qvalue_network00 only; the fused REDQLoss returns ParamGroups there.
    source = inspect.getsource(redq.REDQLoss)
    assert "def _qvalue_params_cat(self, selected_q_params)" in source
    assert source.count("self._qvalue_params_cat(") == 1
    call = source[source.index("self._vmap_qvalue_network00(") :]
    assert "self._qvalue_params_cat(selected_q_params)" in call[:200]
    _, ours, _ = make_pair("redq")
    groups = ours._qvalue_params_cat(ours.target_qvalue_network_params[:2])
    assert isinstance(groups, objectives.ParamGroups)
    assert [g.batch_size[0] for g in groups.groups] == [10, 2, 10]
