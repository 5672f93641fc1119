"""Seeded batches of random transitions in TorchRL's layout, for the loss and actor tests."""

from __future__ import annotations

import torch
from tensordict import TensorDict


def transition_batch(
    n: int,
    obs_dim: int,
    act_dim: int,
    *,
    seed: int = 1,
    done_prob: float = 0.0,
    action_bound: float = 1.0,
    num_discrete_actions: int = 0,
    condition_dim: int = 0,
) -> TensorDict:
    """``n`` transitions: Gaussian observations and rewards, actions uniform in
    ``[-action_bound, action_bound]`` (one-hot over ``num_discrete_actions`` when given), each
    next state done (and terminated) with probability ``done_prob``, and ``condition`` /
    ``("next", "condition")`` entries when ``condition_dim`` is set."""
    gen = torch.Generator().manual_seed(seed)
    done = torch.rand(n, 1, generator=gen) < done_prob
    if num_discrete_actions:
        index = torch.randint(num_discrete_actions, (n,), generator=gen)
        action = torch.nn.functional.one_hot(index, num_discrete_actions)
    else:
        action = (torch.rand(n, act_dim, generator=gen) * 2 - 1) * action_bound
    td = TensorDict(
        {
            "observation": torch.randn(n, obs_dim, generator=gen),
            "action": action,
            "next": {
                "observation": torch.randn(n, obs_dim, generator=gen),
                "reward": torch.randn(n, 1, generator=gen),
                "done": done,
                "terminated": done.clone(),
                "truncated": torch.zeros_like(done),
            },
        },
        [n],
    )
    if condition_dim:
        td["condition"] = torch.randn(n, condition_dim, generator=gen)
        td["next", "condition"] = torch.randn(n, condition_dim, generator=gen)
    return td
