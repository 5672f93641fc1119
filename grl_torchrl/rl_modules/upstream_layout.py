"""GenerativeRL's per-head checkpoint layout, read and written.

Upstream keeps each head of a double network as its own module (``model.q1.model...``,
``model.q2.model...``; ``model.v1...`` for V); our ensembles keep them stacked
(``stacked...`` with a leading head dim). Loading accepts either layout (not both at once);
:func:`to_upstream_state_dict` writes upstream's.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["load_upstream_layout", "to_upstream_state_dict"]


def _is_ensemble(module: nn.Module) -> bool:
    # duck-typed to avoid an import cycle with value_networks
    return hasattr(module, "_upstream_tag") and isinstance(
        getattr(module, "stacked", None), nn.Module
    )


def _some(keys: list[str], shown: int = 3) -> str:
    more = f", ... {len(keys) - shown} more" if len(keys) > shown else ""
    return ", ".join(map(repr, keys[:shown])) + more


def load_upstream_layout(module: nn.Module, state_dict: dict, prefix: str, *_: Any) -> None:
    """``load_state_dict`` pre-hook: rewrites upstream ``model.q1.model.X`` ... into ``stacked.X``."""
    head_prefix = f"{prefix}model.{module._upstream_tag}"
    if not any(k.startswith(f"{head_prefix}1.") for k in state_dict):
        return
    name = type(module).__name__
    stacked = sorted(k for k in state_dict if k.startswith(f"{prefix}stacked."))
    if stacked:
        upstream = sorted(k for k in state_dict if k.startswith(f"{head_prefix}"))
        raise ValueError(
            f"{name}: the state dict holds both layouts, stacked ({_some(stacked)}) and "
            f"upstream's per-head ({_some(upstream)}); loading it would drop one of them: "
            f"keep one layout"
        )
    for pname, mine in module.stacked.state_dict().items():
        keys = [f"{head_prefix}{i + 1}.model.{pname}" for i in range(module.num_heads)]
        missing = [k for k in keys if k not in state_dict]
        if missing:
            raise KeyError(f"{name}: the upstream state dict lacks {missing}")
        for key in keys:
            if tuple(state_dict[key].shape) != tuple(mine.shape[1:]):
                raise ValueError(
                    f"{name}: upstream state dict entry {key!r} has shape "
                    f"{list(state_dict[key].shape)}, expected {list(mine.shape[1:])}"
                )
        state_dict[f"{prefix}stacked.{pname}"] = torch.stack([state_dict.pop(k) for k in keys])


def to_upstream_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """``module.state_dict()`` with every ensemble in GenerativeRL's per-head layout.

    Works on one network (``DoubleQNetwork``, ``EnsembleQNetwork``, ``DoubleVNetwork``,
    ``OneShotValueFunction``, ...) or on any module holding them (an algorithm's critic),
    so upstream's classes load the result with ``strict=True``. Each head's tensors are
    copies (the stacked tensors are not kept alive).

    Examples:
        >>> from grl_torchrl import DoubleQNetwork, to_upstream_state_dict
        >>> cfg = {"backbone": {"type": "ConcatenateMLP", "args": {
        ...     "hidden_sizes": [5, 16], "output_size": 1, "activation": "relu"}}}
        >>> dq = DoubleQNetwork(cfg)
        >>> sd = to_upstream_state_dict(dq)
        >>> sorted(sd)[0]
        'model.q1.model.backbone.model.model.linear0.bias'
        >>> DoubleQNetwork(cfg).load_state_dict(sd)  # and back
        <All keys matched successfully>
    """
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"to_upstream_state_dict: module must be an nn.Module (a network such as "
            f"DoubleQNetwork, or a module holding them), got {type(module).__name__}; pass "
            f"the network itself, not its state_dict()"
        )
    state = module.state_dict()
    for path, sub in module.named_modules():
        if not _is_ensemble(sub):
            continue
        prefix = f"{path}." if path else ""
        for pname in sub.stacked.state_dict():
            stacked = state.pop(f"{prefix}stacked.{pname}")
            for i in range(sub.num_heads):
                key = f"{prefix}model.{sub._upstream_tag}{i + 1}.model.{pname}"
                state[key] = stacked[i].clone()
    return state
