"""The shared part of the fused losses: critic conversion and the batched Q evaluation.

TorchRL's losses evaluate their Q ensemble through callables built in ``_make_vmap``
(``self._vmap_qnetworkN0``, ``self._vmap_qvalue_network00``, ...): ``torch.vmap`` over one
head's functional call, fed the loss's stacked parameters. Those callables are the narrowest
private hook TorchRL 0.14 offers (the loss methods only call them and read the
``state_action_value`` entry of what they return), so :class:`FusedQMixin` replaces them,
after the stock ``_make_vmap`` ran, by :class:`FusedQEnsemble`, which computes the same
values as one chain of ``torch.baddbmm`` over the same stacked parameters: no vmap, no
per-head gather of the weights, no ``TensorDict.to_module`` swap. Everything else (the
losses' maths, the parameters the loss owns, targets, state dicts) stays TorchRL's.
``tests/test_objectives_hooks.py`` fails if a TorchRL release renames or bypasses a hook.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictParams
from tensordict.utils import NestedKey
from torch import nn

from grl_torchrl.nn.backbones import ConcatenateMLP
from grl_torchrl.rl_modules.critic_base import check_loss_networks
from grl_torchrl.rl_modules.ensemble import fused_mlp_path, run_stacked_steps
from grl_torchrl.rl_modules.value_networks import EnsembleQNetwork, QNetwork

__all__ = ["FusedQEnsemble", "FusedQMixin", "ParamGroups", "fused_q_plan"]

_ROLE_ORDER = ("action", "state", "condition")  # upstream's backbone input order


def _stateless(module: nn.Module) -> bool:
    return next(module.parameters(), None) is None and next(module.buffers(), None) is None


def fused_q_plan(network: nn.Module) -> list[tuple] | None:
    """The layer plan :class:`FusedQEnsemble` runs for ``network``, or ``None`` if not fusable.

    Fusable: a :class:`~grl_torchrl.rl_modules.QNetwork` whose encoders hold no parameters or buffers
    and whose backbone is a ``ConcatenateMLP`` accepted by ``fused_mlp_path`` (Linear /
    LayerNorm / parameter-free layers, no ``scale`` parameter). Each entry is
    ``("linear", weight_key, bias_key)``, ``("layernorm", module, weight_key, bias_key)`` or
    ``("apply", module)``; keys index the loss's parameter TensorDict.

    >>> from grl_torchrl import QNetwork
    >>> q = QNetwork({"backbone": {"type": "ConcatenateMLP", "args": {
    ...     "hidden_sizes": [5, 8], "output_size": 1, "activation": "relu"}}})
    >>> [step[0] for step in fused_q_plan(q)]
    ['linear', 'apply', 'linear']
    >>> fused_q_plan(q)[0][1]
    ('model', 'backbone', 'model', 'model', 'linear0', 'weight')
    """
    if type(network) is not QNetwork:
        return None
    # A Q network's backbone takes (action, state[, condition]): only ConcatenateMLP fits.
    if not isinstance(network.model["backbone"], ConcatenateMLP):
        return None
    model = network.model
    if not all(_stateless(model[f"{role}_encoder"]) for role in ("action", "state", "condition")):
        return None
    backbone = model["backbone"]
    path = fused_mlp_path(backbone)
    if path is None:
        return None
    prefix = ("model", "backbone", *path.split("."))
    plan: list[tuple] = []
    for name, layer in backbone.get_submodule(path).named_children():
        key = (*prefix, name)
        if isinstance(layer, nn.Linear):
            plan.append(
                ("linear", (*key, "weight"), None if layer.bias is None else (*key, "bias"))
            )
        elif isinstance(layer, nn.LayerNorm):
            weight = None if layer.weight is None else (*key, "weight")
            bias = None if layer.bias is None else (*key, "bias")
            plan.append(("layernorm", layer, weight, bias))
        else:
            plan.append(("apply", layer))
    return plan


class ParamGroups:
    """Stacked parameter TensorDicts whose heads follow each other (``[H1], [H2], ...``).

    Stands for ``torch.cat(groups, 0)`` without the copy: :class:`FusedQEnsemble` runs each
    group's heads on its slice of the inputs, so autograd keeps each group's own gradient
    requirements (no weight gradient for detached or target groups).

    >>> import torch
    >>> from tensordict import TensorDict
    >>> live = TensorDict({"w": torch.ones(3, 2)}, [3])
    >>> [g.batch_size[0] for g in ParamGroups(live.detach(), live[:1], live).groups]
    [3, 1, 3]
    """

    __slots__ = ("groups",)

    def __init__(self, *groups: TensorDictBase) -> None:
        self.groups = groups


class FusedQEnsemble:
    """Drop-in for TorchRL's vmapped Q-ensemble callable ``(tensordict, params) -> tensordict``.

    ``params`` is the loss's stacked parameter TensorDict (leading dim ``H``, or none for a
    single network). With ``batched_input=False`` (TorchRL's ``N0`` callables) ``tensordict``
    is shared by all heads; with ``True`` (the ``00`` ones) its leading dim is ``H``. Returns
    a TensorDict of batch ``[H, *batch]`` holding the critic's output key, as the stock
    callables' results are read. Inputs are read, cast and checked as
    :class:`~grl_torchrl.rl_modules.QNetwork` does; each Linear layer is one ``baddbmm`` over all heads.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> from grl_torchrl import EnsembleQNetwork
    >>> cfg = {"backbone": {"type": "ConcatenateMLP", "args": {
    ...     "hidden_sizes": [5, 8], "output_size": 1, "activation": "relu"}}}
    >>> ens = EnsembleQNetwork(cfg, num_heads=3)
    >>> head = ens.heads[0]
    >>> params = TensorDict.from_modules(*ens.heads, as_module=True)
    >>> fused = FusedQEnsemble(head, fused_q_plan(head), batched_input=False)
    >>> td = TensorDict({"observation": torch.randn(4, 3), "action": torch.randn(4, 2)}, [4])
    >>> out = fused(td, params)["state_action_value"]
    >>> out.shape, torch.allclose(out, ens.compute_heads(td["action"], td["observation"]))
    (torch.Size([3, 4, 1]), True)
    """

    def __init__(self, network: QNetwork, plan: Sequence[tuple], *, batched_input: bool) -> None:
        self.network = network  # structure only: checks, roles, keys (never called)
        self.plan = list(plan)
        self.batched_input = batched_input
        self.out_key: NestedKey = network.out_keys[0]
        self.encoders = {role: network.model[f"{role}_encoder"] for role in network._roles}
        self.backbone = network.model["backbone"]
        self.first_weight = plan[0][1] if plan and plan[0][0] == "linear" else None

    def __call__(
        self, tensordict: TensorDictBase, params: TensorDictBase | ParamGroups
    ) -> TensorDictBase:
        groups = params.groups if isinstance(params, ParamGroups) else (params,)
        groups = tuple(g.unsqueeze(0) if g.batch_dims == 0 else g for g in groups)
        sizes = [g.batch_size[0] for g in groups]
        heads = sum(sizes)
        # QNetwork's own input reading and rules (dtype cast, 0-d / integer rejection), with
        # the dtype read from the loss's parameters rather than from the functional skeleton.
        inputs = self.network._prepare(
            self.network._inputs_from_td(tensordict), groups[0].get(self.first_weight).dtype
        )
        order = [role for role in _ROLE_ORDER if inputs.get(role) is not None]
        embeddings = [self.encoders[role](inputs[role]) for role in order]
        self.network._check_batch(order, embeddings)
        self.backbone.check_input_dims([e.shape[-1] for e in embeddings])
        x = embeddings[0] if len(embeddings) == 1 else torch.cat(embeddings, dim=-1)
        if self.batched_input:
            if x.shape[0] != heads:
                raise ValueError(f"FusedQEnsemble: inputs carry {x.shape[0]} heads, params {heads}")
            batch = x.shape[1:-1]
            x = x.reshape(heads, -1, x.shape[-1])
            xs = x.split(sizes, 0) if len(groups) > 1 else (x,)
        else:
            batch = x.shape[:-1]
            x = x.reshape(1, -1, x.shape[-1])
            xs = tuple(x.expand(size, -1, -1) for size in sizes)
        outs = [self._run(x, group) for x, group in zip(xs, groups, strict=True)]
        out = outs[0] if len(outs) == 1 else torch.cat(outs, 0)
        out = out.reshape(heads, *batch, out.shape[-1])
        batch_size = torch.Size([heads, *batch])
        if isinstance(self.out_key, str):
            return TensorDict._new_unsafe({self.out_key: out}, batch_size)
        return TensorDict({self.out_key: out}, batch_size)

    def _run(self, x: torch.Tensor, params: TensorDictBase) -> torch.Tensor:
        steps = []
        for step in self.plan:
            if step[0] == "linear":
                bias = None if step[2] is None else params.get(step[2])
                steps.append(("linear", params.get(step[1]), bias))
            elif step[0] == "layernorm":
                weight = None if step[2] is None else params.get(step[2])
                bias = None if step[3] is None else params.get(step[3])
                steps.append(("layernorm", step[1], weight, bias))
            else:
                steps.append(step)
        return run_stacked_steps(x, steps)


class FusedQMixin:
    """Turns a TorchRL loss into its fused version; mixed in before the stock class.

    * ``qvalue_network`` may be one of our Q ensembles (:class:`~grl_torchrl.rl_modules.EnsembleQNetwork`,
      :class:`~grl_torchrl.rl_modules.DoubleQNetwork`): the stock constructor gets ``critic.heads``
      (``num_qvalue_nets`` defaults to ``critic.num_heads``), and ``critic.bind_to_loss``
      makes the critic compute with the loss's (trained) parameters. Anything the stock loss
      accepts is passed on unchanged.
    * ``_fused_hooks`` names the stock vmap callables over the Q network (``(attribute,
      batched_input)``) that ``_make_vmap`` replaces by :class:`FusedQEnsemble` when the
      loss's Q skeleton is fusable (see :func:`fused_q_plan`); ``loss.fused`` says whether it
      did. A hook the stock ``_make_vmap`` no longer creates raises ``RuntimeError``.

    >>> from torchrl.objectives import sac
    >>> from grl_torchrl.objectives import FusedQMixin, SACLoss
    >>> SACLoss.__mro__[1:3] == (FusedQMixin, sac.SACLoss), SACLoss._stock_class().__name__
    (True, 'SACLoss')
    """

    _fused_hooks: tuple[tuple[str, bool], ...] = ()
    _optional_hooks: frozenset[str] = frozenset()
    _fixed_num_qvalue_nets: int | None = None  # a stock loss without num_qvalue_nets (CQL)
    fused: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # the stock constructor's signature (for help() and the docs), annotations left out:
        # TorchRL's name classes the docs cannot resolve
        stock = inspect.signature(cls._stock_class())
        cls.__signature__ = stock.replace(
            parameters=[p.replace(annotation=p.empty) for p in stock.parameters.values()],
            return_annotation=stock.empty,
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        stock = self._stock_class()
        bound = inspect.signature(stock.__init__).bind(self, *args, **kwargs)
        arguments = bound.arguments
        # our critics in the wrong role or with several outputs: refused before any work
        check_loss_networks(type(self).__name__, arguments)
        critic = arguments.get("qvalue_network")
        ensemble = critic if isinstance(critic, EnsembleQNetwork) else None
        if ensemble is not None:
            if self._fixed_num_qvalue_nets is not None:
                given = self._fixed_num_qvalue_nets
                what = f"{stock.__name__} takes exactly {given} Q heads"
            else:
                given = arguments.get("num_qvalue_nets")
                what = f"num_qvalue_nets={given!r}"
            if given is not None and given != ensemble.num_heads:
                raise ValueError(
                    f"{type(self).__name__}: {what}, but qvalue_network "
                    f"({type(ensemble).__name__}) has {ensemble.num_heads} heads; give an "
                    f"ensemble with that many heads (or leave num_qvalue_nets out)"
                )
            arguments["qvalue_network"] = ensemble.heads
            if self._fixed_num_qvalue_nets is None:
                arguments["num_qvalue_nets"] = ensemble.num_heads
        super().__init__(*bound.args[1:], **bound.kwargs)
        if ensemble is not None:
            ensemble.bind_to_loss(self)

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        # tensordict 0.14 caches TensorDictParams.detach() on the (locked) TensorDictParams and
        # does not drop that cache in _apply: after loss.to(...) / loss.double() the stock
        # losses' detached Q parameters (actor loss) would still be the old tensors, frozen.
        for module in self.modules():
            if isinstance(module, TensorDictParams):
                module._erase_cache()
        return out

    @classmethod
    def _stock_class(cls) -> type:
        for base in cls.__mro__[1:]:
            if base is not FusedQMixin and not issubclass(base, FusedQMixin):
                if base.__module__.startswith("torchrl."):
                    return base
        raise TypeError(f"{cls.__name__} has no TorchRL loss base class")

    def _make_vmap(self) -> None:
        super()._make_vmap()  # builds the stock torch.vmap callables first
        network = self.qvalue_network
        plan = fused_q_plan(network)
        self.fused = plan is not None
        if plan is None:
            return
        for attr, batched_input in self._fused_hooks:
            if not hasattr(self, attr):
                if attr in self._optional_hooks:
                    continue
                raise RuntimeError(
                    f"{type(self).__name__}: TorchRL's {self._stock_class().__name__}._make_vmap "
                    f"no longer sets {attr!r}, the private hook the fused path replaces; this "
                    f"TorchRL release is not supported by grl_torchrl.objectives"
                )
            setattr(self, attr, FusedQEnsemble(network, plan, batched_input=batched_input))
