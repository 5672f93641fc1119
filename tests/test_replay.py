"""Collected data through TorchRL's prioritized replay, priorities updated from a loss.

Needs TorchRL's C++ extension (segment trees), which loads beside the torch build that
``make`` installs (see the Makefile's TORCH_PIN).
"""

import torch
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torchrl.data import LazyTensorStorage, TensorDictPrioritizedReplayBuffer
from torchrl.modules import MLP, ProbabilisticActor, TanhNormal
from torchrl.objectives import SACLoss

from grl_torchrl import DoubleQNetwork, GymEnvSimulator

ALPHA = 0.7


def test_prioritized_replay_of_collected_steps_with_priorities_from_the_loss():
    torch.manual_seed(0)
    with GymEnvSimulator("Pendulum-v1", seed=0) as sim:
        data = sim.collect_steps(None, num_steps=64, random_policy=True)
        spec = sim.env.action_spec
    actor = ProbabilisticActor(
        TensorDictModule(
            torch.nn.Sequential(
                MLP(in_features=3, out_features=2, num_cells=[16]), NormalParamExtractor()
            ),
            ["observation"],
            ["loc", "scale"],
        ),
        in_keys=["loc", "scale"],
        spec=spec,
        distribution_class=TanhNormal,
        return_log_prob=True,
    )
    critic = DoubleQNetwork(
        {
            "backbone": {
                "type": "ConcatenateMLP",
                "args": {"hidden_sizes": [1 + 3, 16], "output_size": 1, "activation": "relu"},
            }
        }
    )
    loss = SACLoss(actor, qvalue_network=critic.heads, action_spec=spec)
    critic.bind_to_loss(loss)
    buffer = TensorDictPrioritizedReplayBuffer(
        alpha=ALPHA,
        beta=0.5,
        storage=LazyTensorStorage(128),
        batch_size=16,
        priority_key="td_error",
    )
    buffer.extend(data)
    sample = buffer.sample()
    assert sample.batch_size == (16,) and "index" in sample.keys()
    loss(sample)  # SACLoss writes each sample's TD error under "td_error"
    td_error = sample["td_error"].detach()
    assert td_error.shape == (16,) and (td_error > 0).all()
    buffer.update_tensordict_priority(sample)
    # the sampler now holds |td_error| ** alpha for the sampled indices (first occurrence
    # of a repeated index may be overwritten by a later one: compare unique ones)
    index = sample["index"]
    last = {int(i): k for k, i in enumerate(index)}
    rows = torch.tensor(list(last.values()))
    stored = torch.tensor(
        [buffer._sampler._sum_tree[int(i)] for i in last]  # private: no public getter
    )
    expected = (td_error[rows] + buffer._sampler._eps).pow(ALPHA)
    torch.testing.assert_close(stored, expected, rtol=1e-4, atol=1e-6)
