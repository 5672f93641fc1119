"""What runs inside a collector worker: the env factory and the worker-side collector class.

Both are module-level so that workers receive them by reference (``spawn`` pickles, Ray's
cloudpickle), which is why the env is built inside the worker rather than pickled: the
TorchRL env that :func:`~grl_torchrl.rl_modules.simulator.make_gym_env` returns holds a
lambda (its memoized encoding) and does not pickle.
"""

from __future__ import annotations

import importlib
import json
import os
import random
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium.utils import seeding
from torchrl.collectors import Collector
from torchrl.envs import DoubleToFloat, EnvBase, TransformedEnv

from grl_torchrl.rl_modules.simulator import make_gym_env

# Set by ``make_worker_env`` in a process-backend worker: where that worker writes the
# exception that ends it, for the caller to re-raise (see ``_WorkerCollector.iterator``).
_ERROR_FILE: list[Path] = []


def make_worker_env(
    env_id: str,
    num_envs: int,
    *,
    seed: int | None,
    max_episode_steps: int | None,
    make_kwargs: dict[str, Any],
    error_file: str | None = None,
) -> EnvBase:
    """Builds one worker's env the way ``GymEnvSimulator`` does, seeded, float32 observations.

    With ``seed``, sub-env ``i`` starts from the state ``gymnasium`` reaches with
    ``reset(seed=seed + i)`` and the worker's torch, numpy and ``random`` RNGs are seeded
    with ``seed`` (so random and stochastic policies reproduce). Float64 observations
    (MuJoCo) are cast to float32 by TorchRL's ``DoubleToFloat``.

    Examples:
        >>> env = make_worker_env("Pendulum-v1", 2, seed=0, max_episode_steps=None, make_kwargs={})
        >>> env.reset()["observation"].shape, env.batch_size
        (torch.Size([2, 3]), torch.Size([2]))
    """
    if error_file is not None:
        _ERROR_FILE[:] = [Path(error_file)]
    module, _, name = env_id.rpartition(":")
    if module:
        # "package.module:Env-v0" (gymnasium.make's form): import the module that registers
        # the env here, in the worker, and hand make_gym_env the registered name
        importlib.import_module(module)
    env, gym_env = make_gym_env(
        name, num_envs, device="cpu", max_episode_steps=max_episode_steps, make_kwargs=make_kwargs
    )
    if seed is not None:
        # The collector resets the env once, unseeded, when it is built (``Collector``'s
        # carrier); a ``reset(seed=...)`` here would be spent before it. Giving each
        # sub-env the generator ``reset(seed=seed + i)`` would create (gymnasium's
        # ``seeding.np_random``) makes that first reset draw exactly what a seeded reset
        # draws, as ``GymEnvSimulator(num_envs, seed)`` does.
        sub_envs = gym_env.envs if hasattr(gym_env, "envs") else [gym_env]
        for i, sub_env in enumerate(sub_envs):
            sub_env.np_random = seeding.np_random(seed + i)[0]
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
    if any(spec.dtype == torch.float64 for spec in env.observation_spec.values(True, True)):
        env = TransformedEnv(env, DoubleToFloat())
    return env


def _record_error(err: BaseException) -> None:
    if not _ERROR_FILE:
        return
    path = _ERROR_FILE[0]
    record = dict(
        type=type(err).__name__,
        module=type(err).__module__,
        message=str(err),
        traceback=traceback.format_exc(),
        pid=os.getpid(),
    )
    tmp = path.with_suffix(".tmp")
    try:  # written whole, then renamed: the caller never reads half a record
        tmp.write_text(json.dumps(record))
        os.replace(tmp, path)
    except OSError:
        pass


class _WorkerCollector(Collector):
    """TorchRL's single-process ``Collector`` as the workers run it, with these fixes.

    - An exception raised while collecting (the env's or the policy's) is written to the
      worker's error file before it ends the worker: TorchRL's process backend only
      reports ``RuntimeError("At least one process failed")`` to the caller.
    - ``bool(collector)`` is ``True``: an endless collector's ``__len__`` is a float
      (``total_frames`` becomes ``inf``), so ``bool()`` raised ``TypeError``, and Ray
      tests the actor object's truth while storing a task's error: the worker then died
      with ``ActorDiedError`` instead of returning the error.
    - No output from a healthy worker: ``auto_register_policy_transforms=False`` by
      default (TorchRL 0.14's ``None`` changes nothing either, but warns for every
      ``nn.Module`` policy that the env lacks an ``InitTracker``), and a one-line
      ``repr`` (Ray prints an actor's ``repr`` as its log prefix, and TorchRL's spans
      about 15 lines).
    """

    def __init__(self, *args: Any, auto_register_policy_transforms: bool = False, **kwargs):
        super().__init__(
            *args, auto_register_policy_transforms=auto_register_policy_transforms, **kwargs
        )

    def __repr__(self) -> str:
        return type(self).__name__

    def __bool__(self) -> bool:
        return True

    def iterator(self):
        try:
            yield from super().iterator()
        except Exception as err:
            _record_error(err)
            raise
