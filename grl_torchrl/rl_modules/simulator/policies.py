"""Policy adapters used by :class:`~grl_torchrl.rl_modules.GymEnvSimulator`.

Every accepted policy style is turned into one TensorDict module that reads the
observation of a (possibly batched) TorchRL env and writes a validated ``"action"``
(:class:`_ActionRule`: shape, dtype, range for discrete spaces, finite values and
clipping to the bounds for continuous ones).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torchrl.data import Binary, Bounded, Categorical, MultiCategorical, TensorSpec

__all__ = ["NumpyPolicyWrapper"]


class NumpyPolicyWrapper:
    """Wraps an upstream-style policy (one numpy observation in, one numpy action out).

    GenerativeRL's simulator called ``action = policy(obs)`` on a single numpy
    observation. :class:`~grl_torchrl.rl_modules.GymEnvSimulator` hands policies a
    batched observation tensor ``[num_envs, *obs_shape]``; this wrapper calls ``fn``
    once per row and stacks the results into ``[num_envs, *act_shape]``. With a ``Dict``
    observation space each row is a dict of numpy arrays, as gymnasium returns it.

    Args:
        fn (Callable[[np.ndarray], Any]): the per-observation policy; it returns
            anything ``np.asarray`` turns into a numeric array (a list, a scalar, ...).

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

    def __call__(self, observation: torch.Tensor | TensorDictBase) -> torch.Tensor:
        if isinstance(observation, TensorDictBase):
            rows = [row.numpy() for row in observation.detach().cpu().unbind(0)]
        else:
            rows = observation.detach().cpu().numpy()
        actions = []
        for row in rows:
            out = self.fn(row)
            action = _numeric_array(out)
            if action is None:
                raise TypeError(
                    f"NumpyPolicyWrapper: fn returned {_short(out)}; it must return one "
                    "numeric action (a numpy array, a number or a list of numbers)."
                )
            actions.append(action)
        return torch.as_tensor(np.stack(actions))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.fn!r})"


def _numeric_array(value: Any) -> np.ndarray | None:
    """``np.asarray(value)`` when that is a boolean, integer or float array, else ``None``."""
    if value is None or isinstance(value, (str, bytes)):
        return None
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):  # ragged nested lists, objects numpy cannot convert
        return None
    return array if array.dtype.kind in "biuf" else None


def _short(value: Any) -> str:
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{type(value).__name__} {text}"


def _make_sampler(spec: TensorSpec) -> Callable[[], torch.Tensor]:
    """Returns a sampler drawing uniformly from ``spec`` (an env's leaf action spec).

    ``Bounded.rand`` and ``Categorical.rand`` run clamping and shape checks that cost
    tens of microseconds per step; these closures draw from the same distributions
    with one torch call. Other specs (MultiDiscrete, MultiBinary, masks) fall back to
    ``spec.rand``.
    """
    shape = spec.shape
    if isinstance(spec, Bounded) and spec.dtype.is_floating_point:
        low, high = spec.space.low, spec.space.high
        if torch.isfinite(low).all() and torch.isfinite(high).all():
            scale = high - low
            return lambda: torch.rand(shape, dtype=spec.dtype, device=low.device) * scale + low
    if type(spec) is Categorical and spec.mask is None:
        n = spec.space.n
        return lambda: torch.randint(n, shape, dtype=spec.dtype, device=spec.device)
    return spec.rand


def _values(action: torch.Tensor, bad: torch.Tensor) -> str:
    values = action[bad].flatten()
    shown = values[:8].tolist()
    return f"{shown}{' ...' if values.numel() > 8 else ''}"


class _ActionRule:
    """Checks a policy's action against the env's action spec; returns the action to step.

    - shape: ``spec.shape`` (batched ``[num_envs, *action_shape]``); an unbatched env
      (``num_envs=1``) also takes ``[1, *action_shape]``;
    - discrete spaces (integer specs: Discrete, MultiDiscrete, MultiBinary): an integer
      dtype (``bool`` too for MultiBinary) and every value inside the space, else an error
      (gymnasium would assert, truncate or wrap it);
    - continuous spaces: a floating or integer dtype, every value finite, then clipped to
      the space's bounds, so the stored action is the one the env applies (Pendulum,
      MountainCarContinuous and MuJoCo's ``ctrlrange`` clip the same way);
    - then cast to the spec's dtype.
    """

    def __init__(self, spec: TensorSpec, unbatched: bool, space: str) -> None:
        self.shape = torch.Size(spec.shape)
        self.shape_1 = torch.Size([1, *spec.shape]) if unbatched else None
        self.dtype = spec.dtype
        self.space = space
        self.discrete = not spec.dtype.is_floating_point
        self.allow_bool = isinstance(spec, Binary) or spec.dtype == torch.bool
        self.n = spec.space.n if type(spec) is Categorical else None
        self.low = self.high = None
        if isinstance(spec, Binary):
            self.low, self.high = 0, 1
        elif isinstance(spec, MultiCategorical):
            nvec = torch.as_tensor(spec.nvec)
            self.low, self.high = torch.zeros_like(nvec), nvec - 1
        elif self.n is not None:
            self.low, self.high = 0, self.n - 1
        elif isinstance(spec, Bounded):
            self.low, self.high = spec.space.low, spec.space.high
        if self.discrete and isinstance(self.low, torch.Tensor):
            self.low, self.high = self.low.long(), self.high.long()
        # uniform float bounds (Pendulum, MuJoCo): in-bounds actions skip the clamp
        self.uniform = None
        if not self.discrete and self.low is not None:
            low, high = self.low.unique(), self.high.unique()
            if low.numel() == 1 and high.numel() == 1:
                self.uniform = (float(low), float(high))

    def expected(self) -> str:
        shapes = f"{tuple(self.shape)}" + (
            f" or {tuple(self.shape_1)}" if self.shape_1 is not None else ""
        )
        kind = "integer" if self.discrete else "float"
        return f"a {kind} tensor of shape {shapes}"

    def __call__(self, action: Any) -> torch.Tensor:
        if not isinstance(action, torch.Tensor):
            raise TypeError(
                f"The policy's action is {_short(action)}; expected {self.expected()} for "
                f"the action space {self.space}."
            )
        if action.shape != self.shape:
            if action.shape != self.shape_1:
                raise ValueError(
                    f"The policy returned an action of shape {tuple(action.shape)}; expected "
                    f"shape {tuple(self.shape)} (batched: [num_envs, *action_shape]; a "
                    "discrete space takes one integer per env"
                    + (f"; with num_envs=1 also {tuple(self.shape_1)}" if self.shape_1 else "")
                    + f") for the action space {self.space}."
                )
            action = action.squeeze(0)
        dtype = action.dtype
        if self.discrete:
            if (
                dtype.is_floating_point
                or dtype.is_complex
                or (dtype == torch.bool and not self.allow_bool)
            ):
                raise TypeError(
                    f"The policy returned a {dtype} action, but the action space {self.space} "
                    "is discrete: return integer actions (e.g. logits.argmax(-1)), "
                    f"got {action.flatten()[:8].tolist()}."
                )
            self._check_range(action)
            return action if dtype == self.dtype else action.to(self.dtype)
        if dtype.is_complex or dtype == torch.bool:
            raise TypeError(
                f"The policy returned a {dtype} action; the action space {self.space} "
                "takes float actions."
            )
        if dtype != self.dtype:
            action = action.to(self.dtype)
        if self.uniform is not None and action.numel():
            # the common case in one reduction and no copy: every value inside the bounds
            # (NaN fails the comparisons, inf is outside them)
            low, high = self.uniform
            if action.numel() == 1:
                inside = low <= action.item() <= high
            else:
                lowest, highest = torch.aminmax(action)
                inside = lowest.item() >= low and highest.item() <= high
            if inside:
                return action
        finite = torch.isfinite(action)
        if not finite.all():
            raise ValueError(
                f"The policy returned non-finite action values {_values(action, ~finite)} "
                f"for the action space {self.space}."
            )
        return action if self.low is None else torch.clamp(action, self.low, self.high)

    def _check_range(self, action: torch.Tensor) -> None:
        if self.low is None or action.dtype == torch.bool:
            return
        if self.n is not None and action.ndim == 0:  # one Discrete action: no tensor op
            if 0 <= int(action) < self.n:
                return
        elif not isinstance(self.low, torch.Tensor):
            low, high = torch.aminmax(action)
            if low.item() >= self.low and high.item() <= self.high:
                return
        elif not ((action < self.low) | (action > self.high)).any():
            return
        bad = (action < self.low) | (action > self.high)
        bounds = (
            f"[{self.low}, {self.high}]"
            if not isinstance(self.low, torch.Tensor)
            else f"[{self.low.tolist()}, {self.high.tolist()}] (per entry)"
        )
        raise ValueError(
            f"The policy returned action values {_values(action, bad)} outside the action "
            f"space {self.space}: expected integers in {bounds}."
        )


def check_policy(policy: Any, random_policy: bool) -> None:
    """``TypeError`` unless ``policy`` is one of the accepted styles (or ``random_policy``)."""
    if random_policy or isinstance(policy, TensorDictModuleBase) or callable(policy):
        return
    raise TypeError(
        "policy must be a TensorDict module reading 'observation' and writing "
        "'action', or a callable from a batched observation tensor to actions "
        f"(got {_short(policy)}); or pass random_policy=True."
    )


def check_policy_in_keys(policy: TensorDictModuleBase, env_keys: set, obs_keys: Sequence) -> None:
    """``ValueError`` when a TensorDict ``policy`` reads entries that the env does not provide.

    ``env_keys``: every entry of the env's step data; ``obs_keys``: its observation keys
    (named in the message).
    """
    missing = [key for key in policy.in_keys if key not in env_keys]
    if missing:
        raise ValueError(
            f"policy reads {missing}, which the env does not provide; its "
            f"in_keys are {list(policy.in_keys)}, the env's observation keys "
            f"{list(obs_keys)}."
        )


class _PolicySlot(TensorDictModuleBase):
    """The single policy a long-lived collector holds; the simulator swaps what it runs.

    A ``Collector`` fixes its policy at construction. Swapping the callable in this
    slot per call lets one collector (and its carried env state) serve every
    ``collect_steps`` call, whatever policy is passed. Only ``"action"`` is written
    back, so the collected keys stay the same across policies (a replay buffer
    refuses batches whose keys change).

    A callable policy gets the ``obs_keys[0]`` tensor, or (``dict_obs``: a gymnasium
    ``Dict`` observation space) a TensorDict of all ``obs_keys``, batched
    ``[num_envs, ...]`` even for an unbatched env.
    """

    def __init__(
        self,
        action_spec: TensorSpec,
        obs_keys: Sequence,
        unbatched: bool,
        *,
        dict_obs: bool = False,
        env_keys: Sequence = (),
        space: str | None = None,
    ) -> None:
        super().__init__()
        obs_keys = [obs_keys] if isinstance(obs_keys, str) else list(obs_keys)
        self.in_keys = obs_keys
        self.out_keys = ["action"]
        self._obs_keys = obs_keys
        self._dict_obs = dict_obs
        self._env_keys = set(env_keys)
        self._unbatched = unbatched
        self._rule = _ActionRule(action_spec, unbatched, space or str(action_spec))
        self._sampler = _make_sampler(action_spec)
        self._validate = True
        # until a policy is set: zero actions (the collector probes its policy once when
        # it lays out its buffers)
        zero = action_spec.zero()
        self._fn: Callable[[TensorDictBase], torch.Tensor] = lambda tensordict: zero.clone()

    def make_runner(self, policy: Any, random_policy: bool = False) -> tuple[Callable, bool]:
        """Checks ``policy`` (before any work) and returns what :meth:`set_policy` installs."""
        if random_policy:
            return self._random, False
        if isinstance(policy, TensorDictModuleBase):
            if self._env_keys:
                check_policy_in_keys(policy, self._env_keys, self._obs_keys)
            return self._tensordict_policy(policy), True
        check_policy(policy, random_policy)
        return self._callable_policy(policy), True

    def set_policy(self, policy: Any, random_policy: bool = False) -> None:
        self._fn, self._validate = self.make_runner(policy, random_policy)

    def _random(self, tensordict: TensorDictBase) -> torch.Tensor:
        return self._sampler()

    def _tensordict_policy(self, policy: TensorDictModuleBase):
        def run(tensordict: TensorDictBase) -> torch.Tensor:
            # without the previous step's action, so a policy that writes none is caught
            # instead of silently repeating it
            inputs = tensordict.exclude("action")
            out = policy(inputs)
            action = (out if out is not None else inputs).get("action", None)
            if action is None:
                raise KeyError(
                    f"The policy ({type(policy).__name__}) did not write an 'action' entry; "
                    f"its out_keys are {list(getattr(policy, 'out_keys', []))}."
                )
            return action

        return run

    def _callable_policy(self, policy: Callable):
        key = self._obs_keys[0]

        def run(tensordict: TensorDictBase) -> torch.Tensor:
            if self._dict_obs:
                obs = tensordict.select(*self._obs_keys)
            else:
                obs = tensordict.get(key)
            if self._unbatched:
                obs = obs.unsqueeze(0)
            action = policy(obs)
            if isinstance(action, torch.Tensor):
                return action
            # Upstream's simulator handed whatever the policy returned to ``env.step``, which
            # takes anything ``np.asarray`` makes numeric: numpy arrays, numbers, lists.
            array = _numeric_array(action)
            if array is None:
                raise TypeError(
                    f"The policy returned {_short(action)}; a callable policy must return "
                    "its action as a torch.Tensor, a numpy array, a number or a (nested) list "
                    f"of numbers: {self._rule.expected()} for the action space "
                    f"{self._rule.space}."
                )
            return torch.as_tensor(array)

        return run

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = self._fn(tensordict)
        if self._validate:
            action = self._rule(action)
        tensordict.set("action", action)
        return tensordict
