"""``TD3Loss`` with the Q ensemble (and its target) evaluated in one batched pass."""

from __future__ import annotations

from torchrl.objectives import td3

from grl_torchrl.objectives.fused import FusedQMixin

__all__ = ["TD3Loss"]


class TD3Loss(FusedQMixin, td3.TD3Loss):
    """TorchRL's :class:`~torchrl.objectives.TD3Loss`, same constructor and outputs, fused.

    Accepts our Q ensembles as ``qvalue_network`` (see :class:`SACLoss`).

    Examples:
        >>> import torch
        >>> from tensordict.nn import TensorDictModule
        >>> from torchrl.data import Bounded
        >>> from torchrl.modules import MLP
        >>> from grl_torchrl import DoubleQNetwork
        >>> from grl_torchrl.objectives import TD3Loss
        >>> actor = TensorDictModule(MLP(in_features=3, out_features=1, num_cells=[16]),
        ...                          ["observation"], ["action"])
        >>> critic = DoubleQNetwork({"backbone": {"type": "ConcatenateMLP", "args": {
        ...     "hidden_sizes": [1 + 3, 16], "output_size": 1, "activation": "relu"}}})
        >>> loss = TD3Loss(actor, qvalue_network=critic, action_spec=Bounded(-1.0, 1.0, (1,)))
        >>> target = loss.target_qvalue_network_params.values(True, True)
        >>> loss.fused, sum(t.numel() for t in target) == sum(p.numel() for p in critic.parameters())
        (True, True)
    """

    # TD3Loss._make_vmap (TorchRL 0.14): `_vmap_qvalue_network00` (inputs expanded to the
    # heads); `_vmap_actor_network00` stays stock.
    _fused_hooks = (("_vmap_qvalue_network00", True),)
