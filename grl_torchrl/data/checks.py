"""Checks that catch silent garbage in an offline dataset before anything trains on it."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict import TensorDictBase

__all__ = ["check_offline_data", "cast_float64"]

# What a TD-learning loop reads; a dataset in which one of them is all zeros was not read.
_NONZERO_KEYS = ("observation", "action", ("next", "reward"))


def check_offline_data(
    data: TensorDictBase,
    name: str,
    *,
    observation_shape: Sequence[int] | None = None,
    action_shape: Sequence[int] | None = None,
) -> None:
    """Raises ``ValueError`` naming ``name`` and the key when the data cannot be right.

    Every value of ``"observation"``, ``"action"`` or ``("next", "reward")`` zero (e.g. a
    loader that returned an empty copy), or an observation / action whose per-step shape
    differs from the dataset's spaces (``observation_shape``, ``action_shape``).

    >>> from tensordict import TensorDict
    >>> td = TensorDict({"observation": torch.ones(4, 3), "action": torch.zeros(4, 1),
    ...                  ("next", "reward"): torch.ones(4, 1)}, [4])
    >>> check_offline_data(td, "demo")
    Traceback (most recent call last):
    ...
    ValueError: dataset 'demo': every value of 'action' is zero (4 steps); the data were not read
    """
    if data.numel() == 0:
        raise ValueError(f"dataset {name!r} holds no transitions")
    for key in _NONZERO_KEYS:
        if key not in data.keys(include_nested=True):
            raise ValueError(f"dataset {name!r} has no {key!r} entry (keys: {list(data.keys())})")
        if not bool(data.get(key).any()):
            shown = key if isinstance(key, str) else tuple(key)
            raise ValueError(
                f"dataset {name!r}: every value of {shown!r} is zero ({data.numel()} steps); "
                "the data were not read"
            )
    for key, expected in (("observation", observation_shape), ("action", action_shape)):
        if expected is None:
            continue
        shape = tuple(data.get(key).shape[data.batch_dims :])
        if shape != tuple(expected):
            raise ValueError(
                f"dataset {name!r}: {key!r} has per-step shape {shape} but the dataset's "
                f"{key} space has shape {tuple(expected)}"
            )


def cast_float64(data: TensorDictBase, keep_float64: bool) -> TensorDictBase:
    """float64 entries as float32 (torch networks' dtype) unless ``keep_float64``.

    >>> from tensordict import TensorDict
    >>> td = TensorDict({"x": torch.zeros(2, dtype=torch.float64), "i": torch.zeros(2, dtype=torch.long)}, [2])
    >>> cast_float64(td, False)["x"].dtype, cast_float64(td, False)["i"].dtype
    (torch.float32, torch.int64)
    """
    if keep_float64:
        return data
    return data.apply(lambda x: x.to(torch.float32) if x.dtype == torch.float64 else x)
