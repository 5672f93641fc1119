"""The sdist and the wheel build, hold what they should, and install into a clean venv."""

from __future__ import annotations

import email.parser
import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import grl_torchrl

ROOT = Path(__file__).resolve().parents[1]
TORCH_PIN = "torch==2.13.0"  # as in the Makefile: the CPU build pip finds on local disk
SOURCES = sorted(
    p.relative_to(ROOT).as_posix()
    for p in (ROOT / "grl_torchrl").rglob("*")
    if p.is_file() and "__pycache__" not in p.parts and p.suffix in {".py", ".typed"}
)


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``python -m build``: the sdist, then the wheel built from that sdist.

    Build isolation stays on, as for ``pip install .``: it is what proves that
    ``[build-system] requires`` is complete (a ``--no-isolation`` build would quietly use
    whatever setuptools this venv has). It costs a few seconds (a venv plus setuptools,
    from pip's cache after the first run).
    """
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], cwd=ROOT)
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return {"sdist": sdist, "wheel": wheel}


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(zf.read(name).decode())


def test_wheel_holds_the_package_and_nothing_else(dist: dict[str, Path]) -> None:
    wheel = dist["wheel"]
    assert wheel.name == f"grl_torchrl-{grl_torchrl.__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    info = f"grl_torchrl-{grl_torchrl.__version__}.dist-info"
    tops = {n.split("/", 1)[0] for n in names}
    assert tops == {"grl_torchrl", info}, f"unexpected top-level entries: {tops}"
    missing = [s for s in SOURCES if s not in names]
    assert not missing, f"package files missing from the wheel: {missing}"
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert f"{info}/licenses/LICENSE" in names


def test_wheel_metadata(dist: dict[str, Path]) -> None:
    meta = _metadata(dist["wheel"])
    assert meta["Name"] == "grl_torchrl"
    assert meta["Version"] == grl_torchrl.__version__
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert meta["Requires-Python"] == ">=3.10"
    requires = meta.get_all("Requires-Dist")
    runtime = {r.split(">")[0].split("<")[0].split("=")[0] for r in requires if "extra" not in r}
    assert runtime == {"torch", "torchrl", "tensordict", "gymnasium", "easydict", "numpy"}
    assert set(meta.get_all("Provides-Extra")) == {
        "examples",
        "test",
        "ray",
        "mujoco",
        "offline",
        "dev",
    }
    ray = " ".join(r for r in requires if 'extra == "ray"' in r)
    assert "ray" in ray, "ray missing from the ray extra"
    offline = " ".join(r for r in requires if 'extra == "offline"' in r)
    for dep in ["minari", "h5py"]:
        assert dep in offline, f"{dep} missing from the offline extra"
    examples = " ".join(r for r in requires if 'extra == "examples"' in r)
    for dep in ["tqdm", "matplotlib", "tensorboard", "gymnasium[classic-control]"]:
        assert dep in examples, f"{dep} missing from the examples extra"
    dev = " ".join(r for r in requires if 'extra == "dev"' in r)
    for dep in [
        "grl_torchrl[examples,mujoco,offline,ray,test]",
        "build",
        "ruff",
        "sphinx",
        "stable-baselines3",
    ]:
        assert dep in dev, f"{dep} missing from the dev extra"


def test_sdist_holds_the_sources_and_project_files(dist: dict[str, Path]) -> None:
    sdist = dist["sdist"]
    prefix = f"grl_torchrl-{grl_torchrl.__version__}/"
    with tarfile.open(sdist) as tf:
        names = {n[len(prefix) :] for n in tf.getnames() if n.startswith(prefix)}
    for required in ["LICENSE", "README.md", "pyproject.toml", "setup.cfg", "CHANGELOG.md"]:
        assert required in names, f"{required} missing from the sdist"
    missing = [s for s in SOURCES if s not in names]
    assert not missing, f"package files missing from the sdist: {missing}"


_IMPORT_CHECK = """
import importlib, importlib.metadata, json
import grl_torchrl, grl_torchrl.nn, grl_torchrl.rl_modules
names = {}
for mod in (grl_torchrl, grl_torchrl.nn, grl_torchrl.rl_modules):
    names[mod.__name__] = [n for n in mod.__all__ if getattr(mod, n, None) is None]
print(json.dumps({
    "file": grl_torchrl.__file__,
    "version": grl_torchrl.__version__,
    "dist_version": importlib.metadata.version("grl_torchrl"),
    "unresolved": names,
    "counts": [len(m.__all__) for m in (grl_torchrl, grl_torchrl.nn, grl_torchrl.rl_modules)],
}))
"""


def test_wheel_installs_into_a_fresh_venv_and_imports(
    dist: dict[str, Path], tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    # No pip inside the new venv: this venv's pip installs into it (--python), which saves
    # bootstrapping one. --no-compile skips byte-compiling torch, the slowest part.
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-compile"]
    _run([*pip, TORCH_PIN])  # first, as the Makefile does, so no other torch build is pulled
    _run([*pip, "-c", str(ROOT / "constraints.txt"), str(dist["wheel"])])

    # -I: ignore PYTHONPATH and the current directory, so only the installed wheel can
    # answer the import (never this checkout).
    proc = _run([str(python), "-I", "-c", _IMPORT_CHECK], cwd=tmp_path)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(report["file"]).is_relative_to(venv), report["file"]
    wheel_version = dist["wheel"].name.split("-")[1]
    assert report["version"] == report["dist_version"] == wheel_version
    assert report["unresolved"] == {
        "grl_torchrl": [],
        "grl_torchrl.nn": [],
        "grl_torchrl.rl_modules": [],
    }
    assert min(report["counts"]) > 0
