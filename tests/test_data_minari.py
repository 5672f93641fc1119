"""grl_torchrl.data's Minari writer and loader on small datasets made here (no download)."""

from __future__ import annotations

import minari
import numpy as np
import pytest
import torch
from torchrl.data.datasets import MinariExperienceReplay as TorchRLMinariExperienceReplay

from grl_torchrl.data import MinariExperienceReplay, check_offline_data, write_minari_dataset
from grl_torchrl.rl_modules import GymEnvSimulator


@pytest.fixture(scope="module")
def minari_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("minari")


@pytest.fixture(autouse=True)
def _datasets_path(minari_dir, monkeypatch):
    # Minari reads MINARI_DATASETS_PATH on every call: never ~/.minari in the tests
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(minari_dir))


def _collect(env_id: str, episodes: int, seed: int = 0, policy=None, **sim_kwargs):
    with GymEnvSimulator(env_id, seed=seed, **sim_kwargs) as sim:
        if policy is None:
            return sim.collect_episodes(None, num_episodes=episodes, random_policy=True)
        return sim.collect_episodes(policy, num_episodes=episodes)


@pytest.fixture(scope="module")
def pendulum_id(minari_dir):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(minari_dir))
        write_minari_dataset("test/pendulum/random-v0", _collect("Pendulum-v1", 3), "Pendulum-v1")
    return "test/pendulum/random-v0"


@pytest.fixture(scope="module")
def hopper_id(minari_dir):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(minari_dir))
        data = _collect("Hopper-v5", 4, double_to_float=False)
        write_minari_dataset(
            "test/hopper/random-v0", data, "Hopper-v5", ref_min_score=-20.0, ref_max_score=3000.0
        )
    return "test/hopper/random-v0"


def _source(dataset_id: str) -> dict[str, np.ndarray]:
    """The dataset as Minari itself reads it, flattened into transitions."""
    episodes = list(minari.load_dataset(dataset_id).iterate_episodes())
    cat = np.concatenate
    return dict(
        observation=cat([ep.observations[:-1] for ep in episodes]),
        next_observation=cat([ep.observations[1:] for ep in episodes]),
        action=cat([ep.actions for ep in episodes]),
        reward=cat([ep.rewards for ep in episodes]),
        terminated=cat([ep.terminations for ep in episodes]),
        truncated=cat([ep.truncations for ep in episodes]),
        episode=cat([np.full(len(ep.rewards), ep.id) for ep in episodes]),
    )


def _load(dataset_id: str, tmp_path, **kwargs) -> MinariExperienceReplay:
    return MinariExperienceReplay(
        dataset_id, batch_size=16, root=tmp_path, load_from_local_minari=True, **kwargs
    )


@pytest.mark.parametrize("name", ["pendulum_id", "hopper_id"])
def test_loader_returns_the_dataset_exactly(name, request, tmp_path):
    dataset_id = request.getfixturevalue(name)
    source = _source(dataset_id)
    data = _load(dataset_id, tmp_path, keep_float64=True)[:]
    assert data.batch_size == torch.Size([len(source["action"])])
    pairs = {
        "observation": "observation",
        ("next", "observation"): "next_observation",
        "action": "action",
        ("next", "reward"): "reward",
        ("next", "terminated"): "terminated",
        ("next", "truncated"): "truncated",
        "episode": "episode",
    }
    for key, name_ in pairs.items():
        expected = torch.as_tensor(source[name_])
        got = data[key].reshape(expected.shape)
        assert got.dtype == expected.dtype, key
        assert torch.equal(got, expected), key
    done = torch.as_tensor(source["terminated"] | source["truncated"])
    assert torch.equal(data["next", "done"].flatten(), done)
    assert int(done.sum()) == len(set(source["episode"].tolist()))  # one done per episode


def test_float64_observations_and_rewards_become_float32(hopper_id, tmp_path):
    source = _source(hopper_id)
    assert source["observation"].dtype == source["reward"].dtype == np.float64
    data = _load(hopper_id, tmp_path)[:]
    for key in ("observation", ("next", "observation"), ("next", "reward")):
        assert data[key].dtype == torch.float32, key
    assert torch.equal(data["observation"], torch.as_tensor(source["observation"]).float())
    assert data["episode"].dtype == torch.int64
    assert data["next", "done"].dtype == torch.bool


def test_torchrl_bug_canary(pendulum_id, tmp_path):
    """Fails the day TorchRL's own class returns the data: then drop the override in
    grl_torchrl/data/minari.py (``_memmap_like_keeps_data``) and this test."""
    stock = TorchRLMinariExperienceReplay(
        pendulum_id, batch_size=4, root=tmp_path / "stock", load_from_local_minari=True
    )[:]
    ours = _load(pendulum_id, tmp_path / "ours")[:]
    assert bool(ours["observation"].any()) and bool(ours["next", "reward"].any())
    stock_is_zero = not any(
        bool(stock[key].any()) for key in ("observation", "action", ("next", "reward"))
    )
    assert stock_is_zero, (
        "TorchRL's MinariExperienceReplay now returns the dataset's data: drop the override "
        "(_memmap_like_keeps_data in grl_torchrl/data/minari.py) and this canary"
    )


def test_metadata_env_and_reference_scores(hopper_id, pendulum_id, tmp_path):
    hopper = _load(hopper_id, tmp_path / "h")
    assert hopper.env_id == "Hopper-v5"
    assert hopper.ref_scores == (-20.0, 3000.0)  # Minari's own reference scores first
    pendulum = _load(pendulum_id, tmp_path / "p")
    assert pendulum.env_id == "Pendulum-v1" and pendulum.ref_scores is None


def test_all_zero_actions_raise_naming_dataset_and_key(tmp_path):
    # two episodes: TorchRL 0.14.1 fails on a one-episode dataset (max(*dict) in a log line)
    data = _collect("Pendulum-v1", 2, policy=lambda obs: torch.zeros(len(obs), 1))
    write_minari_dataset("test/pendulum/zeros-v0", data, "Pendulum-v1")
    with pytest.raises(ValueError, match=r"'test/pendulum/zeros-v0'.*'action'.*zero"):
        _load("test/pendulum/zeros-v0", tmp_path)


def test_shape_guard_names_dataset_and_key(pendulum_id, tmp_path):
    data = _load(pendulum_id, tmp_path)[:]
    with pytest.raises(ValueError, match=r"'p'.*'observation' has per-step shape \(3,\).*\(4,\)"):
        check_offline_data(data, "p", observation_shape=(4,))


def test_writer_refuses_unfinished_episodes():
    with GymEnvSimulator("Pendulum-v1", seed=0) as sim:
        data = sim.collect_steps(None, num_steps=10, random_policy=True)
    with pytest.raises(ValueError, match="whole episodes"):
        write_minari_dataset("test/pendulum/partial-v0", data, "Pendulum-v1")
