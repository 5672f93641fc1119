"""Shared plumbing of the Q/V networks: config building and the three call styles."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import NestedKey
from torch import nn

from grl_torchrl.nn.backbones import ConcatenateMLP
from grl_torchrl.nn.encoders import IdentityEncoder
from grl_torchrl.nn.registry import build_block
from grl_torchrl.rl_modules.ensemble import owner_of

__all__ = ["CriticBase", "build_critic_model", "check_loss_networks", "first_structure_difference"]

# Order in which encoded inputs reach the backbone (upstream: Q -> (action, state), V -> (state,
# condition)); absent roles are skipped.
_BACKBONE_ORDER = ("action", "state", "condition")


def _check_config(config: Any, owner: str) -> Mapping:
    if not isinstance(config, Mapping):
        raise TypeError(f"{owner}: config must be a dict or EasyDict, got {type(config).__name__}")
    if "backbone" not in config:
        raise ValueError(
            f"{owner}: config has no 'backbone' entry; expected e.g. "
            "{'backbone': {'type': 'MultiLayerPerceptron', 'args': {...}}}"
        )
    return config


def build_critic_model(config: Mapping, *, q: bool, owner: str) -> nn.ModuleDict:
    """Builds upstream's ``model`` ModuleDict: ``{action_,}state_, condition_encoder, backbone``."""
    _check_config(config, owner)
    model = nn.ModuleDict()
    roles = ("action", "state", "condition") if q else ("state", "condition")
    for role in roles:
        key = f"{role}_encoder"
        block = config.get(key)
        model[key] = (
            IdentityEncoder() if block is None else build_block(block, kind="encoder", where=key)
        )
    model["backbone"] = build_block(config["backbone"], kind="module", where="backbone")
    return model


def first_structure_difference(ours: nn.Module, theirs: nn.Module) -> str | None:
    """Where two module trees compute differently, or ``None`` if their structure matches.

    Compares every submodule's path, type, ``extra_repr()`` (layer sizes, activation,
    dropout rate, LayerNorm settings, ...) and its own parameter / buffer names.

    >>> from torch import nn
    >>> a = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    >>> first_structure_difference(a, nn.Sequential(nn.Linear(3, 4), nn.ReLU())) is None
    True
    >>> first_structure_difference(a, nn.Sequential(nn.Linear(3, 4), nn.Tanh()))
    "'1': ReLU() here, Tanh() there"
    """

    def describe(module: nn.Module) -> tuple:
        tensors = [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]
        return (type(module), module.extra_repr(), sorted(name for name, _ in tensors))

    mine = dict(ours.named_modules())
    other = dict(theirs.named_modules())
    for path in sorted(mine.keys() | other.keys()):
        here, there = mine.get(path), other.get(path)
        if here is None or there is None or describe(here) != describe(there):

            def show(m: nn.Module | None) -> str:
                return "nothing" if m is None else f"{type(m).__name__}({m.extra_repr()})"

            return f"{path or '<root>'!r}: {show(here)} here, {show(there)} there"
    return None


def check_loss_networks(owner: str, arguments: Mapping[str, Any]) -> None:
    """Refuses, before a loss is built, our critics in the wrong role (TypeError) or with an
    output size other than one (ValueError).

    ``arguments`` are the loss constructor's bound arguments: ``qvalue_network`` (one module
    or a list of heads) must be Q networks, ``value_network`` a state-value network.
    Modules that are not our critics are TorchRL's business and pass unchecked.
    """
    for argument, want_q in (("qvalue_network", True), ("value_network", False)):
        given = arguments.get(argument)
        modules = list(given) if isinstance(given, (list, tuple, nn.ModuleList)) else [given]
        for i, module in enumerate(modules):
            if not isinstance(module, CriticBase):
                continue
            where = argument if len(modules) == 1 and given is module else f"{argument}[{i}]"
            kind = "a Q network Q(s, a)" if module.is_q else "a state-value network V(s)"
            if module.is_q != want_q:
                expected = (
                    "a Q network, got {} ({}); give a QNetwork, or an EnsembleQNetwork / "
                    "DoubleQNetwork (or its .heads)"
                    if want_q
                    else "a state-value network, got {} ({}); give e.g. a VNetwork"
                )
                raise TypeError(
                    f"{owner}: {where} must be " + expected.format(type(module).__name__, kind)
                )
            size = module._head_output_size()
            if size is not None and size != 1:
                raise ValueError(
                    f"{owner}: {where} ({type(module).__name__}) outputs {size} values per input "
                    f"(backbone output_size={size}), expected 1: the loss reads one value per "
                    f"{'state-action pair' if want_q else 'state'}; set output_size to 1"
                )


class CriticBase(TensorDictModuleBase):
    """Call-style dispatch shared by every Q/V network.

    Subclasses set ``is_q`` and implement ``_evaluate(inputs)`` where ``inputs`` maps the roles
    ``"state"``, ``"action"`` (Q only) and optionally ``"condition"`` to their values.
    """

    is_q: bool = True

    def _init_io(
        self,
        config: Mapping,
        in_keys: Sequence[NestedKey] | None,
        out_keys: Sequence[NestedKey] | None,
    ) -> None:
        _check_config(config, type(self).__name__)
        roles = ["state", "action"] if self.is_q else ["state"]
        default_in = ["observation", "action"] if self.is_q else ["observation"]
        if config.get("condition_encoder") is not None:
            roles.append("condition")
            default_in.append("condition")
        in_keys = default_in if in_keys is None else list(in_keys)
        if len(in_keys) != len(roles):
            raise ValueError(
                f"{type(self).__name__}: in_keys must give {len(roles)} keys for the inputs "
                f"{roles}, got {in_keys}"
            )
        default_out = "state_action_value" if self.is_q else "state_value"
        out_keys = [default_out] if out_keys is None else list(out_keys)
        if len(out_keys) != 1:
            raise ValueError(f"{type(self).__name__}: out_keys must hold one key, got {out_keys}")
        self.in_keys = in_keys
        self.out_keys = out_keys
        self._roles = roles
        self._identity_roles = {
            role
            for role in roles
            if config.get(f"{role}_encoder") is None
            or str(config[f"{role}_encoder"].get("type", "")).lower()
            in ("identity", "identityencoder")
        }
        # The dtype inputs are cast to is read off this parameter at each call (a TorchRL loss
        # swaps parameters in and may cast them). Its owning module is kept (not registered:
        # it is already in the tree, and deepcopy maps it to the copy's) so that the lookup
        # is one getattr, not a walk over the module tree.
        source = next((name for name, p in self.named_parameters() if p.is_floating_point()), None)
        owner = None if source is None else owner_of(self, source)
        object.__setattr__(self, "_dtype_owner", owner)

    @staticmethod
    def _backbone_order(inputs: Mapping[str, Any]) -> list[str]:
        return [role for role in _BACKBONE_ORDER if inputs.get(role) is not None]

    def _param_dtype(self) -> torch.dtype | None:
        if self._dtype_owner is None:
            return None
        module, leaf = self._dtype_owner
        return getattr(module, leaf).dtype

    def _prepare(self, inputs: dict[str, Any], dtype: torch.dtype | None = None) -> dict[str, Any]:
        """Checks each input's type and rank, and applies the dtype rule.

        Numpy arrays become tensors. Floating-point inputs are cast to the network's dtype
        (float64 MuJoCo observations reach a float32 network as float32). Integer or bool
        inputs are passed on only to an encoder (e.g. an embedding of discrete states); an
        identity encoder would feed them to a Linear layer, so they raise ``TypeError``.
        ``dtype`` overrides the network's (a fused loss computes with the loss's parameters).
        """
        name = type(self).__name__
        dtype = dtype or self._param_dtype()
        prepared = {}
        for role, value in inputs.items():
            if value is None:
                prepared[role] = None
                continue
            if isinstance(value, np.ndarray):
                value = torch.as_tensor(value)
            if isinstance(value, torch.Tensor):
                if value.dim() == 0:
                    raise ValueError(
                        f"{name}: input {role!r} is a 0-d tensor; expected shape "
                        f"[*batch, features] (a single {role} is [1, features] or [features])"
                    )
                if value.is_floating_point():
                    if dtype is not None and value.dtype != dtype:
                        value = value.to(dtype)
                elif role in self._identity_roles:
                    raise TypeError(
                        f"{name}: input {role!r} has dtype {value.dtype}, but the network "
                        f"computes in {dtype}; cast it (e.g. .float()) or give the config a "
                        f"{role}_encoder that takes integers (e.g. DiscreteEmbeddingEncoder)"
                    )
            elif not isinstance(value, (TensorDictBase, Mapping)):
                raise TypeError(
                    f"{name}: input {role!r} must be a tensor, a numpy array or (for dict "
                    f"observations) a TensorDict, got {type(value).__name__}"
                )
            prepared[role] = value
        return prepared

    def _check_batch(self, order: Sequence[str], embeddings: Sequence[torch.Tensor]) -> None:
        """Raises ``ValueError`` unless every encoded input has the same batch dims.

        Inputs are never broadcast against each other: a ``[6, S]`` state with a ``[3, 2, A]``
        action is a caller's mistake, not a ``[6, 1]`` answer.
        """
        batches = [tuple(e.shape[:-1]) for e in embeddings]
        if any(b != batches[0] for b in batches[1:]):
            shapes = ", ".join(
                f"{role} {list(e.shape)}" for role, e in zip(order, embeddings, strict=True)
            )
            raise ValueError(
                f"{type(self).__name__}: inputs must share their batch dims (all but the last), "
                f"got (after encoding) {shapes}"
            )

    def _evaluate(self, inputs: dict[str, Any]) -> torch.Tensor:
        raise NotImplementedError

    def _backbone(self) -> nn.Module:
        """One head's backbone (its structure; an ensemble's holds the stacked parameters)."""
        raise NotImplementedError

    def _head_output_size(self) -> int | None:
        """Size of one head's output, or ``None`` when the backbone does not tell."""
        backbone = self._backbone()
        if isinstance(backbone, ConcatenateMLP):
            backbone = backbone.model
        size = getattr(backbone, "output_size", None)
        return size if isinstance(size, int) else None

    def _is_batch_td(self, td: TensorDictBase) -> bool:
        # q(td) is always the TorchRL style (upstream Q takes two inputs). v(td) is the TorchRL
        # style if td holds one of the in_keys or the state encoder cannot take a TensorDict;
        # otherwise it is an upstream dict observation.
        if self.is_q or "state" in self._identity_roles:
            return True
        keys = set(td.keys(include_nested=True))
        return any(key in keys for key in self.in_keys)

    def _inputs_from_td(self, td: TensorDictBase) -> dict[str, Any]:
        inputs = {}
        for key, role in zip(self.in_keys, self._roles, strict=True):
            value = td.get(key, None)
            if value is None:
                raise KeyError(
                    f"{type(self).__name__}: the input TensorDict has no key {key!r} "
                    f"(in_keys={self.in_keys})"
                )
            inputs[role] = value
        return inputs

    def _inputs_from_call(self, args: tuple, kwargs: dict) -> dict[str, Any]:
        upstream_names = ["action", "state", "condition"] if self.is_q else ["state", "condition"]
        if len(args) > len(upstream_names):
            raise TypeError(
                f"{type(self).__name__} takes at most {len(upstream_names)} positional inputs "
                f"({', '.join(upstream_names)}), got {len(args)}"
            )
        inputs = dict(zip(upstream_names, args, strict=False))
        key_roles = {
            k: r for k, r in zip(self.in_keys, self._roles, strict=True) if isinstance(k, str)
        }
        for name, value in kwargs.items():
            role = key_roles.get(name, name if name in upstream_names else None)
            if role is None:
                raise TypeError(
                    f"{type(self).__name__}: unexpected input {name!r}; accepted keywords are "
                    f"the in_keys {list(key_roles)} or the upstream names {upstream_names}"
                )
            if role in inputs:
                raise TypeError(f"{type(self).__name__}: input {role!r} given twice")
            inputs[role] = value
        required = ["state", "action"] if self.is_q else ["state"]
        for role in required:
            if inputs.get(role) is None:
                key = self.in_keys[self._roles.index(role)]
                raise TypeError(f"{type(self).__name__}: missing input {role!r} (in_key {key!r})")
        return inputs

    def forward(self, *args: Any, **kwargs: Any) -> TensorDictBase | torch.Tensor:
        if (
            len(args) == 1
            and not kwargs
            and isinstance(args[0], TensorDictBase)
            and self._is_batch_td(args[0])
        ):
            td = args[0]
            td.set(self.out_keys[0], self._evaluate(self._prepare(self._inputs_from_td(td))))
            return td
        return self._evaluate(self._prepare(self._inputs_from_call(args, kwargs)))
