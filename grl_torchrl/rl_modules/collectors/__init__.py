"""Collection beyond one process: TorchRL's multi-process and Ray collectors over our envs.

``factory`` holds :func:`make_collector`, ``worker`` what runs in each worker (the env
factory, the worker-side collector class), ``managed`` the ``close()`` / ``atexit`` /
error handling added to TorchRL's collectors, ``ray_support`` Ray's start-up, files and
resource check, ``layout`` the batch -> ``GymEnvSimulator`` layout helper.
"""

from grl_torchrl.rl_modules.collectors.factory import make_collector
from grl_torchrl.rl_modules.collectors.layout import to_simulator_layout
from grl_torchrl.rl_modules.collectors.managed import CollectorWorkerError
from grl_torchrl.rl_modules.collectors.worker import make_worker_env

__all__ = ["CollectorWorkerError", "make_collector", "make_worker_env", "to_simulator_layout"]
