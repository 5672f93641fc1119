"""``REDQLoss`` with all Q evaluations (subsampled target heads included) in one batched pass."""

from __future__ import annotations

from torchrl.objectives import redq

from grl_torchrl.objectives.fused import FusedQMixin, ParamGroups

__all__ = ["REDQLoss"]


class REDQLoss(FusedQMixin, redq.REDQLoss):
    """TorchRL's :class:`~torchrl.objectives.REDQLoss`, same constructor and outputs, fused.

    Accepts our Q ensembles as ``qvalue_network`` (``num_qvalue_nets`` defaults to the
    ensemble's ``num_heads``, see :class:`SACLoss`). The stock loss draws ``sub_sample_len``
    target heads with ``torch.randperm`` and concatenates actor-loss, target and prediction
    parameters into one stack of ``2 N + sub_sample_len`` heads; the fused path evaluates
    that stack with batched matmuls, drawing the same heads from the same RNG state, and
    without concatenating the three parameter sets: each runs on its own slice of the inputs,
    so no weight gradient is computed for the detached (actor loss) and target heads.

    Examples:
        >>> import torch
        >>> from tensordict.nn import NormalParamExtractor, TensorDictModule
        >>> from torchrl.modules import MLP, ProbabilisticActor, TanhNormal
        >>> from grl_torchrl import EnsembleQNetwork
        >>> from grl_torchrl.objectives import REDQLoss
        >>> actor = ProbabilisticActor(TensorDictModule(torch.nn.Sequential(
        ...     MLP(in_features=3, out_features=2, num_cells=[16]), NormalParamExtractor()),
        ...     ["observation"], ["loc", "scale"]), ["loc", "scale"], distribution_class=TanhNormal)
        >>> critic = EnsembleQNetwork({"backbone": {"type": "ConcatenateMLP", "args": {
        ...     "hidden_sizes": [1 + 3, 16], "output_size": 1, "activation": "relu"}}}, num_heads=10)
        >>> loss = REDQLoss(actor, qvalue_network=critic)
        >>> loss.fused, loss.num_qvalue_nets, loss.sub_sample_len
        (True, 10, 2)
    """

    # REDQLoss._make_vmap (TorchRL 0.14): `_vmap_qvalue_network00` (one call per forward, on
    # the concatenated [detached, subsampled target, live] parameter stack); `_vmap_getdist`
    # (the actor) stays stock.
    _fused_hooks = (("_vmap_qvalue_network00", True),)

    def _qvalue_params_cat(self, selected_q_params):
        # REDQLoss._qvalue_params_cat (TorchRL 0.14) concatenates [detached, subsampled target,
        # live] parameters for `_vmap_qvalue_network00`, its only reader; the fused hook takes
        # the groups as they are instead (see ParamGroups).
        if not self.fused:
            return super()._qvalue_params_cat(selected_q_params)
        detached = self._cached_detach_qvalue_network_params
        return ParamGroups(detached, selected_q_params, self.qvalue_network_params)
