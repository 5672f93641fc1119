"""grl_torchrl.data's D4RL loader on small hand-made files in D4RL's layout."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from grl_torchrl.data import D4RLExperienceReplay, read_d4rl_hdf5

# 10 rows: episode 0 = rows 0-3 (terminal at 3), episode 1 = rows 4-7 (timeout at 7),
# episode 2 = rows 8-9 (the file ends inside it).
N = 10
TERMINALS = np.array([0, 0, 0, 1, 0, 0, 0, 0, 0, 0], dtype=bool)
TIMEOUTS = np.array([0, 0, 0, 0, 0, 0, 0, 1, 0, 0], dtype=bool)


def _arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return dict(
        observations=rng.normal(size=(N, 3)),  # float64, as D4RL's files hold them
        actions=rng.uniform(-1, 1, size=(N, 2)).astype(np.float32),
        rewards=rng.normal(size=N),
        terminals=TERMINALS,
        timeouts=TIMEOUTS,
        next_observations=rng.normal(size=(N, 3)),
    )


def _write(path, arrays: dict[str, np.ndarray]) -> str:
    with h5py.File(path, "w") as file:
        for key, value in arrays.items():
            file.create_dataset(key, data=value)
    return str(path)


def test_without_next_observations_follows_d4rl_qlearning_rules(tmp_path):
    arrays = _arrays()
    del arrays["next_observations"]
    data = read_d4rl_hdf5(_write(tmp_path / "d.hdf5", arrays), keep_float64=True)
    # d4rl.qlearning_dataset keeps i in range(N - 1) except timeout rows: drops 7 and 9.
    rows = [0, 1, 2, 3, 4, 5, 6, 8]
    obs = arrays["observations"]
    assert torch.equal(data["observation"], torch.as_tensor(obs[rows]))
    assert torch.equal(data["next", "observation"], torch.as_tensor(obs[[r + 1 for r in rows]]))
    assert torch.equal(data["action"], torch.as_tensor(arrays["actions"][rows]))
    assert torch.equal(data["next", "reward"].squeeze(-1), torch.as_tensor(arrays["rewards"][rows]))
    assert data["episode"].tolist() == [0, 0, 0, 0, 1, 1, 1, 2]
    # terminal row 3 terminates; the timeout (7) is never a termination: row 6, the last one
    # kept of episode 1, is truncated, and so is row 8 (the file's last row was dropped)
    assert data["next", "terminated"].squeeze(-1).tolist() == [0, 0, 0, 1, 0, 0, 0, 0]
    assert data["next", "truncated"].squeeze(-1).tolist() == [0, 0, 0, 0, 0, 0, 1, 1]
    assert torch.equal(data["next", "done"], data["next", "terminated"] | data["next", "truncated"])


def test_with_next_observations_keeps_every_row(tmp_path):
    arrays = _arrays()
    data = read_d4rl_hdf5(_write(tmp_path / "d.hdf5", arrays), keep_float64=True)
    assert data.batch_size == torch.Size([N])
    assert torch.equal(data["observation"], torch.as_tensor(arrays["observations"]))
    assert torch.equal(data["next", "observation"], torch.as_tensor(arrays["next_observations"]))
    assert data["next", "terminated"].squeeze(-1).tolist() == TERMINALS.tolist()
    # the timeout and the unfinished last row are truncations
    assert torch.nonzero(data["next", "truncated"].squeeze(-1)).flatten().tolist() == [7, 9]
    assert data["episode"].tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]


def test_float64_becomes_float32_unless_kept(tmp_path):
    arrays = _arrays()
    path = _write(tmp_path / "d.hdf5", arrays)
    data = read_d4rl_hdf5(path)
    for key in ("observation", ("next", "observation"), ("next", "reward")):
        assert data[key].dtype == torch.float32, key
    assert torch.equal(data["observation"], torch.as_tensor(arrays["observations"]).float())
    kept = read_d4rl_hdf5(path, keep_float64=True)
    assert kept["observation"].dtype == kept["next", "reward"].dtype == torch.float64
    assert data["action"].dtype == torch.float32  # float32 in the file: unchanged


def test_replay_buffer_samples_the_file(tmp_path):
    arrays = _arrays()
    buffer = D4RLExperienceReplay(_write(tmp_path / "d.hdf5", arrays), batch_size=4)
    assert len(buffer) == N
    sample = buffer.sample()
    assert sample.batch_size == torch.Size([4])
    observations = torch.as_tensor(arrays["observations"]).float()
    index = sample["index"]
    assert torch.equal(sample["observation"], observations[index])


def test_all_zero_rewards_raise_naming_file_and_key(tmp_path):
    arrays = _arrays()
    arrays["rewards"] = np.zeros(N)
    path = _write(tmp_path / "zeros.hdf5", arrays)
    with pytest.raises(ValueError, match=r"zeros\.hdf5.*'next', 'reward'.*zero"):
        D4RLExperienceReplay(path)


def test_shapes_checked_against_the_env(tmp_path):
    path = _write(tmp_path / "d.hdf5", _arrays())  # observations [N, 3], actions [N, 2]
    with pytest.raises(ValueError, match=r"'action' has per-step shape \(2,\).*\(1,\)"):
        D4RLExperienceReplay(path, env_id="Pendulum-v1")


def test_missing_key_and_bad_shape_raise(tmp_path):
    arrays = _arrays()
    del arrays["timeouts"]
    with pytest.raises(ValueError, match=r"has no \['timeouts'\]"):
        read_d4rl_hdf5(_write(tmp_path / "a.hdf5", arrays))
    arrays = _arrays()
    arrays["rewards"] = np.zeros(N - 1)
    with pytest.raises(ValueError, match=r"'rewards' has shape \(9,\)"):
        read_d4rl_hdf5(_write(tmp_path / "b.hdf5", arrays))
    with pytest.raises(FileNotFoundError, match="nowhere.hdf5"):
        read_d4rl_hdf5(tmp_path / "nowhere.hdf5")
