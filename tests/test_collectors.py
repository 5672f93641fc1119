"""make_collector on TorchRL's process backend: seeding, layout, faults, lifetime, arguments.

The Ray backend is tested in test_collectors_ray.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch
from collector_helpers import FAILING_ENV_ID, failing_policy, tanh_policy
from tensordict import TensorDictBase
from torchrl.collectors import MultiSyncCollector

from grl_torchrl.rl_modules import (
    CollectorWorkerError,
    GymEnvSimulator,
    make_collector,
    to_simulator_layout,
)
from grl_torchrl.rl_modules.collectors import make_worker_env

REPO = Path(__file__).resolve().parents[1]


def descendants(pid: int | None = None) -> set[int]:
    """Every live process below ``pid`` (default: this one), read from /proc.

    multiprocessing's ``resource_tracker`` is left out: the first spawned process starts
    it and it lives as long as the interpreter, collectors or not.
    """
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z":  # a zombie has exited; only its exit status is left
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = set(), [os.getpid() if pid is None else pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return {pid for pid in found if b"resource_tracker" not in _cmdline(pid)}


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def assert_same_data(flat: TensorDictBase, ref: TensorDictBase) -> None:
    """Every entry bit for bit, trajectory ids up to a one-to-one renaming."""
    keys = {k for k in ref.keys(True, True) if k != ("collector", "traj_ids")}
    assert keys == {k for k in flat.keys(True, True) if k != ("collector", "traj_ids")}
    for key in keys:
        assert flat[key].dtype == ref[key].dtype, key
        assert torch.equal(flat[key], ref[key]), key


def assert_same_trajectories(ours: torch.Tensor, ref: torch.Tensor) -> None:
    pairs = set(zip(ours.tolist(), ref.tolist(), strict=True))
    assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})


def test_seeded_workers_equal_the_in_process_simulator_and_take_pushed_weights():
    # 2 workers x 4 envs, seed 3  ==  GymEnvSimulator(num_envs=8, seed=3), over two batches
    # of 120 steps per env: every env's first episode is truncated at step 200 inside the
    # second batch, so the seeded resets inside the workers are compared too.
    policy = tanh_policy()
    with make_collector(
        "Pendulum-v1", policy, num_workers=2, envs_per_worker=4, frames_per_batch=8 * 120, seed=3
    ) as collector:
        assert isinstance(collector, MultiSyncCollector)
        batches = iter(collector)
        ours = [next(batches).clone() for _ in range(2)]
        # then new weights, pushed to the workers, act from the next batch on
        with torch.no_grad():
            policy.module[0].weight.mul_(-1.0)
            policy.module[0].bias.fill_(0.25)
        collector.update_policy_weights_(policy)
        after = next(batches).clone()
    assert [b.batch_size for b in ours] == [torch.Size([2, 4, 120])] * 2
    with GymEnvSimulator("Pendulum-v1", num_envs=8, seed=3) as sim:
        refs = [sim.collect_steps(tanh_policy(), num_steps=8 * 120) for _ in range(2)]
    assert bool(refs[1]["next", "truncated"].any())  # the episode ends were covered
    flats = [to_simulator_layout(b) for b in ours]
    for flat, ref in zip(flats, refs, strict=True):
        assert_same_data(flat, ref)
    assert_same_trajectories(
        torch.cat([f["collector", "traj_ids"] for f in flats]),
        torch.cat([r["collector", "traj_ids"] for r in refs]),
    )
    with torch.no_grad():
        new = policy(after.select("observation").clone())["action"]
        old = tanh_policy()(after.select("observation").clone())["action"]
    assert torch.equal(after["action"], new) and not torch.equal(after["action"], old)
    assert not descendants()


def test_random_actions_are_seeded_per_worker():
    # seed=s seeds worker w with s + w (one env per worker): worker 1 of a seed-7 run must
    # draw exactly what worker 0 of a seed-8 run draws (another run, other processes),
    # and the two workers of one run must draw apart.
    def collect(seed):
        with make_collector(
            "Pendulum-v1", None, num_workers=2, frames_per_batch=20, total_frames=20, seed=seed
        ) as collector:
            return next(iter(collector)).clone()

    seven, eight = collect(7), collect(8)
    assert_same_data(seven[1], eight[0])
    assert not torch.equal(seven["action"][0], seven["action"][1])
    assert not descendants()


@pytest.mark.parametrize(
    ("env_id", "policy", "type_name", "message"),
    [
        (FAILING_ENV_ID, None, "SimulatorCrash", "simulator crashed at step 5"),
        ("Pendulum-v1", "failing", "PolicyCrash", "policy crashed at call 4"),
    ],
    ids=["env-error", "policy-error"],
)
def test_worker_errors_reach_the_caller(env_id, policy, type_name, message):
    policy = failing_policy(4) if policy == "failing" else policy
    collector = make_collector(env_id, policy, num_workers=2, frames_per_batch=4, seed=0)
    with pytest.raises(CollectorWorkerError) as info:
        for _ in collector:
            pass
    err = info.value
    assert (err.type_name, err.message) == (type_name, message)
    assert f"{type_name}: {message}" in str(err) and err.worker in (0, 1)
    assert type_name in err.remote_traceback
    collector.close()  # already shut down by the error: a no-op
    assert not descendants()


SCRIPT = """
from grl_torchrl.rl_modules import make_collector

if __name__ == "__main__":
    pids = []
    for name in ("shut down", "alive"):
        collector = make_collector("Pendulum-v1", None, num_workers=2, frames_per_batch=8)
        next(iter(collector))
        pids += [p.pid for p in collector.procs]
        if name == "shut down":
            # TorchRL's own call, not close(): alone, it left the exit hanging as well
            collector.shutdown()
        else:
            keep = collector
    print(" ".join(map(str, pids)), flush=True)
"""


def test_interpreter_exit_with_live_collectors_leaves_no_child(tmp_path):
    script = tmp_path / "exit_with_collector.py"
    script.write_text(SCRIPT)
    # the timeout only guards against a hang: with TorchRL alone the exit never returns
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=REPO
    )
    assert done.returncode == 0, done.stderr[-2000:]
    pids = [int(p) for p in done.stdout.split()]
    assert len(pids) == 4
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()]


def test_close_and_context_manager_leave_no_child():
    collector = make_collector("Pendulum-v1", None, num_workers=2, frames_per_batch=4)
    assert descendants()
    assert bool(collector)  # endless: TorchRL's float __len__ made bool() raise
    collector.close()
    assert not descendants()
    collector.close()  # idempotent


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(num_workers=0), ValueError, "num_workers must be a positive integer, got 0"),
        (dict(num_workers=True), ValueError, "num_workers must be a positive integer, got True"),
        (dict(envs_per_worker=-1), ValueError, "envs_per_worker must be a positive integer"),
        (dict(frames_per_batch=7), ValueError, r"frames_per_batch \(7\) must be a multiple"),
        (dict(backend="threads"), ValueError, r"backend must be one of \('process', 'ray'\)"),
        (dict(env_id="NoSuchEnv-v0"), ValueError, "Unknown gymnasium environment id"),
        (dict(env_id="no_such_module:Env-v0"), ValueError, "Unknown gymnasium environment id"),
        (dict(total_frames=0), ValueError, "total_frames must be a positive integer, got 0"),
        (dict(seed="0"), TypeError, "seed must be an int or None, got '0'"),
        (dict(sync="yes"), TypeError, "sync must be a bool"),
        (dict(max_episode_steps=0), ValueError, "max_episode_steps must be a positive integer"),
        (dict(backend_options=[]), TypeError, "backend_options must be a dict"),
        (dict(ray_temp_dir="/tmp/x"), ValueError, "ray_temp_dir is only used with backend='ray'"),
    ],
)
def test_bad_arguments_raise_before_any_process_starts(kwargs, error, match):
    args = dict(env_id="Pendulum-v1", num_workers=2, frames_per_batch=8) | kwargs
    with pytest.raises(error, match=match):
        make_collector(args.pop("env_id"), None, **args)
    assert not descendants()


def test_worker_env_casts_float64_observations_and_seeds_like_gymnasium():
    # HalfCheetah's observations are float64: the worker env hands float32 copies of what
    # gymnasium's reset(seed=2 + i) gives sub-env i
    env = make_worker_env("HalfCheetah-v5", 2, seed=2, max_episode_steps=None, make_kwargs={})
    obs = env.reset()["observation"]
    assert obs.dtype == torch.float32 and obs.shape == (2, 17)
    for i in range(2):
        reference = gymnasium.make("HalfCheetah-v5")
        expected, _ = reference.reset(seed=2 + i)
        assert expected.dtype == np.float64
        assert torch.equal(obs[i], torch.from_numpy(expected.astype(np.float32)))
    env.close()


def test_to_simulator_layout_rejects_other_shapes():
    with GymEnvSimulator("Pendulum-v1") as sim:
        flat = sim.collect_steps(None, num_steps=4, random_policy=True)
    with pytest.raises(ValueError, match=r"got batch_size \(4,\)"):
        to_simulator_layout(flat)
    with pytest.raises(TypeError, match="batch must be a TensorDict, got Tensor"):
        to_simulator_layout(torch.zeros(2, 3))


def test_sac_workers_example_smoke(tmp_path):
    # a few hundred steps of examples/sac_pendulum_workers.py (its learning result is
    # measured with the defaults, see docs/scaling.rst)
    examples = str(REPO / "examples")
    sys.path.insert(0, examples)
    threads = torch.get_num_threads()
    try:
        import sac_pendulum_workers

        result = sac_pendulum_workers.main(
            [
                "total_steps=200",
                "random_steps=100",
                "batch_size=16",
                "hidden_size=16",
                "eval_every=0",
                "eval_episodes=1",
                f"out_dir={tmp_path}",
            ]
        )
    finally:
        sys.path.remove(examples)
        torch.set_num_threads(threads)
    assert result["env_steps"] == 200 and np.isfinite(result["return_mean"])
    rows = (tmp_path / "logs" / "scalars" / "eval" / "return_mean.csv").read_text().split()
    assert [row.split(",")[0] for row in rows] == ["200"]
    assert (tmp_path / "checkpoint.pt").is_file()
    assert not descendants()
