"""make_collector on TorchRL's Ray backend, on one machine and on a two-node local cluster.

Marked ``ray`` (``pytest -m "not ray"`` skips them); a plain ``pytest`` runs them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from collector_helpers import FAILING_ENV_ID, failing_policy, tanh_policy
from test_collectors import assert_same_data, descendants

from grl_torchrl.rl_modules import (
    CollectorWorkerError,
    GymEnvSimulator,
    make_collector,
    to_simulator_layout,
)
from grl_torchrl.rl_modules.collectors.ray_support import RaySession

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray


@pytest.fixture
def home(tmp_path, monkeypatch):
    """HOME points at an empty folder, which must still be empty afterwards."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    yield home
    assert not list(home.rglob("*"))


@pytest.fixture
def short_dir():
    # Ray's socket paths must stay short: pytest's tmp_path is too long for them
    with tempfile.TemporaryDirectory(prefix="grlt-", dir="/tmp") as path:
        yield Path(path)


def test_two_node_cluster(home, short_dir, monkeypatch):
    from ray.cluster_utils import Cluster

    # the test cluster writes its address under $RAY_TMPDIR/ray (default /tmp/ray)
    monkeypatch.setenv("RAY_TMPDIR", str(short_dir))
    (short_dir / "ray").mkdir()
    # RaySession sets what make_collector gives a runtime it starts itself: the auth token
    # file in our folder, the driver's sys.path for the workers.
    session = RaySession(short_dir, {})
    cluster = Cluster(
        initialize_head=True,
        head_node_args=dict(num_cpus=1, resources={"head": 1}, temp_dir=str(short_dir)),
    )
    try:
        cluster.add_node(num_cpus=1, resources={"second": 1}, temp_dir=str(short_dir))
        ray.init(address=cluster.address, runtime_env=session.init_config["runtime_env"])
        node_ids = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
        assert len(node_ids) == 2
        policy = tanh_policy()
        with make_collector(
            "Pendulum-v1",
            policy,
            backend="ray",
            num_workers=2,
            envs_per_worker=4,
            frames_per_batch=8 * 40,
            seed=1,
            # one worker pinned to each node by its custom resource
            backend_options={
                "remote_configs": [
                    {"num_cpus": 1, "resources": {"head": 1}},
                    {"num_cpus": 1, "resources": {"second": 1}},
                ]
            },
        ) as collector:
            where = ray.get(
                [
                    actor.__ray_call__.remote(lambda _: ray.get_runtime_context().get_node_id())
                    for actor in collector.remote_collectors
                ]
            )
            batches = iter(collector)
            first = to_simulator_layout(next(batches))
            with torch.no_grad():
                policy.module[0].weight.mul_(-1.0)
                policy.module[0].bias.fill_(0.25)
            collector.update_policy_weights_(policy)
            after = next(batches)
        assert set(where) == node_ids  # two workers, two different nodes
        with GymEnvSimulator("Pendulum-v1", num_envs=8, seed=1) as sim:
            assert_same_data(first, sim.collect_steps(tanh_policy(), num_steps=8 * 40))
        with torch.no_grad():
            for worker in range(2):  # the pushed weights act on both nodes
                data = after[worker]
                expected = policy(data.select("observation").clone())["action"]
                assert torch.equal(data["action"], expected)
                old = tanh_policy()(data.select("observation").clone())["action"]
                assert not torch.equal(data["action"], old)
        assert ray.is_initialized()  # a runtime the caller started stays up
    finally:
        ray.shutdown()
        cluster.shutdown()
        session.close()
    assert not descendants()


def test_seeded_endless_ray_collector_equals_the_simulator_and_keeps_its_files(home, short_dir):
    policy = tanh_policy()
    collector = make_collector(
        "Pendulum-v1",
        policy,
        backend="ray",
        num_workers=2,
        envs_per_worker=4,
        frames_per_batch=8 * 30,
        total_frames=None,  # endless: TorchRL's RayCollector alone stops at once on -1
        seed=5,
        ray_temp_dir=short_dir,
    )
    with collector:
        assert ray.is_initialized() and bool(collector)
        batches = iter(collector)
        ours = [to_simulator_layout(next(batches)) for _ in range(3)]
        assert list(short_dir.glob("session_*/logs"))  # Ray's files are in the given folder
    assert not ray.is_initialized()  # the runtime make_collector started is shut down
    with GymEnvSimulator("Pendulum-v1", num_envs=8, seed=5) as sim:
        for flat in ours:
            assert_same_data(flat, sim.collect_steps(policy, num_steps=8 * 30))
    assert short_dir.is_dir()  # the caller's folder is left in place
    assert not descendants()


def test_default_ray_folder_is_temporary_and_removed(home):
    with make_collector(
        "Pendulum-v1", None, backend="ray", num_workers=1, frames_per_batch=4, total_frames=8
    ) as collector:
        folder = collector._grl["ray_session"].temp_dir
        assert folder.is_relative_to(tempfile.gettempdir()) and list(folder.glob("session_*"))
        assert sum(1 for _ in collector) == 2
    assert not folder.exists() and not ray.is_initialized()
    assert not descendants()


@pytest.mark.parametrize(
    ("env_id", "policy", "type_name", "message"),
    [
        (FAILING_ENV_ID, None, "SimulatorCrash", "simulator crashed at step 5"),
        ("Pendulum-v1", "failing", "PolicyCrash", "policy crashed at call 4"),
    ],
    ids=["env-error", "policy-error"],
)
def test_ray_worker_errors_reach_the_caller(home, env_id, policy, type_name, message):
    policy = failing_policy(4) if policy == "failing" else policy
    collector = make_collector(
        env_id, policy, backend="ray", num_workers=2, frames_per_batch=4, seed=0
    )
    with pytest.raises(CollectorWorkerError) as info:
        for _ in collector:
            pass
    assert (info.value.type_name, info.value.message) == (type_name, message)
    assert f"{type_name}: {message}" in str(info.value)
    collector.close()
    assert not ray.is_initialized()
    assert not descendants()


def test_too_large_resource_request_raises_instead_of_hanging(home):
    with pytest.raises(ValueError, match=r"cannot hold the 3 collector workers.*'CPU': 1\.0"):
        make_collector(
            "Pendulum-v1",
            None,
            backend="ray",
            num_workers=3,
            frames_per_batch=6,
            backend_options={"ray_init_config": {"num_cpus": 2}},
        )
    assert not ray.is_initialized()
    assert not descendants()


def test_ray_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what an import sees without Ray
    with pytest.raises(ImportError, match=r"pip install grl_torchrl\[ray\]"):
        make_collector("Pendulum-v1", None, backend="ray", num_workers=1, frames_per_batch=4)


def test_ray_bad_options_raise_before_ray_starts():
    with pytest.raises(ValueError, match="ray_temp_dir must be at most 40 characters"):
        make_collector(
            "Pendulum-v1",
            None,
            backend="ray",
            num_workers=1,
            frames_per_batch=4,
            ray_temp_dir="/tmp/" + "x" * 60,
        )
    with pytest.raises(ValueError, match="is a list of 1 resource requests but num_workers is 2"):
        make_collector(
            "Pendulum-v1",
            None,
            backend="ray",
            num_workers=2,
            frames_per_batch=4,
            backend_options={"remote_configs": [{"num_cpus": 1}]},
        )
    assert not ray.is_initialized()


QUIET_SCRIPT = """
import sys

sys.path.insert(0, {tests!r})
import torch
from collector_helpers import FAILING_ENV_ID, tanh_policy

from grl_torchrl.rl_modules import make_collector

if __name__ == "__main__":
    torch.set_num_threads(1)
    with make_collector(
        "Pendulum-v1", tanh_policy(), backend="ray", num_workers=2, frames_per_batch=8,
        total_frames=16, seed=0,
    ) as collector:
        print("BATCHES", sum(1 for _ in collector), flush=True)
    # uniform random actions (no policy) on an env that raises at its 5th step
    with make_collector(
        FAILING_ENV_ID, None, backend="ray", num_workers=2, frames_per_batch=4, seed=0
    ) as collector:
        for _ in collector:
            pass
"""

# What a healthy Ray run printed: TorchRL's FutureWarning in each worker, the worker
# collector's 15-line repr (Ray's actor log prefix), TorchRL's weight-sync warnings in
# the driver and the workers, Ray's token-authentication notice.
NOISE = [
    "FutureWarning",
    "missing transforms required by the policy",
    "env=_GymWrapper",
    "td_out=",
    "weight synchronization was initialized",
    "The policy is not an nn.Module",
    "Unsupported source type",
    "Token authentication is enabled",
]


def test_healthy_ray_run_prints_nothing_and_errors_stay_loud(tmp_path):
    script = tmp_path / "quiet_ray.py"
    script.write_text(QUIET_SCRIPT.format(tests=str(Path(__file__).parent)))
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}
    done = subprocess.run(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        timeout=600,  # guards against a hang only
    )
    out = done.stdout
    assert "BATCHES 2" in out, out[-3000:]
    assert [line for line in out.splitlines() if any(n in line for n in NOISE)] == []
    # the failing run raised its worker's error, traceback and all, in the caller
    assert done.returncode == 1
    assert "CollectorWorkerError: SimulatorCrash: simulator crashed at step 5" in out, out[-3000:]
    assert not list(home.rglob("*"))
