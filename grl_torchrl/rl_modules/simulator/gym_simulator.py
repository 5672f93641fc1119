"""``GymEnvSimulator``: GenerativeRL's gym simulator on TorchRL's ``GymWrapper`` and ``Collector``."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

import gymnasium
import numpy as np
import torch
from tensordict import TensorDictBase
from torchrl.envs import EnvBase, TransformedEnv
from torchrl.envs.utils import ExplorationType

from grl_torchrl.rl_modules.simulator.checks import (
    check_count,
    check_device,
    check_env_id,
    check_flag,
    check_seed,
)
from grl_torchrl.rl_modules.simulator.policies import NumpyPolicyWrapper, check_policy
from grl_torchrl.rl_modules.simulator.render import check_render_args, split_frames, write_gif
from grl_torchrl.rl_modules.simulator.runner import EnvRunner, concat, make_gym_env

__all__ = ["GymEnvSimulator", "NumpyPolicyWrapper", "evaluation_summary", "to_records"]

#: ``evaluate`` and ``collect_episodes`` run on their own env seeded ``seed + EVAL_SEED_OFFSET``.
EVAL_SEED_OFFSET = 10_000


def _one_count(num_episodes: Any, num_steps: Any) -> tuple[int | None, int | None]:
    num_episodes = check_count("num_episodes", num_episodes)
    num_steps = check_count("num_steps", num_steps)
    if num_episodes is None and num_steps is None:
        raise ValueError("Pass one of num_episodes or num_steps (both are None).")
    if num_episodes is not None and num_steps is not None:
        raise ValueError(
            f"Pass only one of num_episodes ({num_episodes}) or num_steps ({num_steps})."
        )
    return num_episodes, num_steps


def _episode_slices(data: TensorDictBase) -> list[TensorDictBase]:
    ends = (data.get(("next", "done")).reshape(-1).nonzero().flatten() + 1).tolist()
    starts = [0, *ends[:-1]] if ends else []
    return [data[start:end] for start, end in zip(starts, ends, strict=True)]


class GymEnvSimulator:
    """Collects and evaluates with a gymnasium env through TorchRL (``grl.rl_modules`` API).

    The env is a :class:`~torchrl.envs.GymWrapper` (exposed as :attr:`env`; wrap it in a
    :class:`~torchrl.envs.TransformedEnv` and assign it back to add transforms before
    the first call) stepped by one long-lived :class:`~torchrl.collectors.Collector`
    that every ``collect_steps`` call reuses (its carried state is the unfinished
    episodes).
    With ``num_envs > 1`` the envs run as one gymnasium ``SyncVectorEnv`` wrapped once,
    so TorchRL's per-step cost is paid once per batched step.

    Data come back as one flat ``TensorDict`` of batch ``[N]`` in TorchRL's layout
    (``"observation"``, ``"action"``, ``("next", "observation")``, ``("next", "reward")``
    ``[N, 1]``, ``("next", "done" | "terminated" | "truncated")`` ``[N, 1]``,
    ``("collector", "traj_ids")``) that ``TensorDictReplayBuffer.extend`` takes as is.
    With several envs, each env's steps are contiguous (env-major order), so every
    episode is contiguous. An episode ends on terminated OR truncated.

    A policy is one of: a TensorDict module reading ``"observation"`` and writing
    ``"action"`` (only ``"action"`` is kept); a callable from a batched observation
    tensor ``[num_envs, *obs_shape]`` (a TensorDict of all entries for a gymnasium
    ``Dict`` observation space) to actions ``[num_envs, *act_shape]`` (with
    ``num_envs=1`` also ``[*act_shape]``), returned as a tensor or as anything
    ``np.asarray`` makes numeric (a numpy array, a number, a list of numbers); an
    upstream single-observation numpy policy wrapped in :class:`NumpyPolicyWrapper`.

    Action rule: every policy action is checked before the env steps. Discrete spaces
    (``Discrete``, ``MultiDiscrete``, ``MultiBinary``) take integer tensors with every
    value inside the space (a float or out-of-range action raises ``TypeError`` /
    ``ValueError``, where gymnasium would truncate, wrap or assert). Continuous
    (``Box``) actions must be finite (NaN/inf raise ``ValueError``) and are clipped to
    the space's bounds before stepping: the stored ``"action"`` is the action the env
    applied. Actions are cast to the space's dtype. ``random_policy`` samples the space.

    Dtype rule: observations keep the space's dtype, except float64 ones (MuJoCo),
    which come out float32 (``double_to_float=True``, the default), the dtype torch
    networks take; rewards are float32, done flags bool, discrete actions int64.
    Spaces TorchRL cannot represent (``Tuple``, ``Text``, ``Graph``, ...) raise a
    ``ValueError`` naming the space when the simulator is built.

    Seeding: with ``seed=s`` the envs are reset with ``seed=s`` (sub-env ``i`` of a vector
    env gets ``s + i``, as gymnasium does) and torch sampling inside the simulator (random
    actions, stochastic policies) draws from a private RNG stream seeded from ``s``, so
    two simulators built alike return identical data for identical calls. ``evaluate``
    and ``collect_episodes`` use a second env seeded ``s + EVAL_SEED_OFFSET``.

    Speed: the collector is built once per env and each call runs its ``rollout()`` for
    the requested number of steps, with TorchRL's per-step trajectory-id bookkeeping off
    (ids are computed per call from the done flags); vector envs use gymnasium's
    ``DISABLED`` autoreset (TorchRL resets finished sub-envs, no per-step info parsing);
    a CPU env is left device-less (no per-step ``.to(device)``); the env's step and
    partial-reset hooks build their TensorDicts directly from gymnasium's outputs (same
    data as TorchRL's stock ``GymWrapper``, transforms included); the collector stacks
    steps into a preallocated buffer. See ``benchmarks/bench_simulator.py``.

    Args:
        env_id (str): a registered gymnasium id, e.g. ``"Pendulum-v1"``.

    Keyword Args:
        num_envs (int): envs stepped together. Defaults to 1.
        seed (int, optional): in ``[0, 2**63)``; see above. Defaults to ``None``
            (unseeded, global torch RNG).
        device: device of the TorchRL env's tensors; checked to be available here.
            Defaults to ``"cpu"``.
        max_episode_steps (int, optional): forwarded to ``gymnasium.make`` (truncation).
        double_to_float (bool): float64 observations come out float32. Defaults to ``True``.
        **make_kwargs: forwarded to ``gymnasium.make``.

    Every argument of every method is checked before any env is made, reset or
    stepped: a bad one raises ``TypeError`` or ``ValueError`` naming it.

    Examples:
        >>> from grl_torchrl.rl_modules import GymEnvSimulator
        >>> with GymEnvSimulator("Pendulum-v1", num_envs=2, seed=0) as sim:
        ...     data = sim.collect_steps(None, num_steps=8, random_policy=True)
        ...     episodes = sim.collect_episodes(lambda obs: -obs[:, 2:], num_episodes=2)
        >>> data.batch_size, data["next", "reward"].shape, data["collector", "traj_ids"].tolist()
        (torch.Size([8]), torch.Size([8, 1]), [0, 0, 0, 0, 1, 1, 1, 1])
        >>> episodes.batch_size
        torch.Size([400])
    """

    def __init__(
        self,
        env_id: str,
        *,
        num_envs: int = 1,
        seed: int | None = None,
        device: str | torch.device = "cpu",
        max_episode_steps: int | None = None,
        double_to_float: bool = True,
        **make_kwargs: Any,
    ) -> None:
        self._closed = False
        self._runners: dict[str, EnvRunner] = {}
        env_id = check_env_id(env_id)
        num_envs = check_count("num_envs", num_envs, optional=False)
        seed = check_seed(seed)
        device = check_device(device)
        self.env_id = env_id
        self.num_envs = num_envs
        self.seed = seed
        self._make = dict(
            device=device,
            max_episode_steps=check_count("max_episode_steps", max_episode_steps),
            make_kwargs=make_kwargs,
            double_to_float=check_flag("double_to_float", double_to_float),
        )
        self._gym_envs: dict[str, Any] = {}
        self._env, self._gym_envs["steps"] = make_gym_env(env_id, num_envs, **self._make)

    # ------------------------------------------------------------------ envs
    @property
    def env(self) -> EnvBase:
        """The TorchRL env that :meth:`collect_steps` steps.

        It may be replaced by a ``TransformedEnv`` around it until the first collection
        or evaluation call; ``evaluate`` and ``collect_episodes`` then run their own env
        under a clone of the same transform.
        """
        return self._env

    @env.setter
    def env(self, value: EnvBase) -> None:
        if self._runners:
            raise RuntimeError("sim.env can only be replaced before the first collection call.")
        if not isinstance(value, EnvBase):
            raise TypeError(f"sim.env must be a TorchRL EnvBase, got {type(value).__name__}.")
        self._env = value

    def _runner(self, name: str) -> EnvRunner:
        runner = self._runners.get(name)
        if runner is not None:
            return runner
        if self._closed:
            raise RuntimeError("This GymEnvSimulator is closed.")
        if name == "steps":
            env, seed = self._env, self.seed
        else:
            env, self._gym_envs[name] = make_gym_env(
                self.env_id, self.num_envs, render=name == "render", **self._make
            )
            if isinstance(self._env, TransformedEnv):
                env = TransformedEnv(env, self._env.transform.clone())
            seed = None if self.seed is None else self.seed + EVAL_SEED_OFFSET
        runner = self._runners[name] = EnvRunner(env, seed)
        return runner

    # ------------------------------------------------------------ collection
    def collect_steps(
        self,
        policy: Any,
        num_episodes: int | None = None,
        num_steps: int | None = None,
        random_policy: bool = False,
    ) -> TensorDictBase:
        """Collects transitions, carrying unfinished episodes over between calls.

        With ``num_steps``: exactly that many transitions; the envs are not reset between
        calls. With ``num_envs > 1`` each env steps ``num_steps / num_envs`` times, so
        ``num_steps`` must be a multiple of ``num_envs`` (else ``ValueError``).
        With ``num_episodes``: that many whole episodes from a reset (spread over the envs
        as evenly as possible), after which the carried state is reset.
        ``random_policy=True`` samples the action spec uniformly and ignores ``policy``.
        Every argument is checked before the carried episodes are touched.

        Returns:
            a flat ``TensorDict`` ``[N]`` (see the class docstring).

        Examples:
            >>> sim = GymEnvSimulator("CartPole-v1", seed=0)
            >>> first = sim.collect_steps(None, num_steps=5, random_policy=True)
            >>> second = sim.collect_steps(lambda obs: (obs[:, 2] > 0).long(), num_steps=5)
            >>> bool((second[0]["observation"] == first[-1]["next", "observation"]).all())
            True
            >>> first["action"].dtype, first["action"].shape
            (torch.int64, torch.Size([5]))
            >>> sim.close()
        """
        num_episodes, num_steps = _one_count(num_episodes, num_steps)
        check_policy(policy, check_flag("random_policy", random_policy))
        if num_steps is not None and num_steps % self.num_envs:
            raise ValueError(
                f"num_steps ({num_steps}) must be a multiple of num_envs ({self.num_envs}): "
                "every env steps num_steps / num_envs times."
            )
        runner = self._runner("steps")
        if num_steps is not None:
            data = runner.rollout(policy, num_steps // self.num_envs, random_policy=random_policy)
            return data if data.batch_dims == 1 else data.reshape(-1)
        return concat(runner.episodes(policy, num_episodes, random_policy=random_policy))

    def collect_episodes(
        self,
        policy: Any,
        num_episodes: int | None = None,
        num_steps: int | None = None,
        random_policy: bool = False,
    ) -> TensorDictBase:
        """Collects whole episodes, each from a reset, without touching ``collect_steps``' state.

        With ``num_episodes``: that many episodes (spread over the envs as evenly as
        possible, so short episodes are not over-represented). With ``num_steps``: whole
        episodes until at least ``num_steps`` transitions are held (each env contributes
        whole episodes until it holds its share), so the result may overshoot.
        ``random_policy=True`` samples the action spec uniformly and ignores ``policy``.

        Examples:
            >>> with GymEnvSimulator("CartPole-v1", seed=0) as sim:
            ...     data = sim.collect_episodes(lambda obs: torch.zeros(1, dtype=torch.long), num_steps=20)
            >>> data.numel() >= 20, bool(data["next", "done"][-1])
            (True, True)
        """
        num_episodes, num_steps = _one_count(num_episodes, num_steps)
        check_policy(policy, check_flag("random_policy", random_policy))
        runner = self._runner("episodes")
        return concat(runner.episodes(policy, num_episodes, num_steps, random_policy=random_policy))

    # ------------------------------------------------------------ evaluation
    def evaluate(
        self,
        policy: Any,
        num_episodes: int | None = None,
        render_args: dict | None = None,
    ) -> list[dict[str, Any]]:
        """Runs fresh episodes with deterministic actions under ``torch.no_grad()``.

        Episodes run ``num_envs`` at a time, ``num_episodes`` (default 1) split into
        per-env quotas. The ``collect_steps`` state is left untouched.

        Args:
            policy: see the class docstring; TensorDict modules run under
                ``ExplorationType.DETERMINISTIC``.
            num_episodes (int, optional): defaults to 1.
            render_args (dict, optional): ``dict(video_path=None, fps=30)``; when given,
                each result's ``render_output`` is the episode's ``uint8`` frames
                ``[total_steps + 1, H, W, 3]`` (reset frame first) and, with
                ``video_path`` (``.gif``, in an existing directory; needs Pillow), all
                episodes are written to that file at ``fps`` (finite, > 0). All of it is
                checked before the first episode runs.

        Returns:
            one dict per episode: ``total_return`` (float), ``total_steps`` (int),
            ``data_list`` (the episode's ``TensorDict``), ``render_output``.

        Examples:
            >>> with GymEnvSimulator("Pendulum-v1", seed=0) as sim:
            ...     results = sim.evaluate(lambda obs: torch.zeros(len(obs), 1), num_episodes=2)
            >>> [r["total_steps"] for r in results], type(results[0]["total_return"])
            ([200, 200], <class 'float'>)
        """
        num_episodes = check_count("num_episodes", num_episodes) or 1
        check_policy(policy, False)
        render = render_args is not None
        if render:
            render_args = check_render_args(render_args)
            self._check_can_render()
        name = "render" if render else "episodes"
        runner = self._runner(name)
        if render:
            # drop frames left by earlier calls; when the envs are fresh from a reset the
            # episodes start there, so each env's last frame is their first one
            stale = self._frames(name)
            start = [f[-1:] for f in stale] if runner.fresh else [[] for _ in stale]
        with torch.no_grad():
            parts = runner.episodes(
                policy, num_episodes, exploration_type=ExplorationType.DETERMINISTIC
            )
        frames = [a + b for a, b in zip(start, self._frames(name), strict=True)] if render else None
        results = []
        for i, part in enumerate(parts):
            episodes = _episode_slices(part)
            videos = (
                split_frames(frames[i], [ep.numel() for ep in episodes])
                if render
                else [None] * len(episodes)
            )
            for episode, video in zip(episodes, videos, strict=True):
                results.append(
                    dict(
                        total_return=float(episode.get(("next", "reward")).sum()),
                        total_steps=int(episode.numel()),
                        data_list=episode,
                        render_output=video,
                    )
                )
        if render and render_args["video_path"] is not None:
            write_gif(
                render_args["video_path"],
                [r["render_output"] for r in results],
                render_args["fps"],
            )
        return results

    def _check_can_render(self) -> None:
        if "render" in self._runners:
            return
        if self._closed:
            raise RuntimeError("This GymEnvSimulator is closed.")
        probe = gymnasium.make(self.env_id, **self._make["make_kwargs"])
        modes = probe.metadata.get("render_modes", [])
        probe.close()
        if "rgb_array" not in modes:
            raise ValueError(
                f"render_args was given but {self.env_id!r} cannot render 'rgb_array' "
                f"frames (its render_modes are {modes})."
            )

    def _frames(self, name: str) -> list[list]:
        gym_env = self._gym_envs[name]
        if self.num_envs == 1:
            return [gym_env.render()]
        return list(gym_env.call("render"))

    # ------------------------------------------------------------- lifetime
    def close(self) -> None:
        """Shuts every collector down and closes every env (idempotent)."""
        for runner in self._runners.values():
            runner.close()
        self._runners.clear()
        env = getattr(self, "_env", None)  # absent when __init__ raised
        if env is not None and not env.is_closed:
            env.close()
        self._closed = True

    def __enter__(self) -> GymEnvSimulator:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if hasattr(self, "_runners"):
                self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.env_id!r}, num_envs={self.num_envs}, seed={self.seed})"


_RECORD_FLAGS = ("reward", "done", "terminated", "truncated")


def _observation_entries(data: TensorDictBase) -> list:
    """The observation keys of collected data: what ``("next", ...)`` holds besides the
    reward and done flags (``"observation"`` for Box spaces, each entry of a Dict)."""
    nxt = data.get("next")
    return [
        key
        for key in nxt.keys(True, True)
        if (key if isinstance(key, str) else key[0]) not in _RECORD_FLAGS
    ]


def to_records(
    data: TensorDictBase, obs_keys: str | tuple | list | None = None
) -> list[dict[str, Any]]:
    """Turns a flat collected ``TensorDict`` into upstream's list of per-step dicts.

    Each record has ``obs``, ``action``, ``next_obs`` (tensors), ``reward`` (float),
    ``done`` (bool, upstream's meaning: *terminated*) and ``truncated`` (bool).
    ``obs`` / ``next_obs`` are the ``"observation"`` tensor when the data has one (what
    a callable policy sees for Box / Discrete spaces, even under transforms that add
    entries), else (a ``Dict`` observation space) a dict of every observation entry.
    ``obs_keys`` picks them explicitly: one key (a str, or a tuple for a nested entry)
    gives its tensor, a list of keys a dict of them; pass it for a ``Dict`` space that
    has an ``"observation"`` entry among others.

    Examples:
        >>> with GymEnvSimulator("CartPole-v1", seed=0) as sim:
        ...     records = to_records(sim.collect_steps(None, num_steps=3, random_policy=True))
        >>> sorted(records[0]), len(records)
        (['action', 'done', 'next_obs', 'obs', 'reward', 'truncated'], 3)
    """
    if not isinstance(data, TensorDictBase):
        raise TypeError(
            "to_records: data must be a TensorDict collected by GymEnvSimulator, "
            f"got {type(data).__name__}."
        )
    if data.batch_dims != 1:
        raise ValueError(
            f"to_records: data must be a flat [N] TensorDict, got batch {tuple(data.batch_size)}."
        )
    needed = ["action", ("next", "reward"), ("next", "terminated"), ("next", "truncated")]
    missing = [key for key in needed if key not in data.keys(True)]
    if missing:
        raise ValueError(
            f"to_records: data lacks {missing}; it must hold a GymEnvSimulator collection "
            f"(its keys are {sorted(map(str, data.keys(True, True)))})."
        )
    if obs_keys is None:
        entries = _observation_entries(data)
        obs_keys = "observation" if "observation" in entries else entries
    elif not isinstance(obs_keys, (str, tuple, list)):
        raise TypeError(
            f"to_records: obs_keys must be a key (str or tuple) or a list of keys, got "
            f"{type(obs_keys).__name__}."
        )
    keys = [obs_keys] if isinstance(obs_keys, (str, tuple)) else list(obs_keys)
    present = set(data.keys(True))
    absent = [key for key in keys if key not in present or ("next", key) not in present]
    if absent or not keys:
        raise ValueError(
            f"to_records: obs_keys {absent or keys} are not observation entries of data "
            "(both key and ('next', key)); its observation entries are "
            f"{_observation_entries(data)}."
        )

    def observations(td: TensorDictBase) -> list:
        if isinstance(obs_keys, (str, tuple)):
            return list(td.get(obs_keys).unbind(0))
        return [row.to_dict() for row in td.select(*keys).unbind(0)]

    columns = dict(
        obs=observations(data),
        action=data.get("action").unbind(0),
        reward=data.get(("next", "reward")).reshape(-1).tolist(),
        done=data.get(("next", "terminated")).reshape(-1).tolist(),
        truncated=data.get(("next", "truncated")).reshape(-1).tolist(),
        next_obs=observations(data.get("next")),
    )
    return [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def evaluation_summary(results: list[dict[str, Any]]) -> dict[str, float | int]:
    """Mean, std (population), min and max of the returns and lengths of ``evaluate``'s results.

    Examples:
        >>> evaluation_summary([dict(total_return=1.0, total_steps=10),
        ...                     dict(total_return=3.0, total_steps=20)])["return_mean"]
        2.0
    """
    if not isinstance(results, (list, tuple)):
        raise TypeError(
            "evaluation_summary: results must be the list of dicts evaluate() returns, "
            f"got {type(results).__name__}."
        )
    if not results:
        raise ValueError("evaluation_summary needs at least one result, got an empty list.")
    for i, result in enumerate(results):
        if not isinstance(result, Mapping):
            raise TypeError(
                f"evaluation_summary: results[{i}] must be a dict from evaluate(), "
                f"got {type(result).__name__}."
            )
        for key in ("total_return", "total_steps"):
            if key not in result:
                raise ValueError(
                    f"evaluation_summary: results[{i}] has no {key!r} (keys: {sorted(result)})."
                )
            value = result[key]
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(
                    f"evaluation_summary: results[{i}][{key!r}] must be a number, "
                    f"got {value!r} ({type(value).__name__})."
                )
    returns = np.array([float(r["total_return"]) for r in results], dtype=np.float64)
    steps = np.array([float(r["total_steps"]) for r in results], dtype=np.float64)
    summary: dict[str, float | int] = {"num_episodes": len(results)}
    for name, values in (("return", returns), ("steps", steps)):
        summary[f"{name}_mean"] = float(values.mean())
        summary[f"{name}_std"] = float(values.std())
        summary[f"{name}_min"] = float(values.min())
        summary[f"{name}_max"] = float(values.max())
    return summary
