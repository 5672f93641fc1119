"""Q and V networks built from GenerativeRL configs, as TensorDict modules.

Every network is a :class:`tensordict.nn.TensorDictModuleBase` answering three call styles:

* TorchRL: ``net(td)`` reads ``in_keys`` and writes ``out_keys[0]`` into ``td``;
* keywords: ``q(observation=o, action=a)`` returns the tensor;
* upstream: ``q(action, state)``, ``v(state, condition=None)`` return the tensor.

Ensembles (:class:`EnsembleQNetwork`, :class:`EnsembleVNetwork`; the double networks are their
two-head, ``min`` case) keep their heads' parameters stacked and evaluate all heads in one pass.
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from tensordict import TensorDictBase
from tensordict.utils import NestedKey
from torch import nn

from grl_torchrl.nn._checks import check_int
from grl_torchrl.rl_modules.critic_base import (
    CriticBase,
    build_critic_model,
    first_structure_difference,
)
from grl_torchrl.rl_modules.ensemble import (
    call_stacked,
    fused_mlp_path,
    owner_of,
    run_fused_mlp,
    stack_modules,
)
from grl_torchrl.rl_modules.upstream_layout import load_upstream_layout

__all__ = [
    "DoubleQNetwork",
    "DoubleVNetwork",
    "EnsembleQNetwork",
    "EnsembleVNetwork",
    "OneShotValueFunction",
    "QNetwork",
    "VNetwork",
]

_REDUCTIONS = ("min", "mean", "max", "none")


class _SingleCritic(CriticBase):
    def __init__(
        self,
        config: Mapping,
        *,
        in_keys: Sequence[NestedKey] | None = None,
        out_keys: Sequence[NestedKey] | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.model = build_critic_model(config, q=self.is_q, owner=type(self).__name__)
        self._init_io(config, in_keys, out_keys)

    def _evaluate(self, inputs: dict[str, Any]) -> torch.Tensor:
        order = self._backbone_order(inputs)
        # identity encoders are skipped, not called: a TorchRL loss runs this per head and per
        # Q evaluation, where each module call costs as much as a small layer
        embeddings = [
            inputs[role]
            if role in self._identity_roles
            else self.model[f"{role}_encoder"](inputs[role])
            for role in order
        ]
        self._check_batch(order, embeddings)
        return self.model["backbone"](*embeddings)

    def _backbone(self) -> nn.Module:
        return self.model["backbone"]


class QNetwork(_SingleCritic):
    """Q(s, a) from a GenerativeRL config (``backbone``, ``state_encoder``, ``action_encoder``,
    optional ``condition_encoder``).

    Reads ``["observation", "action"]`` (+ ``"condition"`` when the config has a
    ``condition_encoder``) and writes ``"state_action_value"``. The backbone receives the
    encoded ``(action, state[, condition])``, in that order (upstream's).

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from grl_torchrl import QNetwork
        >>> cfg = {"backbone": {"type": "ConcatenateMLP", "args": {
        ...     "hidden_sizes": [5, 16], "output_size": 1, "activation": "relu"}}}
        >>> q = QNetwork(cfg)
        >>> obs, act = torch.randn(4, 3), torch.randn(4, 2)
        >>> q(act, obs).shape  # upstream style: action first
        torch.Size([4, 1])
        >>> bool((q(observation=obs, action=act) == q(act, obs)).all())
        True
        >>> td = q(TensorDict({"observation": obs, "action": act}, [4]))
        >>> td["state_action_value"].shape
        torch.Size([4, 1])
    """

    is_q = True


class VNetwork(_SingleCritic):
    """V(s) from a GenerativeRL config (``backbone``, ``state_encoder``, ``condition_encoder``).

    Reads ``["observation"]`` (+ ``"condition"`` when the config has a ``condition_encoder``)
    and writes ``"state_value"``. With a condition, the backbone gets ``(state, condition)``.

    Examples:
        >>> import torch
        >>> from grl_torchrl import VNetwork
        >>> cfg = {"backbone": {"type": "MultiLayerPerceptron", "args": {
        ...     "hidden_sizes": [3, 16], "output_size": 1, "activation": "tanh"}}}
        >>> v = VNetwork(cfg)
        >>> v(torch.randn(6, 2, 3)).shape
        torch.Size([6, 2, 1])
        >>> sorted(v.state_dict())[:2]
        ['model.backbone.model.linear0.bias', 'model.backbone.model.linear0.weight']
    """

    is_q = False


class _EnsembleCritic(CriticBase):
    _single_cls: type[_SingleCritic]
    _upstream_tag: str

    def __init__(
        self,
        config: Mapping,
        num_heads: int = 2,
        reduction: str = "min",
        *,
        in_keys: Sequence[NestedKey] | None = None,
        out_keys: Sequence[NestedKey] | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        num_heads = check_int(name, "num_heads", num_heads)
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{name}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.config = config
        self.num_heads = num_heads
        self.reduction = reduction
        # Independently initialised heads (as upstream's q1, q2), then stacked.
        heads = [self._single_cls(config) for _ in range(num_heads)]
        self.stacked, template = stack_modules([h.model for h in heads])
        object.__setattr__(self, "_template", template)
        self._fused_path = fused_mlp_path(template["backbone"])
        self._init_io(config, in_keys, out_keys)
        self.register_load_state_dict_pre_hook(load_upstream_layout)

    # ------------------------------------------------------------------ TorchRL losses
    @property
    def heads(self) -> list[_SingleCritic]:
        """The heads as ``num_heads`` independent single networks, for a TorchRL loss.

        Each head is a :class:`QNetwork` / :class:`VNetwork` (same ``in_keys`` /
        ``out_keys``) holding its own copy of that head's current weights, so a loss given
        ``qvalue_network=ens.heads`` stacks them into parameters it owns, exactly as it does
        with a list of TorchRL critics: optimisers built from ``loss.qvalue_network_params``
        or ``loss.parameters()`` train them, the target holds ``num_heads`` copies, and
        ``loss.state_dict()`` round trips. Call :meth:`bind_to_loss` afterwards to make this
        ensemble compute with the loss's (trained) parameters.
        """
        return [self._head_module(i, share=False) for i in range(self.num_heads)]

    def bind_to_loss(
        self, loss: nn.Module, network: str | None = None, *, target: bool = False
    ) -> _EnsembleCritic:
        """Makes this ensemble compute with a TorchRL loss's parameters; returns ``self``.

        After ``loss = SACLoss(actor, qvalue_network=ens.heads, ...)``,
        ``ens.bind_to_loss(loss)`` replaces the ensemble's stacked parameters by the
        loss's own ``loss.qvalue_network_params`` tensors (the same objects, no copy):
        every optimiser step on the loss shows in ``ens(...)``, ``compute_double_q`` and
        the checkpoints (``ens.state_dict()``,
        :func:`~grl_torchrl.rl_modules.to_upstream_state_dict`), and an optimiser built
        from ``ens.parameters()`` trains the loss. With ``target=True`` the
        ensemble holds the loss's target tensors instead (as buffers: no gradient; they follow
        the loss's target updater and casts), e.g. as upstream's ``q_target``.

        The loss's critic must be built like these heads (same modules, activations, layer
        sizes), otherwise ``ValueError``. A ``copy.deepcopy`` of a module holding both the
        loss and this ensemble stays bound: the copied ensemble computes with the copied
        loss's parameters. A copy of the ensemble alone is an independent snapshot.

        Args:
            loss: a TorchRL ``LossModule`` built from :attr:`heads`.
            network: the loss's name for the critic: ``"qvalue_network"`` (the default for
                Q ensembles) or ``"value_network"`` (the default for V ensembles).
            target: bind to ``loss.target_<network>_params``.
        """
        name = type(self).__name__
        network = network or ("qvalue_network" if self.is_q else "value_network")
        attr = f"target_{network}_params" if target else f"{network}_params"
        params = getattr(loss, attr, None)
        if not isinstance(params, TensorDictBase):
            raise ValueError(
                f"{name}.bind_to_loss: {type(loss).__name__} has no {attr!r}; pass the loss "
                f"built from this ensemble's heads and its name for them (network={network!r})"
            )
        # Same parameter shapes are not enough: a tanh critic bound to a loss built from relu
        # heads would compute values the loss never trains. The loss keeps its (stateless)
        # copy of the first head under `network`.
        skeleton = getattr(getattr(loss, network, None), "model", None)
        difference = (
            "it has no 'model' ModuleDict (not one of our critics)"
            if not isinstance(skeleton, nn.Module)
            else first_structure_difference(self.stacked, skeleton)
        )
        if difference is not None:
            raise ValueError(
                f"{name}.bind_to_loss: loss.{network} is not built like this ensemble's heads "
                f"({difference}): build the loss from this ensemble's heads "
                f"({network}=ens.heads)"
            )
        own = dict(self.stacked.named_parameters())
        own.update(self.stacked.named_buffers())
        for pname, mine in own.items():
            key = ("model", *pname.split("."))
            source = params.get(key, None)
            if source is None or source.shape != mine.shape:
                found = None if source is None else list(source.shape)
                raise ValueError(
                    f"{name}.bind_to_loss: loss.{attr} entry {'.'.join(key)!r} has shape "
                    f"{found}, expected {list(mine.shape)}: build the loss from this "
                    f"ensemble's heads (qvalue_network=ens.heads, {self.num_heads} of them)"
                )
        self._use_loss_params(params, loss, network, target)
        return self

    def _use_loss_params(
        self, params: TensorDictBase, loss: nn.Module, network: str, target: bool
    ) -> None:
        """Replaces the stacked tensors by ``params``' (checked to fit by the caller)."""
        for pname, _ in [*self.stacked.named_parameters(), *self.stacked.named_buffers()]:
            source = params.get(("model", *pname.split(".")))
            owner, leaf = owner_of(self.stacked, pname)
            if isinstance(source, nn.Parameter) and not target:
                setattr(owner, leaf, source)
            else:
                # target tensors: the loss's own buffer objects (updated in place by the
                # target updater, and re-pointed in place by ``loss.to()``), held as buffers
                owner._parameters.pop(leaf, None)
                owner._buffers[leaf] = source
        # Not a registered attribute (the loss is no submodule of the critic): __deepcopy__
        # reads it to bind the copy to the loss's copy.
        object.__setattr__(self, "_loss_binding", (weakref.ref(loss), network, target))

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_loss_binding", None)  # a weak reference: neither copied nor pickled
        return state

    def __deepcopy__(self, memo: dict[int, Any]) -> _EnsembleCritic:
        # The loss's parameter TensorDicts deep-copy without the memo (TensorDictParams
        # clones), so a plain deepcopy of a module holding a loss and its bound critic would
        # give the copied critic parameters of its own. Instead the copy takes the tensors of
        # the copy of the loss's parameter TensorDict: the one made in the same deepcopy
        # (whichever of loss and critic comes first), or (critic copied alone) one made here
        # and dropped afterwards, which leaves the copy an independent snapshot.
        binding = self.__dict__.get("_loss_binding")
        loss = None if binding is None else binding[0]()
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        new.__setstate__(copy.deepcopy(self.__getstate__(), memo))
        if loss is not None:
            _, network, target = binding
            params = getattr(loss, f"target_{network}_params" if target else f"{network}_params")
            # the loss's copy (possibly still being built, when the loss holds this critic)
            # and the copy of its parameter TensorDict, which the loss's copy holds
            loss_copy = copy.deepcopy(loss, memo)
            new._use_loss_params(copy.deepcopy(params, memo), loss_copy, network, target)
        return new

    # ------------------------------------------------------------------ upstream layout
    @property
    def model(self) -> nn.ModuleDict:
        """The heads under upstream's attribute paths ``model.q1``, ``model.q2`` (``v1`` ...).

        Each head is a :class:`QNetwork` / :class:`VNetwork` whose parameters are views of this
        ensemble's stacked parameters (shared storage, no copy), so it always computes with
        the ensemble's current weights. The views do not require grad and are built anew at
        each access: train through the ensemble (or the loss it is bound to).
        """
        return nn.ModuleDict(
            {
                f"{self._upstream_tag}{i + 1}": self._head_module(i, share=True).requires_grad_(
                    False
                )
                for i in range(self.num_heads)
            }
        )

    def _head_module(self, index: int, *, share: bool) -> _SingleCritic:
        head = self._single_cls(self.config, in_keys=self.in_keys, out_keys=self.out_keys)
        with torch.no_grad():
            for name, tensor in self.stacked.state_dict(keep_vars=True).items():
                owner, leaf = owner_of(head.model, name)
                data = tensor.detach()[index]
                data = data if share else data.clone()
                if leaf in owner._parameters:
                    # a target-bound ensemble holds buffers where the head has parameters
                    trainable = isinstance(tensor, nn.Parameter) and tensor.requires_grad
                    setattr(owner, leaf, nn.Parameter(data, requires_grad=trainable))
                else:
                    owner._buffers[leaf] = data
        return head

    # ------------------------------------------------------------------ evaluation
    def _evaluate_heads(
        self, inputs: dict[str, Any], index: torch.Tensor | None = None
    ) -> torch.Tensor:
        """All heads (or those in ``index``) stacked on a leading dim: ``[H, *B, out]``."""
        stacked, template = self.stacked, self._template
        order = self._backbone_order(inputs)
        embeddings, per_head = [], []
        for role in order:
            name = f"{role}_encoder"
            out, flag = call_stacked(stacked[name], template[name], [inputs[role]], [False], index)
            embeddings.append(out)
            per_head.append(flag)
        self._check_batch(
            order, [e[0] if flag else e for e, flag in zip(embeddings, per_head, strict=True)]
        )
        if self._fused_path is None:
            out, _ = call_stacked(
                stacked["backbone"], template["backbone"], embeddings, per_head, index
            )
            return out
        template["backbone"].check_input_dims([e.shape[-1] for e in embeddings])
        n_heads = self.num_heads if index is None else index.shape[0]
        shared = [e for e, flag in zip(embeddings, per_head, strict=True) if not flag]
        batch = shared[0].shape[:-1] if shared else embeddings[0].shape[1:-1]
        xs = [
            e.reshape(n_heads, -1, e.shape[-1]) if flag else e.reshape(-1, e.shape[-1])
            for e, flag in zip(embeddings, per_head, strict=True)
        ]
        xs = [x if x.dim() == 3 else x.expand(n_heads, *x.shape) for x in xs]
        x = xs[0] if len(xs) == 1 else torch.cat(xs, dim=-1)
        out = run_fused_mlp(stacked["backbone"].get_submodule(self._fused_path), x, index)
        return out.reshape(n_heads, *batch, out.shape[-1])

    def _backbone(self) -> nn.Module:
        return self.stacked["backbone"]

    def _evaluate(self, inputs: dict[str, Any]) -> torch.Tensor:
        values = self._evaluate_heads(inputs)
        if self.reduction == "min":
            return values.amin(0)
        if self.reduction == "max":
            return values.amax(0)
        if self.reduction == "mean":
            return values.mean(0)
        return values.movedim(0, -1).flatten(-2)

    def compute_heads(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Every head's output stacked on a new leading dim: ``[num_heads, *B, 1]``.

        Takes the same inputs as a call (upstream positional order or keywords).
        """
        return self._evaluate_heads(self._prepare(self._inputs_from_call(args, kwargs)))


class EnsembleQNetwork(_EnsembleCritic):
    """``num_heads`` independently initialised Q networks evaluated in one batched pass.

    Writes the ``reduction`` (``"min"``, ``"mean"``, ``"max"``) of the heads, or with
    ``"none"`` all heads on the last dim (``[*B, num_heads]``). Parameters are stored stacked
    (``stacked.<upstream path>`` with a leading ``num_heads`` dim); ``load_state_dict`` also
    accepts upstream's per-head layout ``model.q1.model...``, ``model.q2.model...``, and
    :func:`~grl_torchrl.rl_modules.to_upstream_state_dict` writes it.

    In a TorchRL loss, give the loss :attr:`heads` (independent copies the loss stacks into
    parameters it owns, as with TorchRL's own critics), then :meth:`bind_to_loss` so that
    this ensemble computes with the trained parameters::

        critic = EnsembleQNetwork(cfg, num_heads=10)
        loss = REDQLoss(actor, qvalue_network=critic.heads, num_qvalue_nets=10, ...)
        critic.bind_to_loss(loss)  # critic now shares loss.qvalue_network_params

    Examples:
        >>> import torch
        >>> from grl_torchrl import EnsembleQNetwork
        >>> cfg = {"backbone": {"type": "ConcatenateMLP", "args": {
        ...     "hidden_sizes": [5, 16], "output_size": 1, "activation": "relu"}}}
        >>> q = EnsembleQNetwork(cfg, num_heads=10, reduction="mean")
        >>> obs, act = torch.randn(4, 3), torch.randn(4, 2)
        >>> q.compute_heads(act, obs).shape
        torch.Size([10, 4, 1])
        >>> torch.allclose(q(act, obs), q.compute_heads(act, obs).mean(0))
        True
        >>> q.stacked.backbone.model.model.linear0.weight.shape
        torch.Size([10, 16, 5])
    """

    is_q = True
    _single_cls = QNetwork
    _upstream_tag = "q"

    def compute_double_q(
        self, action: Any, state: Any, condition: Any = None
    ) -> tuple[torch.Tensor, ...]:
        """Each head's Q value, as a tuple ``(q1, q2, ...)``."""
        return tuple(self.compute_heads(action, state, condition).unbind(0))

    def compute_minimum_q(self, action: Any, state: Any, condition: Any = None) -> torch.Tensor:
        """Elementwise minimum over the heads (whatever ``reduction`` is)."""
        return self.compute_heads(action, state, condition).amin(0)

    compute_mininum_q = compute_minimum_q  # upstream's spelling


class EnsembleVNetwork(_EnsembleCritic):
    """``num_heads`` independently initialised V networks evaluated in one batched pass.

    Same as :class:`EnsembleQNetwork` for state values; upstream layout ``model.v1.model...``.

    Examples:
        >>> import torch
        >>> from grl_torchrl import EnsembleVNetwork
        >>> cfg = {"backbone": {"type": "MultiLayerPerceptron", "args": {
        ...     "hidden_sizes": [3, 16], "output_size": 1, "activation": "relu"}}}
        >>> v = EnsembleVNetwork(cfg, num_heads=4, reduction="none")
        >>> v(torch.randn(7, 3)).shape
        torch.Size([7, 4])
    """

    is_q = False
    _single_cls = VNetwork
    _upstream_tag = "v"

    def compute_double_v(self, state: Any, condition: Any = None) -> tuple[torch.Tensor, ...]:
        """Each head's value, as a tuple ``(v1, v2, ...)``."""
        return tuple(self.compute_heads(state, condition).unbind(0))

    def compute_minimum_v(self, state: Any, condition: Any = None) -> torch.Tensor:
        """Elementwise minimum over the heads (whatever ``reduction`` is)."""
        return self.compute_heads(state, condition).amin(0)

    compute_mininum_v = compute_minimum_v  # upstream's spelling


class _TwoHeadMin:
    """Fixes an ensemble to two heads reduced by their minimum (the "double" networks)."""

    def __init__(
        self,
        config: Mapping,
        *,
        in_keys: Sequence[NestedKey] | None = None,
        out_keys: Sequence[NestedKey] | None = None,
    ) -> None:
        super().__init__(config, num_heads=2, reduction="min", in_keys=in_keys, out_keys=out_keys)


class DoubleQNetwork(_TwoHeadMin, EnsembleQNetwork):
    """Clipped double Q: two heads, ``forward`` is their elementwise minimum.

    ``dq.heads`` gives the two heads for a TorchRL loss and ``dq.bind_to_loss(loss)`` makes
    ``dq`` compute with the parameters the loss trains (see :class:`EnsembleQNetwork`).

    Examples:
        >>> import torch
        >>> from grl_torchrl import DoubleQNetwork
        >>> cfg = {"backbone": {"type": "ConcatenateMLP", "args": {
        ...     "hidden_sizes": [5, 16], "output_size": 1, "activation": "relu"}}}
        >>> dq = DoubleQNetwork(cfg)
        >>> obs, act = torch.randn(4, 3), torch.randn(4, 2)
        >>> q1, q2 = dq.compute_double_q(act, obs)
        >>> bool((dq(act, obs) == torch.min(q1, q2)).all())
        True
        >>> h1, h2 = dq.heads  # e.g. SACLoss(actor, qvalue_network=dq.heads)
        >>> torch.allclose(h2(act, obs), q2, atol=1e-6)
        True
        >>> torch.allclose(dq.model.q1(act, obs), q1, atol=1e-6)  # upstream's attribute path
        True
    """


class DoubleVNetwork(_TwoHeadMin, EnsembleVNetwork):
    """Two V heads, ``forward`` is their elementwise minimum; ``condition`` defaults to None.

    Examples:
        >>> import torch
        >>> from grl_torchrl import DoubleVNetwork
        >>> cfg = {"backbone": {"type": "MultiLayerPerceptron", "args": {
        ...     "hidden_sizes": [3, 16], "output_size": 1, "activation": "relu"}}}
        >>> dv = DoubleVNetwork(cfg)
        >>> s = torch.randn(4, 3)
        >>> v1, v2 = dv.compute_double_v(s)
        >>> bool((dv(s) == torch.min(v1, v2)).all()), dv.compute_mininum_v(s).shape
        (True, torch.Size([4, 1]))
    """


class OneShotValueFunction(CriticBase):
    """A :class:`DoubleVNetwork` ``v`` trained by plain regression, plus a frozen copy.

    Config: ``DoubleVNetwork`` (the V config) and ``v_alpha`` (read and stored, but unused, as
    upstream). ``v_target`` is a deep copy of ``v`` with ``requires_grad=False``; it is never
    updated here (callers do Polyak averaging, e.g. ``torchrl.objectives.SoftUpdate``-style).
    ``forward`` is the minimum of ``v``'s heads; writes ``"state_value"``.

    Examples:
        >>> import torch
        >>> from grl_torchrl import OneShotValueFunction
        >>> cfg = {"v_alpha": 1.0, "DoubleVNetwork": {"backbone": {
        ...     "type": "MultiLayerPerceptron", "args": {
        ...     "hidden_sizes": [3, 16], "output_size": 1, "activation": "relu"}}}}
        >>> ov = OneShotValueFunction(cfg)
        >>> s, y = torch.randn(8, 3), torch.randn(8)
        >>> loss = ov.v_loss(s, y)  # a [B] target is read as [B, 1]
        >>> loss.backward()
        >>> ov(s).shape, any(p.requires_grad for p in ov.v_target.parameters())
        (torch.Size([8, 1]), False)
    """

    is_q = False

    def __init__(
        self,
        config: Mapping,
        *,
        in_keys: Sequence[NestedKey] | None = None,
        out_keys: Sequence[NestedKey] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(config, Mapping):
            raise TypeError(
                f"OneShotValueFunction: config must be a dict or EasyDict, got "
                f"{type(config).__name__}"
            )
        if "DoubleVNetwork" not in config:
            raise ValueError(
                "OneShotValueFunction: config must hold a 'DoubleVNetwork' entry (the V config), "
                f"got keys {sorted(config)}"
            )
        self.config = config
        self.v_alpha = config.get("v_alpha")  # unused, as upstream
        v_config = config["DoubleVNetwork"]
        self.v = DoubleVNetwork(v_config, in_keys=in_keys, out_keys=out_keys)
        self.v_target = copy.deepcopy(self.v).requires_grad_(False)
        self._init_io(v_config, in_keys, out_keys)

    def _evaluate(self, inputs: dict[str, Any]) -> torch.Tensor:
        return self.v._evaluate(inputs)

    def _backbone(self) -> nn.Module:
        return self.v._backbone()

    def compute_double_v(self, state: Any, condition: Any = None) -> tuple[torch.Tensor, ...]:
        """``(v1, v2)`` of ``v``."""
        return self.v.compute_double_v(state, condition)

    def v_loss(self, state: Any, value: torch.Tensor, condition: Any = None) -> torch.Tensor:
        """``(MSE(v1, value) + MSE(v2, value)) / 2``; a ``[B]`` target is read as ``[B, 1]``."""
        v1, v2 = self.v.compute_double_v(state, condition)
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"v_loss: value must be a tensor, got {type(value).__name__}")
        if value.shape != v1.shape:
            if value.shape == v1.shape[:-1] and v1.shape[-1] == 1:
                value = value.unsqueeze(-1)
            else:
                raise ValueError(
                    f"v_loss: value has shape {tuple(value.shape)}, expected {tuple(v1.shape)} "
                    f"or {tuple(v1.shape[:-1])}"
                )
        return (F.mse_loss(v1, value) + F.mse_loss(v2, value)) / 2
