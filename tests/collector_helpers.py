"""Envs and policies that fail on purpose, for tests/test_collectors*.py.

They live in an importable module (not in the test files) because collector workers
rebuild them from their names: a spawned process imports this module from the driver's
``sys.path``, a Ray worker from the ``PYTHONPATH`` that ``make_collector`` gives it.
"""

from __future__ import annotations

import gymnasium
import torch
from gymnasium.envs.classic_control.pendulum import PendulumEnv
from tensordict.nn import TensorDictModule
from torch import nn

FAILING_ENV_ID = "collector_helpers:FailingPendulum-v0"


class SimulatorCrash(Exception):
    """What the failing env raises: a class of ours, so its name proves where it came from."""


class PolicyCrash(Exception):
    """What the failing policy raises."""


class FailingPendulum(PendulumEnv):
    """Pendulum whose ``fail_at``-th step raises ``SimulatorCrash``."""

    def __init__(self, fail_at: int = 5, **kwargs):
        super().__init__(**kwargs)
        self.fail_at, self.steps = fail_at, 0

    def step(self, action):
        self.steps += 1
        if self.steps == self.fail_at:
            raise SimulatorCrash(f"simulator crashed at step {self.steps}")
        return super().step(action)


class FailingNet(nn.Module):
    """A linear policy whose ``fail_at``-th call raises ``PolicyCrash``."""

    def __init__(self, fail_at: int):
        super().__init__()
        self.linear = nn.Linear(3, 1)
        self.fail_at, self.calls = fail_at, 0

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.fail_at:
            raise PolicyCrash(f"policy crashed at call {self.calls}")
        return self.linear(obs).tanh()


def failing_policy(fail_at: int) -> TensorDictModule:
    return TensorDictModule(FailingNet(fail_at), in_keys=["observation"], out_keys=["action"])


def tanh_policy(seed: int = 0) -> TensorDictModule:
    """A deterministic policy whose actions stay inside Pendulum's bounds ([-1, 1])."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(3, 1), nn.Tanh())
    return TensorDictModule(net, in_keys=["observation"], out_keys=["action"])


if "FailingPendulum-v0" not in gymnasium.registry:
    gymnasium.register("FailingPendulum-v0", entry_point=FailingPendulum, max_episode_steps=200)
