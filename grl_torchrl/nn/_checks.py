"""Config-value checks shared by the building blocks: validate, never coerce.

Every check raises ``TypeError`` for a value of the wrong type and ``ValueError`` for one of
the right type but out of range, and the message starts with ``"<Owner>: <key>"``, so a bad
config entry is named before any layer is built (``int(3.7)`` would silently build a 3-wide
layer; ``True`` would silently count as 1).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "check_bool",
    "check_int",
    "check_int_sequence",
    "check_real",
    "describe",
]


def describe(value: Any) -> str:
    """``repr`` of ``value`` with its type, for error messages."""
    return f"{value!r} ({type(value).__name__})"


def _is_int(value: Any) -> bool:
    # numbers.Integral includes numpy integers but (rightly) not bool / numpy.bool_ ...
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(owner: str, key: str, value: Any, *, minimum: int = 1, even: bool = False) -> int:
    """Returns ``value`` as an ``int`` if it is an int (not a bool) ``>= minimum``."""
    what = "a positive int" if minimum == 1 else f"an int >= {minimum}"
    if even:
        what = f"an even int >= {minimum}"
    if not _is_int(value):
        raise TypeError(f"{owner}: {key} must be {what}, got {describe(value)}")
    if value < minimum or (even and value % 2):
        raise ValueError(f"{owner}: {key} must be {what}, got {value!r}")
    return int(value)


def check_real(
    owner: str,
    key: str,
    value: Any,
    *,
    positive: bool = False,
    nonzero: bool = False,
    below_one: bool = False,
) -> float:
    """Returns ``value`` as a ``float`` if it is a finite real number (not a bool) in range.

    ``positive``: ``> 0``; ``nonzero``: ``!= 0``; ``below_one``: in ``[0, 1)``.
    """
    if positive:
        what = "a finite number > 0"
    elif below_one:
        what = "a number in [0, 1)"
    elif nonzero:
        what = "a finite non-zero number"
    else:
        what = "a finite number"
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{owner}: {key} must be {what}, got {describe(value)}")
    value = float(value)
    bad = (
        not math.isfinite(value)
        or (positive and value <= 0)
        or (nonzero and value == 0)
        or (below_one and not 0 <= value < 1)
    )
    if bad:
        raise ValueError(f"{owner}: {key} must be {what}, got {value!r}")
    return value


def check_bool(owner: str, key: str, value: Any) -> bool:
    """Returns ``value`` if it is a bool (or ``numpy.bool_``); ``0``/``1``/``"yes"`` are rejected."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: {key} must be True or False, got {describe(value)}")
    return bool(value)


def is_sequence(value: Any) -> bool:
    """A list-like value: a ``Sequence`` that is not a string, bytes or mapping."""
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes, Mapping))


def check_int_sequence(
    owner: str, key: str, value: Any, *, min_len: int = 1, minimum: int = 1
) -> list[int]:
    """Returns ``value`` as a list of ints if it is a list/tuple of ``>= min_len`` ints."""
    if not is_sequence(value):
        raise TypeError(
            f"{owner}: {key} must be a list of ints, got {describe(value)}"
            + (" (write the sizes as a list, e.g. [3, 16])" if isinstance(value, str) else "")
        )
    if len(value) < min_len:
        raise ValueError(f"{owner}: {key} must hold at least {min_len} int(s), got {value!r}")
    return [check_int(owner, f"{key}[{i}]", v, minimum=minimum) for i, v in enumerate(value)]
