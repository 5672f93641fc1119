"""Argument checks of the simulator, run before any env is built, reset or stepped.

Each check raises ``TypeError`` (wrong kind of value) or ``ValueError`` (right kind, bad
value) naming the argument, what was given and what is expected.
"""

from __future__ import annotations

import numbers
from typing import Any

import gymnasium
import torch
from gymnasium import spaces

# torch generators and TorchRL's env seeding take seeds below 2**64, and sub-env ``i`` of
# an evaluation env is seeded ``seed + EVAL_SEED_OFFSET + i``: 2**63 leaves ample room.
SEED_LIMIT = 2**63


def check_count(name: str, value: Any, *, optional: bool = True) -> int | None:
    """A positive integer (numpy integers too), or ``None`` when ``optional``."""
    if value is None and optional:
        return None
    expected = "a positive integer" + (" or None" if optional else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be {expected}, got {value!r} ({type(value).__name__}).")
    if value <= 0:
        raise ValueError(f"{name} must be {expected}, got {value!r}.")
    return int(value)


def check_flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__}).")
    return value


def check_seed(seed: Any) -> int | None:
    """``None`` or an integer in ``[0, 2**63)`` (numpy integers too)."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(
            f"seed must be an int in [0, 2**63) or None, got {seed!r} ({type(seed).__name__})."
        )
    if not 0 <= seed < SEED_LIMIT:
        raise ValueError(f"seed must be an int in [0, 2**63) or None, got {seed!r}.")
    return int(seed)


def check_device(device: Any) -> torch.device:
    """A device torch can parse and allocate on (so e.g. ``"cuda"`` fails here without a GPU)."""
    if not isinstance(device, (str, torch.device)):
        raise TypeError(
            f"device must be a str or torch.device (e.g. 'cpu', 'cuda:0'), "
            f"got {device!r} ({type(device).__name__})."
        )
    try:
        device = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"device {device!r} is not a valid torch device: {err}") from None
    if device.type != "cpu":
        try:
            torch.empty(0, device=device)
        except Exception as err:  # torch raises RuntimeError, NotImplementedError, ...
            reason = (str(err).splitlines() or [type(err).__name__])[0]
            reason = reason if len(reason) <= 160 else reason[:157] + "..."
            raise ValueError(f"device {str(device)!r} is not available here: {reason}") from None
    return device


def check_env_id(env_id: Any) -> str:
    if not isinstance(env_id, str):
        raise TypeError(
            f"env_id must be a gymnasium id string, got {env_id!r} ({type(env_id).__name__})."
        )
    try:
        gymnasium.spec(env_id)
    except gymnasium.error.Error as err:
        raise ValueError(f"Unknown gymnasium environment id env_id={env_id!r}: {err}") from err
    return env_id


# What TorchRL's GymWrapper turns into specs the simulator can step and validate.
_ACTION_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)
_OBSERVATION_SPACES = (*_ACTION_SPACES, spaces.Dict)


def _unsupported(space: spaces.Space, allowed: tuple) -> spaces.Space | None:
    """The first sub-space (``space`` itself included) that the simulator cannot handle."""
    if not isinstance(space, allowed):
        return space
    if isinstance(space, spaces.Discrete) and space.start != 0:
        return space  # TorchRL's Categorical spec drops ``start``: actions would be shifted
    if isinstance(space, spaces.MultiDiscrete) and (space.start != 0).any():
        return space
    if isinstance(space, spaces.Dict):
        for sub in space.spaces.values():
            bad = _unsupported(sub, allowed)
            if bad is not None:
                return bad
    return None


def check_spaces(env_id: str, action_space: spaces.Space, observation_space: spaces.Space) -> None:
    """``ValueError`` naming the space when the simulator cannot step an env with them."""
    checks = (
        ("action", action_space, _ACTION_SPACES, "Box, Discrete, MultiDiscrete, MultiBinary"),
        (
            "observation",
            observation_space,
            _OBSERVATION_SPACES,
            "Box, Discrete, MultiDiscrete, MultiBinary, or a Dict of these",
        ),
    )
    for kind, space, allowed, names in checks:
        bad = _unsupported(space, allowed)
        if bad is not None:
            detail = "" if bad is space else f" (its entry {bad})"
            raise ValueError(
                f"{env_id!r} has the {kind} space {space}{detail}, which GymEnvSimulator does "
                f"not support: {kind} spaces must be {names} (Discrete and MultiDiscrete "
                "starting at 0)."
            )
