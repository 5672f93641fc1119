"""The example scripts run end to end in smoke mode (a few hundred steps) and reload.

The learning goals themselves are checked by running the examples with their defaults
(see the README's results table), not here.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from easydict import EasyDict
from tensordict import TensorDict
from torchrl.envs.utils import ExplorationType, set_exploration_type

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def examples():
    """The example modules, imported from examples/ (not a package)."""
    sys.path.insert(0, str(EXAMPLES))
    threads = torch.get_num_threads()  # the examples set their own; give it back afterwards
    try:
        yield {
            name: importlib.import_module(name)
            for name in ("_common", "sac_pendulum", "iql_offline", "one_shot_value")
        }
    finally:
        sys.path.remove(str(EXAMPLES))
        torch.set_num_threads(threads)


def _csv_rows(path: Path) -> list[tuple[int, float]]:
    rows = [line.split(",") for line in path.read_text().splitlines()]
    return [(int(step), float(value)) for step, value in rows]


def _check_outputs(out_dir: Path, metric: str) -> dict:
    assert out_dir.joinpath("learning_curve.png").read_bytes()[:8] == PNG_MAGIC
    rows = _csv_rows(out_dir / "logs" / "scalars" / f"{metric}.csv")
    assert rows and all(torch.isfinite(torch.tensor(v)) for _, v in rows)
    return torch.load(out_dir / "checkpoint.pt", weights_only=True)


def _actor_outputs(actor, obs: torch.Tensor) -> torch.Tensor:
    with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
        td = actor(TensorDict({"observation": obs}, obs.shape[:1]))
    return torch.cat([td["loc"], td["scale"], td["action"]], -1)


SAC_SMOKE = [
    "total_steps=300",
    "random_steps=100",
    "train_freq=50",
    "batch_size=32",
    "hidden_size=32",
    "eval_every=200",
    "eval_episodes=1",
]


def test_sac_pendulum_smoke_reload_and_reproducible(examples, tmp_path):
    sac = examples["sac_pendulum"]
    result = sac.main([*SAC_SMOKE, f"out_dir={tmp_path / 'a'}"])
    assert result["env_steps"] == 300
    ckpt = _check_outputs(tmp_path / "a", "eval/return_mean")
    # Evaluations at 200 steps and the final one at 300, the last one being the result.
    rows = _csv_rows(tmp_path / "a" / "logs" / "scalars" / "eval" / "return_mean.csv")
    assert [step for step, _ in rows] == [200, 300]
    assert rows[-1][1] == pytest.approx(result["return_mean"])

    cfg = EasyDict(ckpt["config"])
    assert cfg.total_steps == 300 and cfg.hidden_size == 32
    spec = result["actor"].spec["action"]
    actor, critic = sac.build_networks(cfg, 3, spec)
    obs, act = torch.randn(16, 3), torch.rand(16, 1) * 4 - 2
    assert not torch.allclose(critic(act, obs), result["critic"](act, obs))  # fresh init differs
    actor.load_state_dict(ckpt["actor"])
    critic.load_state_dict(ckpt["critic"])
    torch.testing.assert_close(_actor_outputs(actor, obs), _actor_outputs(result["actor"], obs))
    torch.testing.assert_close(critic(act, obs), result["critic"](act, obs))

    # Same seed, same everything: the same trained networks and the same score.
    again = sac.main([*SAC_SMOKE, f"out_dir={tmp_path / 'b'}"])
    assert again["return_mean"] == result["return_mean"]
    torch.testing.assert_close(critic(act, obs), again["critic"](act, obs), rtol=0, atol=0)


def test_sac_critic_is_trained_by_the_loss(examples, tmp_path):
    sac = examples["sac_pendulum"]
    seed0 = sac.main([*SAC_SMOKE, "total_steps=100", f"out_dir={tmp_path / 'init'}"])
    # total_steps == random_steps: no gradient step, so the critic is the seed-0 init.
    trained = sac.main([*SAC_SMOKE, f"out_dir={tmp_path / 'trained'}"])
    obs, act = torch.randn(16, 3), torch.rand(16, 1) * 4 - 2
    assert not torch.allclose(seed0["critic"](act, obs), trained["critic"](act, obs))
    assert not torch.allclose(
        _actor_outputs(seed0["actor"], obs), _actor_outputs(trained["actor"], obs)
    )


def test_iql_offline_smoke_and_reload(examples, tmp_path):
    iql = examples["iql_offline"]
    result = iql.main(
        [
            "behaviour_sac_steps=200",
            "random_episodes=1",
            "behaviour_episodes=1",
            "train_steps=100",
            "batch_size=32",
            "hidden_size=32",
            "eval_every=50",
            "eval_episodes=1",
            f"out_dir={tmp_path}",
        ]
    )
    ckpt = _check_outputs(tmp_path, "eval/return_mean")
    # The dataset went to disk and the training read it back: 2 episodes of 200 steps.
    assert result["dataset_size"] == 400
    assert (tmp_path / "dataset" / "storage").is_dir()
    assert set(result["behaviour_returns"]) == {"random", "sac"}

    cfg = EasyDict(ckpt["config"])
    actor, critic = iql.build_networks(cfg, 3, result["actor"].spec["action"])
    value = iql.build_value(cfg, 3)
    actor.load_state_dict(ckpt["actor"])
    critic.load_state_dict(ckpt["critic"])
    value.load_state_dict(ckpt["value"])
    obs, act = torch.randn(16, 3), torch.rand(16, 1) * 4 - 2
    torch.testing.assert_close(_actor_outputs(actor, obs), _actor_outputs(result["actor"], obs))
    torch.testing.assert_close(critic(act, obs), result["critic"](act, obs))
    torch.testing.assert_close(value(obs), result["value"](obs))


def test_behaviour_returns_read_from_the_dataset(examples):
    iql = examples["iql_offline"]
    # Three episodes: two of behaviour 0 (returns -3 and -5) and one of behaviour 1 (-1).
    rewards = torch.tensor([-1.0, -2.0, -5.0, -0.5, -0.5])
    data = TensorDict(
        {
            ("next", "reward"): rewards.unsqueeze(-1),
            "episode": torch.tensor([0, 0, 1, 2, 2]),
            "behaviour": torch.tensor([0, 0, 0, 1, 1]),
        },
        [5],
    )
    assert iql.behaviour_returns(data) == {"random": -4.0, "sac": -1.0}


def test_one_shot_value_smoke_reload_tensorboard(examples, tmp_path):
    osv = examples["one_shot_value"]
    args = ["train_episodes=3", "test_episodes=1", "train_steps=100", "eval_every=50"]
    result = osv.main([*args, "hidden_size=32", f"out_dir={tmp_path}"])
    ckpt = _check_outputs(tmp_path, "test/r2_target")
    assert result["train_states"] == 600 and result["test_states"] == 200
    cfg = EasyDict(ckpt["config"])
    ov = osv.build_value_function(cfg, 3)
    ov.load_state_dict(ckpt["value_function"])
    obs, time_left = torch.randn(16, 3), torch.rand(16, 1)
    torch.testing.assert_close(ov(obs, time_left), result["value_function"](obs, time_left))
    torch.testing.assert_close(
        ov.v_target(obs, time_left), result["value_function"].v_target(obs, time_left)
    )

    osv.main([*args, "hidden_size=8", "logger=tensorboard", f"out_dir={tmp_path / 'tb'}"])
    assert list((tmp_path / "tb" / "logs").glob("events.out.tfevents.*"))


def test_label_returns_matches_a_hand_computation(examples):
    osv = examples["one_shot_value"]
    # Two episodes of lengths 3 and 2 (the second truncated), gamma 0.5.
    data = TensorDict(
        {
            ("next", "reward"): torch.tensor([[1.0], [2.0], [4.0], [8.0], [16.0]]),
            ("next", "done"): torch.tensor([[False], [False], [True], [False], [True]]),
        },
        [5],
    )
    out = osv.label_returns(data, gamma=0.5, horizon=4)
    expected = [1 + 0.5 * 2 + 0.25 * 4, 2 + 0.5 * 4, 4.0, 8 + 0.5 * 16, 16.0]
    assert out["return_to_go"].flatten().tolist() == expected
    assert out["time_left"].flatten().tolist() == [0.75, 0.5, 0.25, 0.5, 0.25]


def test_pd_policy_is_the_documented_controller(examples):
    osv = examples["one_shot_value"]
    theta, theta_dot = torch.tensor([0.1, -3.0, 2.0]), torch.tensor([0.2, 0.0, -1.0])
    obs = torch.stack([theta.cos(), theta.sin(), theta_dot], -1)
    expected = (-(5 * theta + theta_dot)).clamp(-2, 2).unsqueeze(-1)
    torch.testing.assert_close(osv.pd_policy(obs), expected)


def test_options_cast_and_reject(examples):
    common = examples["_common"]
    options = dict(
        steps=common.Option(10, "steps", low=1),
        lr=common.Option(1e-3, "lr", low=0, low_open=True),
        name=common.Option("x", "name"),
        flag=common.Option(True, "flag"),
    )
    cfg = common.parse_options(options, ["steps=20", "lr=0.5", "name=y", "flag=off"])
    assert cfg == {"steps": 20, "lr": 0.5, "name": "y", "flag": False}
    assert common.defaults(options) == {"steps": 10, "lr": 1e-3, "name": "x", "flag": True}
    with pytest.raises(SystemExit, match=r"option steps=many: expected an int >= 1"):
        common.parse_options(options, ["steps=many"])
    with pytest.raises(SystemExit, match="expected key=value"):
        common.parse_options(options, ["steps"])
    with pytest.raises(SystemExit, match="option flag=maybe: expected true or false"):
        common.parse_options(options, ["flag=maybe"])


def test_cli_rejects_an_unknown_key():
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "one_shot_value.py"), "gama=0.9"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "unknown option 'gama'" in proc.stderr
    assert "gamma" in proc.stderr  # the message lists the known keys


OFFLINE_SMOKE = [
    "train_steps=20",
    "eval_every=10",
    "batch_size=16",
    "hidden_size=16",
    "eval_episodes=2",
]
IDQL_DATASET_SMOKE = [*OFFLINE_SMOKE, "diffusion_steps=3", "num_candidates=4"]


def _pendulum_episodes(num_episodes: int = 2):
    from grl_torchrl.rl_modules import GymEnvSimulator

    with GymEnvSimulator("Pendulum-v1", seed=0) as sim:
        return sim.collect_episodes(None, num_episodes=num_episodes, random_policy=True)


def test_iql_and_idql_offline_on_a_local_minari_dataset(examples, tmp_path, monkeypatch):
    from grl_torchrl.data import write_minari_dataset

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))  # never ~/.minari
    write_minari_dataset("test/pendulum/random-v0", _pendulum_episodes(), "Pendulum-v1")
    args = ["dataset=test/pendulum/random-v0"]
    iql = examples["iql_offline"].main([*args, *OFFLINE_SMOKE, f"out_dir={tmp_path / 'iql'}"])
    assert iql["env_id"] == "Pendulum-v1" and iql["dataset_size"] == 400
    assert iql["normalized_score"] is None and iql["behaviour_sac_eval"] is None
    assert set(iql["behaviour_returns"]) == {"episode mean", "episode max"}
    _check_outputs(tmp_path / "iql", "eval/return_mean")
    idql_offline = importlib.import_module("idql_offline")
    idql = idql_offline.main([*args, *IDQL_DATASET_SMOKE, f"out_dir={tmp_path / 'idql'}"])
    assert idql["env_id"] == "Pendulum-v1" and idql["dataset_size"] == 400
    _check_outputs(tmp_path / "idql", "eval/idql_return_mean")


def test_idql_offline_on_a_d4rl_file(examples, tmp_path):
    import h5py

    episodes = _pendulum_episodes()
    path = tmp_path / "pendulum-random-v0.hdf5"
    with h5py.File(path, "w") as file:
        file["observations"] = episodes["observation"].numpy()
        file["actions"] = episodes["action"].numpy()
        file["rewards"] = episodes["next", "reward"].flatten().numpy()
        file["terminals"] = episodes["next", "terminated"].flatten().numpy()
        file["timeouts"] = episodes["next", "truncated"].flatten().numpy()
    idql_offline = importlib.import_module("idql_offline")
    result = idql_offline.main(
        [f"dataset={path}", "env_id=Pendulum-v1", *IDQL_DATASET_SMOKE, f"out_dir={tmp_path}"]
    )
    # no next_observations: each episode's timeout step has no next observation and is dropped
    assert result["dataset_size"] == 400 - 2
    with pytest.raises(SystemExit, match="no such .hdf5 file"):
        idql_offline.main([f"dataset={tmp_path / 'missing.hdf5'}"])


def test_offline_examples_on_hopper(examples, tmp_path):
    """env_id=Hopper-v5: the built-in data's SAC trains on Hopper (the Pendulum controller is
    skipped), and the score is normalised with D4RL's Hopper reference returns."""
    data = ["behaviour_sac_steps=200", "random_episodes=1", "behaviour_episodes=1"]
    idql_offline = importlib.import_module("idql_offline")
    result = idql_offline.main(
        ["env_id=Hopper-v5", *data, *IDQL_DATASET_SMOKE, f"out_dir={tmp_path}"]
    )
    assert result["env_id"] == "Hopper-v5"
    assert set(result["behaviour_returns"]) == {"random", "sac"}  # no controller episodes
    low, high = -20.272305, 3234.3  # d4rl/infos.py REF_MIN_SCORE / REF_MAX_SCORE, hopper
    expected = 100 * (result["return_mean"] - low) / (high - low)
    assert result["normalized_score"] == pytest.approx(expected)
