"""TorchRL's ``ProbabilisticActor`` with a direct ``get_dist`` for the common two-module shape."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import ProbabilisticTensorDictModule, TensorDictModule
from torchrl.envs.utils import exploration_type
from torchrl.modules import ProbabilisticActor as _TorchRLProbabilisticActor

__all__ = ["ProbabilisticActor"]


class ProbabilisticActor(_TorchRLProbabilisticActor):
    """TorchRL's :class:`~torchrl.modules.ProbabilisticActor`, same constructor and outputs.

    TorchRL's losses call ``actor.get_dist(tensordict)`` for every actor evaluation (SAC: two
    per update). The stock method runs the network through ``TensorDictSequential`` and
    ``TensorDictModule`` (key routing, output conversion, interaction-type contexts), which
    costs ~0.2 ms per call on CPU, ~0.37 ms of a ~10.6 ms SAC update (measured,
    ``benchmarks/bench_losses.py``). When the actor has the usual shape, a plain
    :class:`~tensordict.nn.TensorDictModule` (string keys, in place, default method) followed
    by the probabilistic module, this ``get_dist`` calls the network directly, writes its
    outputs into ``tensordict`` as the stock method does, and builds the distribution with
    the probabilistic module's own ``get_dist``: the same distribution, the same values. Any
    other shape, ``tensordict_out`` or keyword arguments, or no exploration type set, takes
    the stock path. Everything else (``forward``, sampling, specs, state dicts) is TorchRL's.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tensordict.nn import NormalParamExtractor, TensorDictModule
        >>> from torchrl.envs.utils import ExplorationType, set_exploration_type
        >>> from torchrl.modules import MLP, TanhNormal
        >>> from grl_torchrl.rl_modules import ProbabilisticActor
        >>> net = torch.nn.Sequential(MLP(in_features=3, out_features=2, num_cells=[8]),
        ...     NormalParamExtractor())
        >>> actor = ProbabilisticActor(TensorDictModule(net, ["observation"], ["loc", "scale"]),
        ...     in_keys=["loc", "scale"], distribution_class=TanhNormal)
        >>> td = TensorDict({"observation": torch.randn(4, 3)}, [4])
        >>> with set_exploration_type(ExplorationType.RANDOM):
        ...     dist = actor.get_dist(td)
        >>> type(dist).__name__, dist.rsample().shape, sorted(td.keys())
        ('TanhNormal', torch.Size([4, 1]), ['loc', 'observation', 'scale'])
    """

    def get_dist(
        self,
        tensordict: TensorDictBase,
        tensordict_out: TensorDictBase | None = None,
        **kwargs: Any,
    ) -> torch.distributions.Distribution:
        parts = self._direct_parts()
        # without an exploration type the stock method sets the module's default one around
        # the network call; only the stock path does that
        if parts is None or tensordict_out is not None or kwargs or exploration_type() is None:
            return super().get_dist(tensordict, tensordict_out, **kwargs)
        network, probabilistic = parts
        inputs = [tensordict.get(key) for key in network.in_keys]
        try:
            outputs = network.module(*inputs)
        except Exception:
            # a missing input key (read as None): let the stock path raise TorchRL's own
            # KeyError naming the key; the check costs nothing when the call succeeds
            if any(value is None for value in inputs):
                return super().get_dist(tensordict, tensordict_out, **kwargs)
            raise
        if isinstance(outputs, torch.Tensor):
            outputs = (outputs,)
        if len(outputs) != len(network.out_keys):
            raise RuntimeError(
                f"{type(self).__name__}: the network returned {len(outputs)} tensors for "
                f"out_keys {network.out_keys}"
            )
        for key, value in zip(network.out_keys, outputs, strict=True):
            tensordict.set(key, value)
        return probabilistic.get_dist(tensordict)

    def _direct_parts(self) -> tuple[TensorDictModule, ProbabilisticTensorDictModule] | None:
        # decided once: the module structure of an actor does not change after construction
        try:
            return self.__dict__["_direct_parts_cache"]
        except KeyError:
            pass
        parts = None
        modules = list(self.module)
        if not self.return_composite and len(modules) == 2:
            network, probabilistic = modules
            if (
                type(network) is TensorDictModule
                and isinstance(probabilistic, ProbabilisticTensorDictModule)
                and network.inplace is True
                and network.method is None
                and not network.method_kwargs
                and not network._get_kwargs  # TensorDictModule's own get_kwargs (no accessor)
                and all(isinstance(k, str) for k in (*network.in_keys, *network.out_keys))
                and "_" not in network.out_keys
            ):
                parts = (network, probabilistic)
        self.__dict__["_direct_parts_cache"] = parts
        return parts
