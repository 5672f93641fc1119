"""IDQL's policy pieces: a diffusion behaviour model and critic-ranked action selection.

IDQL (Hansen-Estruch et al., 2023) keeps IQL's critic and acts with samples of a generative
behaviour model ranked by Q. ``examples/idql_offline.py`` trains both on a dataset; a user
with their own replay buffer needs only :class:`DiffusionBehaviour` (``loss`` to train,
``sample`` to draw), a ``DoubleQNetwork`` trained by IQL, and :class:`IDQLPolicy`.

Why not TorchRL 0.14.1's ``DiffusionActor`` / ``DiffusionBCLoss``: the actor's DDPM has a
fixed linear beta schedule (1e-4 to 0.02 by default) meant for ~100 steps; with IDQL's 5-10
steps it leaves ``alpha_bar_T`` near 0.9, so sampling starts from pure noise the model never
saw in training. It has no action bounds (no map to ``[-1, 1]``, no clipping of the
predicted clean action) and feeds the raw step index to its network. ``DiffusionBCLoss``
calls that actor's ``add_noise``, so it cannot train this model either.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torch import nn

from grl_torchrl.nn import ConcatenateMLP, SinusoidalPosEmb

__all__ = ["DiffusionBehaviour", "IDQLPolicy"]


def _bound(name: str, value, act_dim: int) -> torch.Tensor:
    bound = torch.as_tensor(value, dtype=torch.float32)
    if bound.ndim == 0:
        bound = bound.expand(act_dim).clone()
    if bound.shape != (act_dim,):
        raise ValueError(
            f"DiffusionBehaviour: {name} must be a number or have shape [act_dim] = "
            f"[{act_dim}], got shape {list(bound.shape)}; a spec of a batched env "
            "(num_envs > 1) has bounds [num_envs, act_dim]: take one row (e.g. "
            "spec.space.low[0]) or the spec of a single env"
        )
    if not bool(torch.isfinite(bound).all()):
        raise ValueError(f"DiffusionBehaviour: {name} must be finite, got {bound.tolist()}")
    return bound


class DiffusionBehaviour(nn.Module):
    """A DDPM over actions given the observation: ``loss`` trains it, ``sample`` draws.

    Written by hand rather than taken from ``diffusers`` (whose ``DDPMScheduler`` does the
    same bookkeeping): that package brings ten more distributions (~90 MB) and ~0.5 s of
    import for the ~20 lines of schedule arithmetic below.

    Actions are mapped from ``[low, high]`` to ``[-1, 1]``. The betas discretise the
    variance-preserving SDE with ``beta(s)`` rising linearly from 0.1 to 10 over ``s`` in
    ``[0, 1]`` (IDQL's schedule). Sampling is ancestral: each step predicts the clean action
    from the predicted noise, clips it to ``[-1, 1]`` and draws from the Gaussian posterior
    ``q(x_{t-1} | x_t, x_0)``.

    Args:
        obs_dim, act_dim: sizes of the observation and the action.
        low, high: the action bounds: shape ``[act_dim]`` (or numbers), finite, low < high.
            The spec of a batched env has ``[num_envs, act_dim]`` bounds: take one row.
        steps: the number of diffusion steps ``T``.
        hidden_size: width of the noise network's three hidden layers.
        time_embed_dim: size of the step embedding.

    Examples:
        >>> model = DiffusionBehaviour(3, 1, -2 * torch.ones(1), 2 * torch.ones(1), steps=5,
        ...                            hidden_size=16, time_embed_dim=8)
        >>> model.loss(torch.rand(4, 1), torch.randn(4, 3)).shape
        torch.Size([])
        >>> a = model.sample(torch.randn(6, 3))
        >>> a.shape, bool(a.abs().max() <= 2)
        (torch.Size([6, 1]), True)
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        low: torch.Tensor,
        high: torch.Tensor,
        *,
        steps: int,
        hidden_size: int,
        time_embed_dim: int,
    ) -> None:
        super().__init__()
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"DiffusionBehaviour: steps must be an int >= 1, got {steps!r}")
        self.steps = steps
        for name, size in (("obs_dim", obs_dim), ("act_dim", act_dim)):
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise ValueError(f"DiffusionBehaviour: {name} must be an int >= 1, got {size!r}")
        low, high = _bound("low", low, act_dim), _bound("high", high, act_dim)
        if not bool((low < high).all()):
            raise ValueError(
                f"DiffusionBehaviour: low must be < high everywhere, got {low.tolist()} "
                f"and {high.tolist()}"
            )
        self.register_buffer("low", low)
        self.register_buffer("high", high)
        s = torch.arange(1, steps + 1, dtype=torch.float64) / steps
        # beta_t = 1 - exp(-integral of beta(s) over ((t-1)/T, t/T])
        betas = 1 - torch.exp(-(0.1 / steps + 0.5 * 9.9 * (2 * s - 1 / steps) / steps))
        alphas = 1 - betas
        alpha_bars = torch.cumprod(alphas, 0)
        prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bars[:-1]])
        buffers = dict(
            sqrt_alpha_bar=alpha_bars.sqrt(),
            sqrt_one_minus_alpha_bar=(1 - alpha_bars).sqrt(),
            # posterior q(x_{t-1} | x_t, x_0): mean = coef_x0 * x_0 + coef_xt * x_t
            coef_x0=betas * prev.sqrt() / (1 - alpha_bars),
            coef_xt=(1 - prev) * alphas.sqrt() / (1 - alpha_bars),
            posterior_std=(betas * (1 - prev) / (1 - alpha_bars)).sqrt(),
        )
        for name, value in buffers.items():
            self.register_buffer(name, value.float())
        self.time_encoder = SinusoidalPosEmb(time_embed_dim)
        self.noise_net = ConcatenateMLP(
            hidden_sizes=[act_dim + time_embed_dim + obs_dim, *[hidden_size] * 3],
            output_size=act_dim,
            activation="mish",
        )

    def predict_noise(self, x: torch.Tensor, t: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """The noise network on noisy actions ``x [N, A]`` at steps ``t [N]`` (ints)."""
        return self.noise_net(x, self.time_encoder(t.float()), obs)

    def loss(self, action: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """Noise-prediction MSE at a uniform random step, for actions ``[N, A]``."""
        x0 = 2 * (action - self.low) / (self.high - self.low) - 1
        t = torch.randint(self.steps, x0.shape[:1], device=x0.device)
        noise = torch.randn_like(x0)
        xt = self.sqrt_alpha_bar[t, None] * x0 + self.sqrt_one_minus_alpha_bar[t, None] * noise
        return F.mse_loss(self.predict_noise(xt, t, obs), noise)

    @torch.no_grad()
    def sample(self, obs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One action per row of ``obs [N, S]``, in the env's bounds: ``[N, A]``.

        ``generator`` (optional) draws the noise instead of torch's global RNG.
        """
        x = torch.randn(obs.shape[0], self.low.numel(), generator=generator, device=obs.device)
        for step in reversed(range(self.steps)):
            t = torch.full(obs.shape[:1], step, device=obs.device)
            noise = self.predict_noise(x, t, obs)
            x0 = (x - self.sqrt_one_minus_alpha_bar[step] * noise) / self.sqrt_alpha_bar[step]
            x = self.coef_x0[step] * x0.clamp(-1, 1) + self.coef_xt[step] * x
            if step > 0:
                noise = torch.randn(x.shape, generator=generator, device=x.device)
                x = x + self.posterior_std[step] * noise
        return self.low + (x.clamp(-1, 1) + 1) * (self.high - self.low) / 2


class IDQLPolicy(TensorDictModuleBase):
    """IDQL's action selection: K behaviour samples per state, ranked by the critic.

    Reads ``"observation"`` ``[*B, S]``, writes ``"action"`` ``[*B, A]`` (and, with
    ``return_candidates=True``, ``"candidate_action"`` ``[*B, K, A]`` and
    ``"candidate_q"`` ``[*B, K]``). The K candidates of every state come from one call to
    ``sampler`` on ``B * K`` rows; the critic scores them in one ``compute_mininum_q`` call
    on ``[B, K, ·]`` inputs. ``temperature == 0`` takes the argmax; ``> 0`` samples from
    ``softmax(Q / temperature)``. The actions are samples by design, whatever the
    exploration type (``GymEnvSimulator.evaluate`` sets DETERMINISTIC).

    Args:
        sampler: ``obs [N, S] -> action [N, A]`` (e.g. :meth:`DiffusionBehaviour.sample`).
        critic: a ``DoubleQNetwork`` (anything with ``compute_mininum_q(action, state)``).
        num_candidates: K, an int >= 1.
        temperature: a float >= 0.
        return_candidates: also write the candidates and their Q values.
        generator: draws the softmax choice instead of torch's global RNG.

    Examples:
        >>> from tensordict import TensorDict
        >>> from grl_torchrl.rl_modules import DoubleQNetwork
        >>> q = DoubleQNetwork({"backbone": {"type": "ConcatenateMLP", "args": {
        ...     "hidden_sizes": [1 + 3, 8], "output_size": 1, "activation": "relu"}}})
        >>> policy = IDQLPolicy(lambda obs: torch.rand(len(obs), 1), q, num_candidates=4,
        ...                     return_candidates=True)
        >>> td = policy(TensorDict({"observation": torch.randn(5, 3)}, [5]))
        >>> td["action"].shape, td["candidate_action"].shape, td["candidate_q"].shape
        (torch.Size([5, 1]), torch.Size([5, 4, 1]), torch.Size([5, 4]))
    """

    def __init__(
        self,
        sampler,
        critic: nn.Module,
        num_candidates: int,
        temperature: float = 0.0,
        *,
        return_candidates: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if not callable(sampler):
            raise TypeError(f"IDQLPolicy: sampler must be callable, got {type(sampler).__name__}")
        if not hasattr(critic, "compute_mininum_q"):
            raise TypeError(
                "IDQLPolicy: critic must have compute_mininum_q(action, state) (a "
                f"DoubleQNetwork), got {type(critic).__name__}"
            )
        if isinstance(num_candidates, bool) or not isinstance(num_candidates, int):
            raise TypeError(f"IDQLPolicy: num_candidates must be an int, got {num_candidates!r}")
        if num_candidates < 1:
            raise ValueError(f"IDQLPolicy: num_candidates must be >= 1, got {num_candidates}")
        temperature = float(temperature)
        if not (math.isfinite(temperature) and temperature >= 0):
            raise ValueError(
                f"IDQLPolicy: temperature must be a finite number >= 0, got {temperature}"
            )
        self.sampler = sampler
        self.critic = critic
        self.num_candidates = num_candidates
        self.temperature = temperature
        self.generator = generator
        self.in_keys = ["observation"]
        extra = ["candidate_action", "candidate_q"] if return_candidates else []
        self.out_keys = ["action", *extra]

    @torch.no_grad()  # picking an action is not differentiable (argmax or a draw)
    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        obs = tensordict.get("observation")
        batch, k = obs.shape[:-1], self.num_candidates
        obs = obs.reshape(-1, obs.shape[-1])
        n = obs.shape[0]
        obs_k = obs.unsqueeze(1).expand(n, k, obs.shape[-1])
        candidates = self.sampler(obs_k.reshape(n * k, -1)).reshape(n, k, -1)
        q = self.critic.compute_mininum_q(candidates, obs_k).squeeze(-1)  # [n, k]
        if self.temperature == 0:
            index = q.argmax(-1)
        else:
            probs = torch.softmax(q / self.temperature, -1)
            index = torch.multinomial(probs, 1, generator=self.generator).squeeze(-1)
        action = candidates[torch.arange(n), index]
        tensordict.set("action", action.reshape(*batch, -1))
        if len(self.out_keys) > 1:
            tensordict.set("candidate_action", candidates.reshape(*batch, k, -1))
            tensordict.set("candidate_q", q.reshape(*batch, k))
        return tensordict
