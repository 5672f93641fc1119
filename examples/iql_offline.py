"""Offline IQL, with the critic trained the way GenerativeRL's pipelines train it.

On its own Pendulum-v1 data by default; ``dataset=`` takes a Minari id or a D4RL ``.hdf5``
file instead (``examples/offline_data.py``), ``env_id=`` any continuous-action env.

1. Behaviour policies. ``random``: uniform random actions. ``sac``: a partly trained SAC
   actor, from a short run of ``examples/sac_pendulum.py`` (``behaviour_sac_steps`` env
   steps, imported and run here). Both act stochastically while the dataset is collected.
   ``controller_episodes=25`` adds ``idql_offline.py``'s noisy swing-up controller, so that
   both examples train on the same data (``examples/offline_data.py`` holds the recipe).
2. Dataset: whole episodes of each policy collected with ``GymEnvSimulator``, written to
   disk with a TorchRL ``LazyMemmapStorage`` (``ReplayBuffer.dumps``) and read back
   (``ReplayBuffer.loads``); training samples only the reloaded copy.
3. IQL (Kostrikov et al., 2021) in the upstream style (IDQL / QGPO / SRPO critic step):
   ``VNetwork`` by expectile regression (tau = 0.7) onto the minimum of the target
   ``DoubleQNetwork`` heads; ``DoubleQNetwork`` by TD regression onto
   ``r + gamma (1 - terminated) V(s')``; Polyak-averaged target critic; then an
   advantage-weighted policy (AWR: ``exp(beta * (Q - V))`` clipped, times the log-likelihood
   of the dataset action). Written out with the upstream call style (``q.compute_double_q``,
   ``q.compute_mininum_q``, ``v(state)``) rather than ``torchrl.objectives.IQLLoss``,
   because reproducing those pipelines' update order is the point of this example.
4. Evaluation with ``GymEnvSimulator.evaluate`` (deterministic actions, 10 episodes),
   compared with the mean episode return of each behaviour policy in the dataset.

Run::

    python examples/iql_offline.py
    python examples/iql_offline.py dataset=grl/hopper/sac-mixed-v0   # make_hopper_dataset.py's
    python examples/iql_offline.py dataset=hopper-medium-replay-v2.hdf5 env_id=Hopper-v5
    python examples/iql_offline.py env_id=Hopper-v5   # built-in data, SAC on Hopper
    python examples/iql_offline.py beta=1.0 train_steps=20000
    python examples/iql_offline.py controller_episodes=25   # idql_offline.py's dataset

Output in ``runs/iql_offline/seed<seed>/``: ``dataset/`` (the saved buffer), ``behaviour_sac/``
(the SAC run), ``logs/``, ``checkpoint.pt``, ``learning_curve.png``.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
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
from offline_data import DATASET_OPTIONS, IQL_CRITIC_OPTIONS, behaviour_returns, load_dataset  # noqa: F401 (tests read behaviour_returns here)
from sac_pendulum import build_networks
from tensordict import TensorDict
from tqdm import tqdm

from grl_torchrl.data import normalized_score
from grl_torchrl.rl_modules import GymEnvSimulator, VNetwork, evaluation_summary

OPTIONS = dict(
    DATASET_OPTIONS,
    **IQL_CRITIC_OPTIONS,
    hidden_size=Option(256, "actor, critic and V: two hidden layers of this width", low=1),
    lr=Option(3e-4, "Adam learning rate of actor, critic and V", low=0, low_open=True),
    beta=Option(3.0, "inverse temperature of the advantage weights (0: behaviour cloning)", low=0),
    max_weight=Option(
        100.0, "clip of exp(beta * advantage) (inf: no clip)", low=0, low_open=True, high=math.inf
    ),
    eval_every=Option(
        1_000, "gradient steps between evaluations (0: final evaluation only)", low=0
    ),
    eval_episodes=Option(10, "episodes per evaluation", low=1),
    num_threads=Option(1, "torch intra-op threads", low=1),
    logger=Option("csv", "logger backend", choices=("csv", "tensorboard")),
    out_dir=Option("", "output folder ('' = runs/iql_offline/seed<seed>)", check=output_folder),
)
config = defaults(OPTIONS)


def build_value(cfg: EasyDict, obs_dim: int) -> VNetwork:
    """V(s) with the upstream MLP config (also used to reload a checkpoint)."""
    return VNetwork(
        {
            "backbone": {
                "type": "MultiLayerPerceptron",
                "args": {
                    "hidden_sizes": [obs_dim, cfg.hidden_size, cfg.hidden_size],
                    "output_size": 1,
                    "activation": "relu",
                },
            }
        }
    )


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_options(OPTIONS, argv)
    skip_pandas_probe()
    out_dir = Path(cfg.out_dir or f"runs/iql_offline/seed{cfg.seed}")
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    # 1-2. The dataset: the built-in one (behaviour policies, saved and reloaded), a Minari
    # dataset or a D4RL file (offline_data.py); evaluation runs on the dataset's env.
    buffer, info = load_dataset(cfg, out_dir)
    sac, obs_dim, action_spec = info["sac"], info["obs_dim"], info["action_spec"]
    env_id = info["env_id"]
    logger = make_logger(cfg.logger, out_dir)
    behaviour = info["references"]
    best_name = max(behaviour, key=behaviour.get)
    for name, value in behaviour.items():
        logger.log_scalar(f"dataset/return_{name}", value, step=0)

    # 3. IQL: value, double critic (+ Polyak target) and policy, each with its own Adam.
    actor, critic = build_networks(cfg, obs_dim, action_spec)
    value = build_value(cfg, obs_dim)
    critic_target = copy.deepcopy(critic).requires_grad_(False)
    # torchrl's SoftUpdate needs a LossModule; the upstream loop keeps a plain target copy.
    online = TensorDict.from_module(critic).data
    target = TensorDict.from_module(critic_target).data
    v_optimizer = torch.optim.Adam(value.parameters(), lr=cfg.lr)
    q_optimizer = torch.optim.Adam(critic.parameters(), lr=cfg.lr)
    pi_optimizer = torch.optim.Adam(actor.parameters(), lr=cfg.lr)
    # As in the IQL paper: the policy's learning rate decays to 0 (cosine) over training.
    pi_schedule = torch.optim.lr_scheduler.CosineAnnealingLR(pi_optimizer, cfg.train_steps)

    curves = {"IQL policy": ([], [])}
    losses = {}  # the last gradient step's, logged with each evaluation

    def evaluate(step: int) -> dict:
        summary = evaluation_summary(eval_sim.evaluate(actor, num_episodes=cfg.eval_episodes))
        curves["IQL policy"][0].append(step)
        curves["IQL policy"][1].append(summary["return_mean"])
        logger.log_scalar("eval/return_mean", summary["return_mean"], step=step)
        logger.log_scalar("eval/return_std", summary["return_std"], step=step)
        for name, loss in losses.items():
            logger.log_scalar(f"train/loss_{name}", loss.item(), step=step)
        pbar.set_postfix_str(f"last eval {summary['return_mean']:.0f}")
        return summary

    with GymEnvSimulator(env_id, seed=cfg.seed + 1) as eval_sim:
        pbar = tqdm(range(1, cfg.train_steps + 1), desc="IQL", unit="step")
        for step in pbar:
            batch = buffer.sample(cfg.batch_size)
            state, action = batch["observation"], batch["action"]

            # V step: expectile regression onto min_i Q_target_i(s, a).
            with torch.no_grad():
                q_target = critic_target.compute_mininum_q(action, state)
            diff = q_target - value(state)
            weight = torch.abs(cfg.expectile - (diff < 0).float())
            v_loss = (weight * diff.pow(2)).mean()
            v_optimizer.zero_grad(set_to_none=True)
            v_loss.backward()
            v_optimizer.step()

            # Q step: TD regression of both heads onto r + gamma (1 - terminated) V(s').
            with torch.no_grad():
                not_terminated = 1.0 - batch["next", "terminated"].float()
                next_value = value(batch["next", "observation"])
                td_target = batch["next", "reward"] + cfg.gamma * not_terminated * next_value
            q1, q2 = critic.compute_double_q(action, state)
            q_loss = (F.mse_loss(q1, td_target) + F.mse_loss(q2, td_target)) / 2
            q_optimizer.zero_grad(set_to_none=True)
            q_loss.backward()
            q_optimizer.step()
            target.lerp_(online, cfg.tau)

            # Policy step: advantage-weighted log-likelihood of the dataset action.
            with torch.no_grad():
                advantage = q_target - value(state)
                awr_weight = torch.exp(cfg.beta * advantage).clamp(max=cfg.max_weight)
            log_prob = actor.get_dist(batch).log_prob(action)
            pi_loss = -(awr_weight.squeeze(-1) * log_prob).mean()
            pi_optimizer.zero_grad(set_to_none=True)
            pi_loss.backward()
            pi_optimizer.step()
            pi_schedule.step()

            losses = {"v": v_loss, "q": q_loss, "pi": pi_loss}
            if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.train_steps:
                evaluate(step)
        # The final evaluation (of the untrained policy when train_steps=0).
        summary = evaluate(cfg.train_steps)

    torch.save(
        {
            "config": dict(cfg),
            "actor": actor.state_dict(),
            "critic": critic.state_dict(),
            "value": value.state_dict(),
        },
        out_dir / "checkpoint.pt",
    )
    plot_curves(
        out_dir / "learning_curve.png",
        curves,
        title=f"Offline IQL on {cfg.dataset or env_id} (seed {cfg.seed})",
        xlabel="gradient steps",
        ylabel="episode return",
        references={f"dataset: {name}": value for name, value in behaviour.items()},
    )
    learned = summary["return_mean"]
    ref = info["ref_scores"]
    result = {
        "return_mean": learned,
        "return_std": summary["return_std"],
        "behaviour_returns": behaviour,
        "best_behaviour": best_name,
        "behaviour_sac_eval": sac["return_mean"] if sac else None,
        "normalized_score": normalized_score(learned, ref) if ref else None,
        "env_id": env_id,
        "dataset_size": len(buffer),
        "wall_time_s": time.perf_counter() - start,
        "out_dir": out_dir,
        "actor": actor,
        "critic": critic,
        "value": value,
    }
    others = ", ".join(f"{k} {v:.1f}" for k, v in behaviour.items() if k != best_name)
    sac_note = (
        f"; the SAC behaviour actor scores {sac['return_mean']:.1f} with deterministic actions"
        if sac
        else ""
    )
    score = (
        f" (normalised score {result['normalized_score']:.1f})"
        if result["normalized_score"] is not None
        else ""
    )
    print(
        f"IQL {cfg.dataset or env_id} seed={cfg.seed}: learned policy {learned:.1f} "
        f"± {summary['return_std']:.1f}{score} over {cfg.eval_episodes} episodes of {env_id} vs "
        f"the dataset's best reference ({best_name}) {behaviour[best_name]:.1f} ({others}{sac_note}); "
        f"{len(buffer)} transitions; wall time {result['wall_time_s']:.1f} s -> {out_dir}"
    )
    return result


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
