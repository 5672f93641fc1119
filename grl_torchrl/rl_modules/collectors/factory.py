"""``make_collector``: TorchRL's multi-process or Ray collector over gymnasium envs."""

from __future__ import annotations

import importlib
import shutil
import tempfile
import warnings
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
from tensordict import TensorDict
from tensordict.nn import TensorDictModuleBase
from torch import nn
from torchrl.collectors import Collector
from torchrl.weight_update import NoWeightSyncScheme

from grl_torchrl.rl_modules.collectors import ray_support
from grl_torchrl.rl_modules.collectors.managed import _ray_error, manage
from grl_torchrl.rl_modules.collectors.worker import _WorkerCollector, make_worker_env
from grl_torchrl.rl_modules.simulator.policies import check_policy_in_keys
from grl_torchrl.rl_modules.simulator.runner import _env_keys

__all__ = ["make_collector"]

BACKENDS = ("process", "ray")

# A stand-in for "endless": TorchRL's RayCollector stops at once when given the endless
# marker ``total_frames=-1`` (its loop runs while ``collected_frames < total_frames``).
_ENDLESS_RAY_FRAMES = 2**62


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def make_collector(
    env_id: str,
    policy: Any = None,
    *,
    num_workers: int,
    envs_per_worker: int = 1,
    frames_per_batch: int,
    total_frames: int | None = None,
    backend: str = "process",
    sync: bool = True,
    seed: int | None = None,
    max_episode_steps: int | None = None,
    ray_temp_dir: str | Path | None = None,
    backend_options: dict[str, Any] | None = None,
    **make_kwargs: Any,
):
    """TorchRL's own multi-process (``"process"``) or Ray (``"ray"``) collector over ``env_id``.

    The collector comes from ``torchrl.collectors.Collector(..., num_collectors=num_workers,
    sync=sync, backend=backend)`` (a ``MultiSyncCollector``, ``MultiAsyncCollector`` or
    ``RayCollector``), so TorchRL's trainers, replay buffers and
    ``update_policy_weights_(policy)`` work with it unchanged. Each worker builds its
    ``envs_per_worker`` envs as ``GymEnvSimulator`` does (one ``GymWrapper`` around a
    gymnasium ``SyncVectorEnv``); float64 observations (MuJoCo) are cast to float32.
    A synchronous batch is ``[num_workers, envs_per_worker, T]`` (``[num_workers, T]`` with
    one env per worker); :func:`to_simulator_layout` flattens it like the simulator's data.

    Added to TorchRL's collector: ``close()`` (= ``shutdown()``), use as a context manager,
    shutdown of every live collector at interpreter exit, and an env or policy error in a
    worker re-raised in the caller as :class:`CollectorWorkerError` carrying the original
    type name and message. Every argument is checked before any process starts: one env is
    built (and closed) here as the workers build theirs, so a gymnasium keyword the env
    does not take, or a TensorDict policy reading entries the env lacks, raises at once.

    Seeding: with ``seed=s``, env ``i`` of worker ``w`` starts as after gymnasium's
    ``reset(seed=s + w * envs_per_worker + i)`` (so 2 workers x 4 envs step exactly like
    ``GymEnvSimulator(num_envs=8, seed=s)``) and worker ``w``'s torch, numpy and ``random``
    RNGs are seeded with ``s + w * envs_per_worker``, so random and stochastic policies
    reproduce from run to run.

    Ray (``pip install grl_torchrl[ray]``): when Ray is not running yet, a local runtime is
    started whose files all go under ``ray_temp_dir`` (default: a fresh temporary folder,
    removed on close) and which is shut down with the collector; when it is running
    (``ray.init(address="auto")`` on a cluster), the collector uses it and leaves it up.
    Each worker asks Ray for ``backend_options["remote_configs"]`` (default
    ``{"num_cpus": 1}``; one dict per worker to pin workers with custom resources); a
    request no node can hold raises ``ValueError`` instead of waiting forever.

    Args:
        env_id (str): a registered gymnasium id, e.g. ``"Pendulum-v1"``.
        policy: a TensorDict module (or ``nn.Module``) reading ``"observation"`` and writing
            ``"action"``; ``None`` samples the action spec uniformly. Policies that need
            env transforms (recurrent ones) are not supported.

    Keyword Args:
        num_workers (int): worker processes (Ray actors).
        envs_per_worker (int): envs stepped together in each worker. Defaults to 1.
        frames_per_batch (int): env steps per yielded batch, all workers together; a
            multiple of ``num_workers * envs_per_worker``.
        total_frames (int, optional): stop after this many env steps. Defaults to ``None``
            (endless).
        backend (str): ``"process"`` (default) or ``"ray"``.
        sync (bool): ``True`` (default) yields one batch from every worker at a time;
            ``False`` yields each worker's batch as soon as it is ready.
        seed (int, optional): see above.
        max_episode_steps (int, optional): forwarded to ``gymnasium.make``.
        ray_temp_dir (str, optional): see above (Ray only; absolute, at most 40 characters).
        backend_options (dict, optional): forwarded to TorchRL's backend (``MultiCollector``
            or ``RayCollector`` keyword arguments, e.g. ``remote_configs``,
            ``ray_init_config``).
        **make_kwargs: forwarded to ``gymnasium.make``.

    Examples:
        >>> from grl_torchrl.rl_modules import make_collector, to_simulator_layout
        >>> with make_collector("Pendulum-v1", num_workers=2, envs_per_worker=2,
        ...                     frames_per_batch=16, total_frames=32, seed=0) as collector:
        ...     batches = [to_simulator_layout(batch) for batch in collector]
        >>> len(batches), batches[0].batch_size
        (2, torch.Size([16]))
    """
    # ------------------------------------------------ checks, before any process starts
    if not isinstance(env_id, str):
        raise TypeError(f"env_id must be a gymnasium id string, got {type(env_id).__name__}.")
    module, _, name = env_id.rpartition(":")
    try:
        if module:  # "package.module:Env-v0": gymnasium.make imports the module that registers it
            importlib.import_module(module)
        gymnasium.spec(name)
    except (ImportError, gymnasium.error.Error) as err:
        raise ValueError(f"Unknown gymnasium environment id {env_id!r}: {err}") from err
    num_workers = _positive_int("num_workers", num_workers)
    envs_per_worker = _positive_int("envs_per_worker", envs_per_worker)
    frames_per_batch = _positive_int("frames_per_batch", frames_per_batch)
    num_envs = num_workers * envs_per_worker
    if frames_per_batch % num_envs:
        raise ValueError(
            f"frames_per_batch ({frames_per_batch}) must be a multiple of num_workers * "
            f"envs_per_worker ({num_envs}): every env steps the same number of times."
        )
    if total_frames is not None:
        total_frames = _positive_int("total_frames", total_frames)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}.")
    if not isinstance(sync, bool):
        raise TypeError(f"sync must be a bool, got {sync!r}.")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise TypeError(f"seed must be an int or None, got {seed!r}.")
    if max_episode_steps is not None:
        max_episode_steps = _positive_int("max_episode_steps", max_episode_steps)
    if backend_options is not None and not isinstance(backend_options, dict):
        raise TypeError(f"backend_options must be a dict, got {type(backend_options).__name__}.")
    options = dict(backend_options or {})
    if backend == "process" and ray_temp_dir is not None:
        raise ValueError("ray_temp_dir is only used with backend='ray'.")
    ray_support.check_temp_dir(ray_temp_dir)
    if policy is not None and not callable(policy):
        raise TypeError(
            "policy must be a TensorDict module (or nn.Module) reading 'observation' and "
            "writing 'action', or None for uniform random actions, got "
            f"{type(policy).__name__} {policy!r}."
        )
    _check_env_and_policy(env_id, policy, max_episode_steps, make_kwargs)

    error_dir = None
    if backend == "process":
        error_dir = Path(tempfile.mkdtemp(prefix="grl-collector-"))
    env_fns = [
        partial(
            make_worker_env,
            env_id,
            envs_per_worker,
            seed=None if seed is None else int(seed) + w * envs_per_worker,
            max_episode_steps=max_episode_steps,
            make_kwargs=make_kwargs,
            error_file=None if error_dir is None else str(error_dir / f"worker-{w}.json"),
        )
        for w in range(num_workers)
    ]
    common = dict(
        frames_per_batch=frames_per_batch,
        collector_class=_WorkerCollector,
        backend=backend,
        sync=sync,
        num_collectors=num_workers,
    )
    if backend == "process":
        try:
            collector = Collector(
                env_fns,
                policy,
                total_frames=-1 if total_frames is None else total_frames,
                backend_options=options,
                **common,
            )
        except BaseException:
            shutil.rmtree(error_dir, ignore_errors=True)
            raise
        return manage(collector, error_dir=error_dir)
    return _make_ray_collector(env_fns, policy, total_frames, ray_temp_dir, options, common)


def _check_env_and_policy(env_id, policy, max_episode_steps, make_kwargs) -> None:
    """Builds one env here, as each worker builds its own, and checks ``policy`` against it.

    A gymnasium keyword the env does not take, a space the simulator does not support or
    a policy reading entries the env lacks otherwise fails in every worker, after the
    processes (or Ray) started.
    """
    try:
        env = make_worker_env(
            env_id, 1, seed=None, max_episode_steps=max_episode_steps, make_kwargs=make_kwargs
        )
    except TypeError as err:
        if not make_kwargs:
            raise
        raise TypeError(
            f"{env_id!r} does not take the keyword arguments {sorted(make_kwargs)} that "
            f"make_collector forwards to gymnasium.make: {err}"
        ) from err
    try:
        if isinstance(policy, TensorDictModuleBase):
            check_policy_in_keys(policy, _env_keys(env), env.observation_keys)
            missing = [key for key in env.action_keys if key not in policy.out_keys]
            if missing:
                raise ValueError(
                    f"policy does not write the env's action entry {missing}; its out_keys "
                    f"are {list(policy.out_keys)}."
                )
    finally:
        env.close()


def _make_ray_collector(env_fns, policy, total_frames, ray_temp_dir, options, common):
    ray = ray_support.import_ray()
    remote_configs = options.pop("remote_configs", ray_support.DEFAULT_WORKER_RESOURCES)
    requests = ray_support.worker_requests(remote_configs, len(env_fns))
    session = None
    init_config = dict(options.pop("ray_init_config", None) or {})
    if ray.is_initialized():
        if ray_temp_dir is not None or init_config:
            raise ValueError(
                "Ray is already running in this process: ray_temp_dir and "
                "backend_options['ray_init_config'] only apply to a runtime that "
                "make_collector starts itself."
            )
    else:
        # Started here rather than by TorchRL's runtime lease (which ``RayCollector`` would
        # start from ``ray_init_config``): the resource check needs the running cluster
        # before the collector creates its actors. The session shuts it down on close().
        session = ray_support.RaySession(ray_temp_dir, init_config)
    try:
        if session is not None:
            session.start()
        ray_support.check_resources(ray, requests)
        has_weights = isinstance(policy, nn.Module)
        if not has_weights:
            # nothing to send: TorchRL's default Ray scheme would look for weights in the
            # workers' random policy and log a warning in each of them
            options.setdefault("weight_sync_schemes", {"policy": NoWeightSyncScheme()})
        try:
            with warnings.catch_warnings():
                # TorchRL warns that a policy without parameters has no weights to update
                warnings.filterwarnings("ignore", "The policy is not an nn.Module", UserWarning)
                collector = Collector(
                    env_fns,
                    policy,
                    total_frames=_ENDLESS_RAY_FRAMES if total_frames is None else total_frames,
                    remote_configs=remote_configs,
                    backend_options=options,
                    **common,
                )
            # RayCollector connects its weight sync on the first update_policy_weights_
            # and warns when iteration starts before that; connecting here also sends
            # the caller's policy weights as they are now.
            collector.update_policy_weights_(policy if has_weights else TensorDict())
        except Exception as err:
            worker_error = _ray_error(err)
            if worker_error is None:
                raise
            raise worker_error from err
    except BaseException:
        if session is not None:
            session.close()
        raise
    return manage(collector, error_dir=None, ray_session=session)
