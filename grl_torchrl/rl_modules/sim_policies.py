"""Policy adapters used by :class:`~grl_torchrl.rl_modules.GymEnvSimulator`.

Every accepted policy style is turned into one TensorDict module that reads the
observation of a (possibly batched) TorchRL env and writes a validated ``"action"``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torchrl.data import Bounded, Categorical, TensorSpec

__all__ = ["NumpyPolicyWrapper"]


class NumpyPolicyWrapper:
    """Wraps an upstream-style policy (one numpy observation in, one numpy action out).

    GenerativeRL's simulator called ``action = policy(obs)`` on a single numpy
    observation. :class:`~grl_torchrl.rl_modules.GymEnvSimulator` hands policies a
    batched observation tensor ``[num_envs, *obs_shape]``; this wrapper calls ``fn``
    once per row and stacks the results into ``[num_envs, *act_shape]``.

    Args:
        fn (Callable[[np.ndarray], Any]): the per-observation policy.

    Examples:
        >>> import numpy as np, torch
        >>> policy = NumpyPolicyWrapper(lambda obs: np.array([obs.sum()], dtype=np.float32))
        >>> policy(torch.ones(2, 3))
        tensor([[3.],
                [3.]])
    """

    def __init__(self, fn: Callable[[np.ndarray], Any]) -> None:
        if not callable(fn):
            raise TypeError(f"NumpyPolicyWrapper expects a callable, got {type(fn).__name__}.")
        self.fn = fn

    def __call__(self, observation: torch.Tensor) -> torch.Tensor:
        rows = observation.detach().cpu().numpy()
        return torch.as_tensor(np.stack([np.asarray(self.fn(row)) for row in rows]))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.fn!r})"


def _make_sampler(spec: TensorSpec) -> Callable[[], torch.Tensor]:
    """Returns a sampler drawing uniformly from ``spec`` (an env's leaf action spec).

    ``Bounded.rand`` and ``Categorical.rand`` run clamping and shape checks that cost
    tens of microseconds per step; these closures draw from the same distributions
    with one torch call. Other specs fall back to ``spec.rand``.
    """
    shape = spec.shape
    if isinstance(spec, Bounded) and spec.dtype.is_floating_point:
        low, high = spec.space.low, spec.space.high
        if torch.isfinite(low).all() and torch.isfinite(high).all():
            scale = high - low
            return lambda: torch.rand(shape, dtype=spec.dtype, device=low.device) * scale + low
    if isinstance(spec, Categorical) and spec.mask is None:
        n = spec.space.n
        return lambda: torch.randint(n, shape, dtype=spec.dtype, device=spec.device)
    return spec.rand


def _shape_error(got, expected) -> str:
    return (
        f"The policy returned an action of shape {tuple(got)}; expected shape "
        f"{tuple(expected)} (batched: [num_envs, *action_shape]; a discrete space takes "
        "one integer per env)."
    )


class _PolicySlot(TensorDictModuleBase):
    """The single policy a long-lived collector holds; the simulator swaps what it runs.

    A ``Collector`` fixes its policy at construction. Swapping the callable in this
    slot per call lets one collector (and its carried env state) serve every
    ``collect_steps`` call, whatever policy is passed. Only ``"action"`` is written
    back, so the collected keys stay the same across policies (a replay buffer
    refuses batches whose keys change).
    """

    def __init__(self, action_spec: TensorSpec, obs_key: str, unbatched: bool) -> None:
        super().__init__()
        self.in_keys = [obs_key]
        self.out_keys = ["action"]
        self._obs_key = obs_key
        self._shape = tuple(action_spec.shape)
        self._dtype = action_spec.dtype
        self._unbatched = unbatched
        self._sampler = _make_sampler(action_spec)
        # until a policy is set: zero actions (the collector probes its policy once when
        # it lays out its buffers)
        zero = action_spec.zero()
        self._fn: Callable[[TensorDictBase], torch.Tensor] = lambda tensordict: zero.clone()

    def set_policy(self, policy: Any, random_policy: bool = False) -> None:
        if random_policy:
            self._fn = self._random
        elif isinstance(policy, TensorDictModuleBase):
            self._fn = self._tensordict_policy(policy)
        elif callable(policy):
            self._fn = self._callable_policy(policy)
        else:
            raise TypeError(
                "policy must be a TensorDict module reading 'observation' and writing "
                "'action', or a callable from a batched observation tensor to actions "
                f"(got {type(policy).__name__}); or pass random_policy=True."
            )

    def _random(self, tensordict: TensorDictBase) -> torch.Tensor:
        return self._sampler()

    def _tensordict_policy(self, policy: TensorDictModuleBase):
        def run(tensordict: TensorDictBase) -> torch.Tensor:
            out = policy(tensordict.copy())
            action = (out if out is not None else tensordict).get("action", None)
            if action is None:
                raise KeyError("The policy did not write an 'action' entry.")
            return action

        return run

    def _callable_policy(self, policy: Callable):
        def run(tensordict: TensorDictBase) -> torch.Tensor:
            obs = tensordict.get(self._obs_key)
            if self._unbatched:
                obs = obs.unsqueeze(0)
            action = torch.as_tensor(policy(obs))
            if self._unbatched:
                if tuple(action.shape) != (1, *self._shape):
                    raise ValueError(_shape_error(action.shape, (1, *self._shape)))
                action = action.squeeze(0)
            return action

        return run

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = self._fn(tensordict)
        if tuple(action.shape) != self._shape:
            raise ValueError(_shape_error(action.shape, self._shape))
        if action.dtype != self._dtype:
            action = action.to(self._dtype)
        tensordict.set("action", action)
        return tensordict
