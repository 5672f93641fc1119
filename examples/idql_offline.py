"""Offline IDQL on Pendulum-v1: a diffusion behaviour policy whose samples our critic ranks.

IDQL (Hansen-Estruch et al., 2023) keeps IQL's critic and replaces IQL's Gaussian policy by
a generative behaviour model: at each state it draws K candidate actions from a diffusion
model trained by plain behaviour cloning, scores them with Q, and acts with one drawn from
softmax(Q / temperature) (temperature 1 and K = 100, as upstream's ``get_action``) or with
the best one (temperature 0).

1. Dataset (``examples/offline_data.py``, shared with ``iql_offline.py``): whole episodes of
   a uniform random policy, a partly trained SAC actor and a noisy hand-written swing-up
   controller, saved to disk with a TorchRL ``LazyMemmapStorage`` and reloaded. Pendulum-v1
   because the whole run fits in minutes on 2 CPU cores (a MuJoCo task would need hours of
   data collection and training here) while its mixed dataset is already multi-modal: at
   one state the controller's bang-bang +-2 torque, SAC's Gaussian and the uniform actions
   are separate modes, which a Gaussian policy averages and a diffusion model keeps.
2. Critic: IQL's expectile V and TD-learned double Q, built from GenerativeRL-style configs
   (``DoubleQNetwork`` + target, ``VNetwork``) and trained by ``grl_torchrl.objectives.IQLLoss``
   (TorchRL's ``IQLLoss``, same constructor and values, with both Q heads evaluated in one
   batched pass; ``torchrl.objectives.IQLLoss`` with ``qvalue_network=q.heads`` and
   ``q.bind_to_loss(loss)`` works the same way). The loss owns the parameters; ``q`` and a
   second ``DoubleQNetwork`` bound with ``target=True`` compute with them. Only
   ``loss.value_loss`` and ``loss.qvalue_loss`` are called: IDQL's policy is the diffusion
   model, never IQLLoss's advantage-weighted actor, so the loss's actor slot holds a
   parameter-free module that only names the observation key.
3. Behaviour policy: a DDPM (noise prediction, ``diffusion_steps`` steps, IDQL's
   variance-preserving schedule) whose noise network is our ``ConcatenateMLP`` over
   ``[noisy action, SinusoidalPosEmb(step), observation]``.
4. Action selection: :class:`IDQLPolicy`, a TensorDict module that ``GymEnvSimulator.evaluate``
   runs directly. K candidates per state come from one sampling pass over ``[B * K]`` rows
   and are scored by one ``compute_mininum_q`` call on ``[B, K, ·]`` inputs.
5. Evaluation (``evaluate``, 10 episodes): IDQL against the same diffusion model with K = 1
   (no Q selection) and the mean episode return of each behaviour policy in the dataset.
   Evaluation draws from its own generator, so the trained networks are the same however
   often (and with whatever K) they are evaluated.
   ``python examples/iql_offline.py controller_episodes=25`` trains the Gaussian IQL policy
   on the very same dataset.

Run::

    python examples/idql_offline.py
    python examples/idql_offline.py num_candidates=32 temperature=0 seed=1

Output in ``runs/idql_offline/seed<seed>/``: ``dataset/``, ``behaviour_sac/``, ``logs/``,
``checkpoint.pt``, ``learning_curve.png``.
"""

from __future__ import annotations

import math
import time
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from _common import make_logger, parse_overrides, plot_curves, skip_pandas_probe
from easydict import EasyDict
from offline_data import behaviour_returns, build_dataset
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModule, TensorDictModuleBase
from torch import nn
from torchrl.objectives import SoftUpdate
from tqdm import tqdm

from grl_torchrl.nn import ConcatenateMLP, SinusoidalPosEmb
from grl_torchrl.objectives import IQLLoss
from grl_torchrl.rl_modules import DoubleQNetwork, GymEnvSimulator, VNetwork, evaluation_summary

config = EasyDict(
    env_id="Pendulum-v1",
    seed=0,
    # dataset (offline_data.py): the same values give iql_offline.py the same data
    behaviour_sac_steps=3_000,  # env steps of the SAC run that gives the partly trained policy
    random_episodes=25,  # episodes of the uniform random policy
    behaviour_episodes=25,  # episodes of the partly trained SAC policy
    controller_episodes=25,  # episodes of the noisy swing-up controller
    controller_noise=0.5,  # probability of a uniform random action in the controller's steps
    # training: critic and diffusion model take one gradient step each per step
    train_steps=10_000,
    batch_size=256,
    hidden_size=256,  # critic: two hidden layers; noise network: three
    lr=3e-4,
    gamma=0.99,
    tau=0.005,  # Polyak factor of the target critic
    expectile=0.7,
    diffusion_steps=10,  # DDPM steps T
    time_embed_dim=32,
    # action selection
    num_candidates=100,  # K (upstream's repeat_sample_batch)
    temperature=1.0,  # softmax(Q / temperature) as upstream's get_action; 0: argmax Q
    eval_every=5_000,  # training steps between evaluations
    eval_episodes=10,
    num_threads=1,
    logger="csv",
    out_dir="",  # default: runs/idql_offline/seed<seed>
)


def build_critic(cfg: EasyDict, obs_dim: int, act_dim: int) -> tuple[DoubleQNetwork, VNetwork]:
    """IDQL's critic networks from GenerativeRL-style configs (also used to reload)."""
    critic_cfg = EasyDict(
        DoubleQNetwork=dict(
            backbone=dict(
                type="ConcatenateMLP",
                args=dict(
                    hidden_sizes=[act_dim + obs_dim, cfg.hidden_size, cfg.hidden_size],
                    output_size=1,
                    activation="relu",
                ),
            )
        ),
        VNetwork=dict(
            backbone=dict(
                type="MultiLayerPerceptron",
                args=dict(
                    hidden_sizes=[obs_dim, cfg.hidden_size, cfg.hidden_size],
                    output_size=1,
                    activation="relu",
                ),
            )
        ),
    )
    return DoubleQNetwork(critic_cfg.DoubleQNetwork), VNetwork(critic_cfg.VNetwork)


def build_critic_loss(cfg: EasyDict, q: DoubleQNetwork, v: VNetwork) -> tuple[IQLLoss, SoftUpdate]:
    """IQLLoss over ``q`` (which it binds to its parameters) and ``v``, and its Polyak updater.

    Upstream's IDQL critic step in TorchRL terms: ``loss.value_loss`` is upstream's
    ``v_loss`` (expectile ``cfg.expectile`` of ``min(q_target) - V``); ``loss.qvalue_loss``
    regresses both heads onto ``r + gamma (1 - terminated) V(s')`` with V(s') detached, and
    sums the heads' squared errors where upstream averages them (twice upstream's value,
    which Adam does not see); ``SoftUpdate`` is upstream's target momentum update.
    """
    # IQLLoss needs an actor; only its in_keys are read by the two losses called here.
    observation_reader = TensorDictModule(
        nn.Identity(), in_keys=["observation"], out_keys=["_unused"]
    )
    loss = IQLLoss(
        observation_reader,
        qvalue_network=q,
        value_network=v,
        loss_function="l2",
        expectile=cfg.expectile,
    )
    loss.make_value_estimator(gamma=cfg.gamma)
    return loss, SoftUpdate(loss, tau=cfg.tau)


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
        low, high: the action bounds (tensors of shape ``[act_dim]``).
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
        self.register_buffer("low", torch.as_tensor(low, dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(high, dtype=torch.float32))
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
        >>> q, _ = build_critic(EasyDict(hidden_size=8), obs_dim=3, act_dim=1)
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


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_overrides(config, argv)
    skip_pandas_probe()
    out_dir = Path(cfg.out_dir or f"runs/idql_offline/seed{cfg.seed}")
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    # 1. The dataset, saved and reloaded (its recipe is shared with iql_offline.py).
    buffer, info = build_dataset(cfg, out_dir)
    obs_dim, action_spec = info["obs_dim"], info["action_spec"]
    act_dim = action_spec.shape[-1]
    logger = make_logger(cfg.logger, out_dir)
    behaviour = behaviour_returns(buffer[:])
    best_name = max(behaviour, key=behaviour.get)
    for name, value in behaviour.items():
        logger.log_scalar(f"dataset/return_{name}", value, step=0)

    # 2. The critic, trained by IQLLoss; q (bound by the loss) and q_target compute with the
    # loss's parameters.
    q, v = build_critic(cfg, obs_dim, act_dim)
    loss, target_updater = build_critic_loss(cfg, q, v)
    q_target = build_critic(cfg, obs_dim, act_dim)[0].bind_to_loss(loss, target=True)
    # value_loss reaches only V (its Q target is the detached target critic) and qvalue_loss
    # only Q (its V(s') is detached), so one Adam on their sum is two independent ones.
    critic_optimizer = torch.optim.Adam(loss.parameters(), lr=cfg.lr)

    # 3. The diffusion behaviour policy.
    diffusion = DiffusionBehaviour(
        obs_dim,
        act_dim,
        action_spec.space.low,
        action_spec.space.high,
        steps=cfg.diffusion_steps,
        hidden_size=cfg.hidden_size,
        time_embed_dim=cfg.time_embed_dim,
    )
    diffusion_optimizer = torch.optim.Adam(diffusion.parameters(), lr=cfg.lr)

    # 4. IDQL's policy, and the same diffusion model without Q selection. Evaluation draws
    # from its own generator, so the trained networks do not depend on how (or how often)
    # they are evaluated.
    eval_rng = torch.Generator().manual_seed(cfg.seed + 1)
    sampler = partial(diffusion.sample, generator=eval_rng)
    idql = IDQLPolicy(sampler, q_target, cfg.num_candidates, cfg.temperature, generator=eval_rng)
    k1 = IDQLPolicy(sampler, q_target, 1)
    policies = {f"IDQL (K={cfg.num_candidates})": idql, "diffusion, K=1": k1}

    curves = {name: ([], []) for name in policies}
    summaries = {}
    with GymEnvSimulator(cfg.env_id, num_envs=cfg.eval_episodes, seed=cfg.seed + 1) as eval_sim:
        pbar = tqdm(range(1, cfg.train_steps + 1), desc="IDQL", unit="step")
        for step in pbar:
            batch = buffer.sample(cfg.batch_size)
            loss_value, _ = loss.value_loss(batch)
            loss_qvalue, _ = loss.qvalue_loss(batch)
            critic_optimizer.zero_grad(set_to_none=True)
            (loss_value + loss_qvalue).backward()
            critic_optimizer.step()
            target_updater.step()

            loss_diffusion = diffusion.loss(batch["action"], batch["observation"])
            diffusion_optimizer.zero_grad(set_to_none=True)
            loss_diffusion.backward()
            diffusion_optimizer.step()

            if step % cfg.eval_every == 0 or step == cfg.train_steps:
                for tag, (name, policy) in zip(("idql", "k1"), policies.items(), strict=True):
                    results = eval_sim.evaluate(policy, num_episodes=cfg.eval_episodes)
                    summaries[name] = evaluation_summary(results)
                    curves[name][0].append(step)
                    curves[name][1].append(summaries[name]["return_mean"])
                    for stat in ("return_mean", "return_std"):
                        logger.log_scalar(f"eval/{tag}_{stat}", summaries[name][stat], step=step)
                losses = dict(value=loss_value, qvalue=loss_qvalue, diffusion=loss_diffusion)
                for key, value in losses.items():
                    logger.log_scalar(f"train/loss_{key}", value.item(), step=step)
                pbar.set_postfix_str(
                    ", ".join(f"{n} {s['return_mean']:.0f}" for n, s in summaries.items())
                )

    torch.save(
        {
            "config": dict(cfg),
            "diffusion": diffusion.state_dict(),
            "critic": q.state_dict(),
            "critic_target": q_target.state_dict(),
            "value": v.state_dict(),
        },
        out_dir / "checkpoint.pt",
    )
    plot_curves(
        out_dir / "learning_curve.png",
        curves,
        title=f"Offline IDQL on {cfg.env_id} (seed {cfg.seed})",
        xlabel="gradient steps",
        ylabel="episode return",
        references={f"dataset: {name} policy": value for name, value in behaviour.items()},
    )
    idql_summary, k1_summary = summaries.values()
    result = {
        "return_mean": idql_summary["return_mean"],
        "return_std": idql_summary["return_std"],
        "k1_return_mean": k1_summary["return_mean"],
        "k1_return_std": k1_summary["return_std"],
        "behaviour_returns": behaviour,
        "best_behaviour": best_name,
        "dataset_size": len(buffer),
        "wall_time_s": time.perf_counter() - start,
        "out_dir": out_dir,
        "policy": idql,
        "diffusion": diffusion,
        "critic": q,
        "critic_target": q_target,
        "value": v,
    }
    others = ", ".join(f"{k} {x:.1f}" for k, x in behaviour.items() if k != best_name)
    print(
        f"IDQL {cfg.env_id} seed={cfg.seed}: IDQL (K={cfg.num_candidates}, temperature "
        f"{cfg.temperature:g}) {idql_summary['return_mean']:.1f} ± {idql_summary['return_std']:.1f}"
        f"; diffusion K=1 {k1_summary['return_mean']:.1f} ± {k1_summary['return_std']:.1f}"
        f" over {cfg.eval_episodes} episodes vs best behaviour policy in the dataset "
        f"({best_name}) {behaviour[best_name]:.1f} ({others}); {len(buffer)} transitions; "
        f"wall time {result['wall_time_s']:.1f} s -> {out_dir}"
    )
    return result


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
