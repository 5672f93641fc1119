"""Offline IDQL: a diffusion behaviour policy whose samples our critic ranks.

On its own Pendulum-v1 data by default; ``dataset=`` takes a Minari id or a D4RL ``.hdf5``
file instead (``examples/offline_data.py``), ``env_id=`` any continuous-action env.

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
    python examples/idql_offline.py dataset=grl/hopper/sac-mixed-v0   # make_hopper_dataset.py's
    python examples/idql_offline.py dataset=hopper-medium-replay-v2.hdf5 env_id=Hopper-v5
    python examples/idql_offline.py env_id=Hopper-v5   # built-in data, SAC on Hopper
    python examples/idql_offline.py num_candidates=32 temperature=0 seed=1

Output in ``runs/idql_offline/seed<seed>/``: ``dataset/``, ``behaviour_sac/``, ``logs/``,
``checkpoint.pt``, ``learning_curve.png``.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import torch
from _common import (
    Option,
    defaults,
    make_logger,
    output_folder,
    parse_options,
    plot_curves,
    skip_pandas_probe,
)
from easydict import EasyDict
from offline_data import DATASET_OPTIONS, IQL_CRITIC_OPTIONS, load_dataset
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.objectives import SoftUpdate
from tqdm import tqdm

from grl_torchrl.data import normalized_score
from grl_torchrl.objectives import IQLLoss
from grl_torchrl.rl_modules import DoubleQNetwork, GymEnvSimulator, VNetwork, evaluation_summary

# The diffusion behaviour model and IDQL's action selection live in the package, so that a
# user's own training loop imports them from there rather than from this script.
from grl_torchrl.rl_modules.idql import DiffusionBehaviour, IDQLPolicy

OPTIONS = dict(
    DATASET_OPTIONS,
    **IQL_CRITIC_OPTIONS,
    controller_episodes=Option(25, "dataset episodes of the noisy swing-up controller", low=0),
    # training: critic and diffusion model take one gradient step each per step
    hidden_size=Option(256, "critic: two hidden layers; noise network: three", low=1),
    lr=Option(3e-4, "Adam learning rate of critic and diffusion model", low=0, low_open=True),
    diffusion_steps=Option(10, "DDPM steps T", low=1),
    time_embed_dim=Option(
        32,
        "width of the sinusoidal time embedding (even)",
        low=4,
        check=lambda d: None if d % 2 == 0 else "expected an even int >= 4",
    ),
    # action selection
    num_candidates=Option(
        100, "K sampled actions per state (upstream's repeat_sample_batch)", low=1
    ),
    temperature=Option(
        1.0, "softmax(Q / temperature) as upstream's get_action (0: argmax Q)", low=0
    ),
    eval_every=Option(
        5_000, "gradient steps between evaluations (0: final evaluation only)", low=0
    ),
    eval_episodes=Option(10, "episodes per evaluation", low=1),
    num_threads=Option(1, "torch intra-op threads", low=1),
    logger=Option("csv", "logger backend", choices=("csv", "tensorboard")),
    out_dir=Option("", "output folder ('' = runs/idql_offline/seed<seed>)", check=output_folder),
)
config = defaults(OPTIONS)


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


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_options(OPTIONS, argv)
    skip_pandas_probe()
    out_dir = Path(cfg.out_dir or f"runs/idql_offline/seed{cfg.seed}")
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    # 1. The dataset (offline_data.py, shared with iql_offline.py): the built-in one, saved
    # and reloaded, a Minari dataset or a D4RL file; evaluation runs on the dataset's env.
    buffer, info = load_dataset(cfg, out_dir)
    obs_dim, action_spec, env_id = info["obs_dim"], info["action_spec"], info["env_id"]
    act_dim = action_spec.shape[-1]
    logger = make_logger(cfg.logger, out_dir)
    behaviour = info["references"]
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
    losses = {}  # the last gradient step's, logged with each evaluation

    def evaluate(step: int) -> None:
        for tag, (name, policy) in zip(("idql", "k1"), policies.items(), strict=True):
            results = eval_sim.evaluate(policy, num_episodes=cfg.eval_episodes)
            summaries[name] = evaluation_summary(results)
            curves[name][0].append(step)
            curves[name][1].append(summaries[name]["return_mean"])
            for stat in ("return_mean", "return_std"):
                logger.log_scalar(f"eval/{tag}_{stat}", summaries[name][stat], step=step)
        for key, value in losses.items():
            logger.log_scalar(f"train/loss_{key}", value.item(), step=step)
        pbar.set_postfix_str(", ".join(f"{n} {s['return_mean']:.0f}" for n, s in summaries.items()))

    with GymEnvSimulator(env_id, num_envs=cfg.eval_episodes, seed=cfg.seed + 1) as eval_sim:
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

            losses = dict(value=loss_value, qvalue=loss_qvalue, diffusion=loss_diffusion)
            if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.train_steps:
                evaluate(step)
        # The final evaluation (of the untrained policies when train_steps=0).
        evaluate(cfg.train_steps)

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
        title=f"Offline IDQL on {cfg.dataset or env_id} (seed {cfg.seed})",
        xlabel="gradient steps",
        ylabel="episode return",
        references={f"dataset: {name}": value for name, value in behaviour.items()},
    )
    idql_summary, k1_summary = summaries.values()
    ref = info["ref_scores"]
    result = {
        "return_mean": idql_summary["return_mean"],
        "return_std": idql_summary["return_std"],
        "k1_return_mean": k1_summary["return_mean"],
        "k1_return_std": k1_summary["return_std"],
        "normalized_score": normalized_score(idql_summary["return_mean"], ref) if ref else None,
        "k1_normalized_score": normalized_score(k1_summary["return_mean"], ref) if ref else None,
        "env_id": env_id,
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
    score = (
        f" (normalised score {result['normalized_score']:.1f})"
        if result["normalized_score"] is not None
        else ""
    )
    print(
        f"IDQL {cfg.dataset or env_id} seed={cfg.seed}: IDQL (K={cfg.num_candidates}, temperature "
        f"{cfg.temperature:g}) {idql_summary['return_mean']:.1f} ± {idql_summary['return_std']:.1f}"
        f"{score}; diffusion K=1 {k1_summary['return_mean']:.1f} ± {k1_summary['return_std']:.1f}"
        f" over {cfg.eval_episodes} episodes of {env_id} vs the dataset's best reference "
        f"({best_name}) {behaviour[best_name]:.1f} ({others}); {len(buffer)} transitions; "
        f"wall time {result['wall_time_s']:.1f} s -> {out_dir}"
    )
    return result


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
