"""One TorchRL env plus one long-lived ``Collector``: the engine behind ``GymEnvSimulator``."""

from __future__ import annotations

import contextlib
import numbers
import os
import warnings
from functools import partial
from typing import Any

import gymnasium
import torch
from tensordict import TensorDictBase
from torchrl.collectors import Collector
from torchrl.envs import EnvBase
from torchrl.envs.utils import ExplorationType

from grl_torchrl.rl_modules.simulator.checks import (
    check_count,
    check_device,
    check_env_id,
    check_flag,
    check_spaces,
)
from grl_torchrl.rl_modules.simulator.env import _GymWrapper
from grl_torchrl.rl_modules.simulator.policies import _PolicySlot

# Steps per env of each collector call while gathering whole episodes: the steps
# stepped after the last needed episode ends (at most this many) are thrown away.
_EPISODE_CHUNK = 32


def make_gym_env(
    env_id: str,
    num_envs: int,
    *,
    device: str | torch.device,
    max_episode_steps: int | None,
    make_kwargs: dict[str, Any],
    render: bool = False,
    double_to_float: bool = True,
) -> tuple[EnvBase, Any]:
    """Builds the TorchRL env: a ``GymWrapper`` around one gymnasium env or one sync vector env.

    Several envs run as ONE gymnasium ``SyncVectorEnv`` wrapped once, so TorchRL's
    per-step cost is paid once per batched step. Its autoreset mode is ``DISABLED``:
    TorchRL then resets finished sub-envs itself (``reset_mask``), which skips the
    per-step terminal-observation info reader and ``VecGymEnvTransform`` that the
    ``SAME_STEP`` mode needs (measured 1.3x-3x faster on CartPole, whose episodes end
    often).

    Every argument is checked before an env is made (``TypeError`` / ``ValueError``
    naming it), and so are the env's spaces (``ValueError`` naming an unsupported one,
    e.g. ``Tuple``). With ``double_to_float`` (the default) float64 observations
    (MuJoCo's) come out as float32, which is what torch networks take; ``False`` keeps
    them float64. ``render=True`` makes the envs with ``render_mode="rgb_array"`` and,
    without a display, defaults ``SDL_VIDEODRIVER=dummy``, ``SDL_NO_SIGNAL_HANDLERS=1``
    (else pygame's SDL swallows SIGINT/SIGTERM) and ``MUJOCO_GL=egl``.

    Returns:
        ``(torchrl_env, gymnasium_env)``.

    Examples:
        >>> env, gym_env = make_gym_env(
        ...     "Pendulum-v1", 2, device="cpu", max_episode_steps=None, make_kwargs={}
        ... )
        >>> env.batch_size, env.observation_spec["observation"].dtype
        (torch.Size([2]), torch.float32)
        >>> env.close()
    """
    env_id = check_env_id(env_id)
    if isinstance(num_envs, bool) or not isinstance(num_envs, numbers.Integral) or num_envs < 1:
        raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}.")
    num_envs = int(num_envs)
    device = check_device(device)
    max_episode_steps = check_count("max_episode_steps", max_episode_steps)
    if not isinstance(make_kwargs, dict):
        raise TypeError(f"make_kwargs must be a dict, got {type(make_kwargs).__name__}.")
    check_flag("render", render)
    check_flag("double_to_float", double_to_float)
    make_kwargs = dict(make_kwargs)
    if render:
        make_kwargs["render_mode"] = "rgb_array"
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            # off-screen frames need no window; headless SDL (pygame) otherwise prints
            # display errors, and MuJoCo finds no GL context without a display (its
            # default, GLFW, needs one; EGL renders off-screen, measured on these machines)
            os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
            os.environ.setdefault("MUJOCO_GL", "egl")
        # SDL (pygame) otherwise installs SIGINT/SIGTERM handlers that turn the signals
        # into window events nobody reads: the process would ignore SIGTERM until close()
        os.environ.setdefault("SDL_NO_SIGNAL_HANDLERS", "1")

    def make_one():
        env = gymnasium.make(env_id, max_episode_steps=max_episode_steps, **make_kwargs)
        if render:
            # collects the reset frame and one frame per step, across auto-resets
            env = gymnasium.wrappers.RenderCollection(env, pop_frames=True, reset_clean=False)
        return env

    if num_envs == 1:
        gym_env = make_one()
    else:
        gym_env = gymnasium.vector.SyncVectorEnv(
            [partial(make_one) for _ in range(num_envs)],
            autoreset_mode=gymnasium.vector.AutoresetMode.DISABLED,
        )
    try:  # before TorchRL's GymWrapper, which fails on e.g. Tuple spaces with internal errors
        check_spaces(
            env_id,
            getattr(gym_env, "single_action_space", gym_env.action_space),
            getattr(gym_env, "single_observation_space", gym_env.observation_space),
        )
    except ValueError:
        gym_env.close()
        raise
    # gymnasium's arrays are CPU arrays: on CPU, a device-less env skips the per-step
    # ``TensorDict.to(device)`` casts (they cost about as much as the env step itself)
    env = _GymWrapper(
        gym_env, categorical_action_encoding=True, device=None if device.type == "cpu" else device
    )
    if double_to_float:
        env.double_to_float()
    # memoizes the numpy -> tensor encoding after the first step (~10% faster steps);
    # safe here: a gymnasium env's arrays keep their type and shape
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="memoized encoding is an experimental")
        env.fast_encoding()
    return env, gym_env


def _gym_env(env: EnvBase) -> Any:
    base = getattr(env, "base_env", env)  # under a TransformedEnv
    return getattr(base, "_env", None)


def _observation_keys(env: EnvBase) -> tuple[list, bool]:
    """What a callable policy gets: the ``"observation"`` tensor (Box, Discrete, ...
    spaces), or all observation entries as one TensorDict for a ``Dict`` space."""
    gym_env = _gym_env(env)
    space = getattr(
        gym_env, "single_observation_space", getattr(gym_env, "observation_space", None)
    )
    keys = list(env.observation_keys)
    if isinstance(space, gymnasium.spaces.Dict):
        return keys, True
    strings = [k for k in keys if isinstance(k, str)]
    return ["observation" if "observation" in strings else strings[0]], False


def _env_keys(env: EnvBase) -> set:
    """Every entry a TensorDict policy may read from the env's step data."""
    keys = set()
    for spec in (env.full_observation_spec, env.full_done_spec, env.full_state_spec):
        keys.update(spec.keys(True))
    return keys


def _action_space_text(env: EnvBase) -> str:
    gym_env = _gym_env(env)
    space = getattr(gym_env, "single_action_space", getattr(gym_env, "action_space", None))
    base = getattr(env, "base_env", env)
    spec = env.action_spec
    if space is not None and spec == base.action_spec:
        return str(space)
    return f"{type(spec).__name__}(shape={tuple(spec.shape)})"  # changed by a transform


def _split(total: int, parts: int) -> list[int]:
    """``total`` spread over ``parts`` as evenly as possible, the first ones taking more."""
    return [total // parts + (i < total % parts) for i in range(parts)]


class EnvRunner:
    """Steps ``env`` with a swappable policy through one long-lived ``Collector``.

    Keeps the carried env state between calls, a private torch RNG stream (so a
    seeded simulator is reproducible whatever the caller does with the global RNG),
    and trajectory ids (computed per call from the done flags: the collector's own
    per-step id bookkeeping cost about as much as the env step for one env).
    """

    def __init__(self, env: EnvBase, seed: int | None) -> None:
        self.env = env
        self.batch_shape = tuple(env.batch_size)
        self.num_envs = int(env.batch_size.numel())
        obs_keys, dict_obs = _observation_keys(env)
        self.slot = _PolicySlot(
            env.action_spec,
            obs_keys,
            unbatched=not self.batch_shape,
            dict_obs=dict_obs,
            env_keys=_env_keys(env),
            space=_action_space_text(env),
        )
        self.collector = Collector(
            env,
            self.slot,
            frames_per_batch=self.num_envs,
            total_frames=-1,
            auto_register_policy_transforms=False,
            trust_policy=True,
            use_buffers=True,
            track_traj_ids=False,
            split_trajs=False,
            reset_at_each_iter=False,
        )
        self._rng_state = None
        if seed is not None:
            self._rng_state = torch.Generator().manual_seed(seed).get_state()
            self.collector.reset(seed=seed)
        self._next_traj = 0
        self._traj = self._new_ids(self.num_envs)
        self.fresh = True  # no step since the last reset

    def _new_ids(self, n: int) -> torch.Tensor:
        ids = torch.arange(self._next_traj, self._next_traj + n)
        self._next_traj += n
        return ids

    @contextlib.contextmanager
    def _rng(self):
        if self._rng_state is None:
            yield
            return
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(self._rng_state)
            try:
                yield
            finally:
                self._rng_state = torch.get_rng_state()

    def reset(self) -> None:
        """Starts fresh episodes in every env (no seed: the env RNGs continue)."""
        self.collector.reset()
        self._traj = self._new_ids(self.num_envs)
        self.fresh = True

    def rollout(
        self,
        policy: Any,
        steps_per_env: int,
        *,
        random_policy: bool = False,
        exploration_type: ExplorationType = ExplorationType.RANDOM,
    ) -> TensorDictBase:
        """``steps_per_env`` steps of every env from the carried state: ``[*batch, T]``."""
        self.slot.set_policy(policy, random_policy)
        self.collector.exploration_type = exploration_type
        self._set_steps(steps_per_env)
        self.fresh = False
        try:
            with self._rng():
                # the collector stacks the steps into its own buffer, reused by the next call
                data = self.collector.rollout().clone()
        except BaseException:
            # the envs stepped (and may have ended episodes) before the policy or env
            # raised, and those steps are not returned: the carried episodes continue
            # under new ids, so no id is ever given to two stretches of data
            self._traj = self._new_ids(self.num_envs)
            raise
        data.names = None
        self._set_traj_ids(data)
        return data

    def _set_steps(self, steps_per_env: int) -> None:
        # The collector runs ``frames_per_batch`` steps per ``rollout()`` call and stacks
        # them into its preallocated ``_final_rollout`` (``use_buffers=True``: about twice
        # as fast as stacking a list of TensorDicts, ~15% of a Pendulum step). A new count
        # gets a buffer of the same layout (each call overwrites it whole).
        collector = self.collector
        if collector.frames_per_batch != steps_per_env:
            buffer = collector._final_rollout
            collector._final_rollout = (
                buffer[..., :1].expand(*buffer.batch_size[:-1], steps_per_env).clone()
            )
            collector.frames_per_batch = steps_per_env

    def _set_traj_ids(self, data: TensorDictBase) -> None:
        done = data.get(("next", "done")).reshape(self.num_envs, -1)
        if not done.any():  # the common case of short calls: every env continues its episode
            ids = self._traj.unsqueeze(-1).expand(done.shape)
            data.set(("collector", "traj_ids"), ids.reshape(data.batch_size))
            return
        done = done.long()
        segment = done.cumsum(-1) - done  # 0 = the carried episode, k = after the k-th end
        ends = done.sum(-1)
        first_new = self._next_traj + ends.cumsum(0) - ends
        ids = torch.where(
            segment == 0, self._traj.unsqueeze(-1), first_new.unsqueeze(-1) + segment - 1
        )
        self._traj = torch.where(ends > 0, first_new + ends - 1, self._traj)
        self._next_traj += int(ends.sum())
        data.set(("collector", "traj_ids"), ids.reshape(data.batch_size))

    def episodes(
        self,
        policy: Any,
        num_episodes: int | None = None,
        num_steps: int | None = None,
        *,
        random_policy: bool = False,
        exploration_type: ExplorationType = ExplorationType.RANDOM,
    ) -> list[TensorDictBase]:
        """Whole episodes from a reset: ``num_episodes`` of them, or as many as it takes
        to hold at least ``num_steps`` steps. The count is split into per-env quotas
        (so short episodes are not over-represented); each env takes whole episodes
        until it meets its own. Returns one ``[T_i]`` TensorDict per env holding its
        episodes back to back. The envs are reset afterwards (and before, unless fresh
        from a reset)."""
        self.slot.make_runner(policy, random_policy)  # a bad policy raises before the reset
        episode_quota = None if num_episodes is None else _split(num_episodes, self.num_envs)
        step_quota = None if num_steps is None else _split(num_steps, self.num_envs)
        if not self.fresh:
            self.reset()
        chunks = []
        cut = [None] * self.num_envs
        lengths = [[] for _ in range(self.num_envs)]
        if episode_quota is not None:
            cut = [0 if q == 0 else None for q in episode_quota]
        elapsed = 0
        while any(c is None for c in cut):
            chunk = self.rollout(
                policy,
                _EPISODE_CHUNK,
                random_policy=random_policy,
                exploration_type=exploration_type,
            )
            chunks.append(chunk if self.batch_shape else chunk.unsqueeze(0))
            done = chunk.get(("next", "done")).reshape(self.num_envs, -1)
            for i in range(self.num_envs):
                if cut[i] is not None:
                    continue
                for t in done[i].nonzero().flatten().tolist():
                    end = elapsed + t + 1
                    lengths[i].append(end - sum(lengths[i]))
                    if (episode_quota is not None and len(lengths[i]) >= episode_quota[i]) or (
                        step_quota is not None and sum(lengths[i]) >= step_quota[i]
                    ):
                        cut[i] = end
                        break
            elapsed += _EPISODE_CHUNK
        data = torch.cat(chunks, dim=1) if len(chunks) > 1 else chunks[0]
        self.reset()
        return [data[i, : cut[i]] for i in range(self.num_envs)]

    def close(self) -> None:
        self.collector.shutdown()
        if not self.env.is_closed:
            self.env.close()


def concat(parts: list[TensorDictBase]) -> TensorDictBase:
    """Concatenates flat ``[T_i]`` TensorDicts (empty parts skipped)."""
    parts = [p for p in parts if p.numel()]
    if not parts:
        raise RuntimeError("No transition was collected.")
    return torch.cat(parts, 0) if len(parts) > 1 else parts[0]
