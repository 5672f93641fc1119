"""Ray plumbing for ``make_collector(backend="ray")``: start-up, files, resource check."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Ray keeps Unix sockets under ``<temp dir>/session_<date>_<pid>/sockets/``; Linux caps a
# socket path at 107 bytes, which leaves about this much for the temp dir itself.
MAX_TEMP_DIR_LEN = 40

# TorchRL's default per-worker request also reserves 2 GiB of Ray's "memory" resource,
# which on a small machine makes a few workers unschedulable: ask for one CPU only.
DEFAULT_WORKER_RESOURCES = {"num_cpus": 1}

_RESOURCE_NAMES = {"num_cpus": "CPU", "num_gpus": "GPU", "memory": "memory"}

# One token per driver process: Ray's C++ token loader caches the first token it reads, so
# a later session in the same process must find the same one.
_TOKEN = secrets.token_hex(32)

# Where Ray logs its token-authentication notice (see ``RaySession.start``).
_TOKEN_LOGGER = "ray._private.authentication.authentication_token_setup"


def import_ray():
    try:
        import ray
    except ImportError as err:
        raise ImportError(
            "backend='ray' needs Ray: install the extra with `pip install grl_torchrl[ray]`."
        ) from err
    return ray


class RaySession:
    """A local Ray runtime started for one collector, with all its files under one folder.

    Ray writes its sessions, logs and sockets under ``temp_dir`` (``ray.init(_temp_dir=)``),
    and its token-authentication secret (by default ``~/.ray/auth_token``) into the same
    folder (``RAY_AUTH_TOKEN_PATH``, unless ``RAY_AUTH_TOKEN`` or ``RAY_AUTH_TOKEN_PATH``
    is set already or ``RAY_AUTH_MODE=disabled``), so nothing lands in the home directory or
    ``/tmp/ray``. Local workers get the driver's ``sys.path`` (``PYTHONPATH``), as
    process-backend workers do. ``close()`` shuts Ray down and removes a folder it created.
    """

    def __init__(self, temp_dir: str | os.PathLike | None, init_config: dict[str, Any]):
        self.owns_dir = temp_dir is None
        path = Path(tempfile.mkdtemp(prefix="grl-ray-")) if temp_dir is None else Path(temp_dir)
        self.temp_dir = path.resolve()
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        # ``ray.init`` sets RAY_AUTH_MODE=token in this process when it starts a cluster;
        # close() puts it back, so that a later session starts the same way.
        self._saved_env: dict[str, str | None] = {"RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE")}
        user_token = "RAY_AUTH_TOKEN" in os.environ or "RAY_AUTH_TOKEN_PATH" in os.environ
        self.own_token = (
            not user_token and os.environ.get("RAY_AUTH_MODE", "token").lower() != "disabled"
        )
        if self.own_token:
            token = self.temp_dir / "auth_token"
            token.touch(0o600)
            token.write_text(_TOKEN)
            # Ray's processes take the driver's environment when ``ray.init`` starts them
            self._saved_env["RAY_AUTH_TOKEN_PATH"] = None
            os.environ["RAY_AUTH_TOKEN_PATH"] = str(token)
        runtime_env = dict(init_config.pop("runtime_env", None) or {})
        python_path = os.pathsep.join(p for p in sys.path if p)
        env_vars = {"PYTHONPATH": python_path, **runtime_env.get("env_vars", {})}
        self.init_config = dict(
            include_dashboard=False,
            log_to_driver=True,
            configure_logging=False,
            _temp_dir=str(self.temp_dir),
            runtime_env={**runtime_env, "env_vars": env_vars},
            **init_config,
        )

    def start(self) -> None:
        """``ray.init(**self.init_config)``, quiet about the token this session set up.

        Ray logs "Token authentication is enabled for this Ray cluster" at every start
        that finds a token while ``RAY_AUTH_MODE`` is unset; setting the mode here instead
        does not reach Ray's configuration, which is read once per process.
        """
        import ray

        logger = logging.getLogger(_TOKEN_LOGGER)
        quiet = _drop_token_notice if self.own_token else None
        if quiet is not None:
            logger.addFilter(quiet)
        try:
            ray.init(**self.init_config)
        finally:
            if quiet is not None:
                logger.removeFilter(quiet)

    def close(self) -> None:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env = {}
        if self.owns_dir:
            shutil.rmtree(self.temp_dir, ignore_errors=True)


def _drop_token_notice(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Token authentication is enabled")


def check_temp_dir(temp_dir: Any) -> None:
    if temp_dir is None:
        return
    if not isinstance(temp_dir, (str, os.PathLike)):
        raise TypeError(f"ray_temp_dir must be a path or None, got {type(temp_dir).__name__}.")
    path = Path(temp_dir)
    if not path.is_absolute():
        raise ValueError(f"ray_temp_dir must be an absolute path, got {str(temp_dir)!r}.")
    if len(str(path)) > MAX_TEMP_DIR_LEN:
        raise ValueError(
            f"ray_temp_dir must be at most {MAX_TEMP_DIR_LEN} characters long (Ray puts Unix "
            f"sockets below it and Linux caps their paths at 107 bytes), got {str(path)!r} "
            f"({len(str(path))} characters)."
        )


def worker_requests(remote_configs: Any, num_workers: int) -> list[dict[str, float]]:
    """Each worker's Ray resource request as Ray's resource names, e.g. ``{"CPU": 1.0}``."""
    configs = remote_configs if isinstance(remote_configs, Sequence) else [remote_configs]
    if isinstance(remote_configs, Sequence) and len(configs) != num_workers:
        raise ValueError(
            f"backend_options['remote_configs'] is a list of {len(configs)} resource requests "
            f"but num_workers is {num_workers}: give one per worker or a single dict."
        )
    if len(configs) == 1:
        configs = configs * num_workers
    requests = []
    for config in configs:
        if not isinstance(config, dict):
            raise TypeError(
                f"backend_options['remote_configs'] must hold dicts, got {type(config).__name__}."
            )
        request = {}
        for key, value in config.items():
            if key in _RESOURCE_NAMES and value:
                request[_RESOURCE_NAMES[key]] = float(value)
            elif key == "resources":
                request.update({name: float(v) for name, v in (value or {}).items()})
        requests.append(request)
    return requests


def check_resources(ray, requests: list[dict[str, float]]) -> None:
    """Raises ``ValueError`` when the workers' requests cannot all be placed on the cluster.

    Ray would otherwise wait forever for resources that no node has. Each worker is placed
    first-fit (largest requests first) on the nodes' total resources.
    """
    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    free = [dict(resources) for resources in nodes]
    order = sorted(range(len(requests)), key=lambda i: -sum(requests[i].values()))
    for i in order:
        request = requests[i]
        for node in free:
            if all(node.get(name, 0.0) >= amount - 1e-9 for name, amount in request.items()):
                for name, amount in request.items():
                    node[name] -= amount
                break
        else:
            totals = [
                {k: v for k, v in n.items() if not k.startswith(("node:", "object_store"))}
                for n in nodes
            ]
            raise ValueError(
                f"The Ray cluster cannot hold the {len(requests)} collector workers: worker {i} "
                f"asks for {request} (backend_options['remote_configs']) and no node has that "
                f"left once the other workers are placed. The nodes' resources: {totals}. "
                "Ask for less per worker (e.g. remote_configs={'num_cpus': 0.5}), use fewer "
                "workers, or start Ray with more (ray.init(num_cpus=...))."
            )
