"""The documentation builds without a warning, covers the public API, and its examples run."""

from __future__ import annotations

import doctest
import inspect
import logging
import subprocess
import sys
from pathlib import Path

import pytest

import grl_torchrl
import grl_torchrl.nn
import grl_torchrl.rl_modules

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# The guides whose ``>>>`` examples must run (the API pages' examples are the docstrings,
# which run through ``--doctest-modules``).
GUIDES = ["quickstart.rst", "migration.rst", "torchrl_integration.rst"]


@pytest.fixture(scope="module")
def html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Builds the docs once, as ``make docs`` does, but from scratch (-E) into a temp dir."""
    out = tmp_path_factory.mktemp("docs") / "html"
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-q", "-b", "html"]
        + [str(DOCS), str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    # -W turns every warning (broken cross-reference, bad docstring markup, missing image,
    # a page outside the toctree...) into a non-zero exit; -q leaves only warnings in stderr.
    assert proc.returncode == 0, f"sphinx-build failed:\n{proc.stdout}\n{proc.stderr}"
    assert "WARNING" not in proc.stderr, proc.stderr
    return out


def test_docs_build_without_warnings(html: Path) -> None:
    for page in ["index", "quickstart", "migration", "torchrl_integration", "results"]:
        assert (html / f"{page}.html").is_file(), page
    assert (html / "api" / "rl_modules.html").is_file()
    assert (html / "api" / "nn.html").is_file()
    assert (html / "api" / "objectives.html").is_file()


@pytest.mark.parametrize(
    ("module", "page"),
    [
        (grl_torchrl.rl_modules, "rl_modules"),
        (grl_torchrl.nn, "nn"),
        (grl_torchrl.objectives, "objectives"),
    ],
    ids=["rl_modules", "nn", "objectives"],
)
def test_every_public_name_has_an_api_entry(html: Path, module, page: str) -> None:
    text = (html / "api" / f"{page}.html").read_text(encoding="utf-8")
    assert module.__all__, f"{module.__name__}.__all__ is empty"
    missing = [name for name in module.__all__ if f'id="{module.__name__}.{name}"' not in text]
    assert not missing, f"public names without an entry in docs/api/{page}.rst: {missing}"


PUBLIC = [
    (module, name)
    for module in (grl_torchrl.rl_modules, grl_torchrl.nn, grl_torchrl.objectives)
    for name in module.__all__
]


@pytest.mark.parametrize(("module", "name"), PUBLIC, ids=[f"{m.__name__}.{n}" for m, n in PUBLIC])
def test_public_object_has_a_docstring_and_classes_an_example(module, name: str) -> None:
    # The API pages are generated from these docstrings, and every class's ``>>>`` example
    # runs as a doctest (``--doctest-modules`` over grl_torchrl/).
    obj = getattr(module, name)
    doc = inspect.getdoc(obj) or ""
    assert doc.strip(), f"{module.__name__}.{name} has no docstring"
    if inspect.isclass(obj):
        assert ">>>" in doc, f"{module.__name__}.{name}'s docstring has no >>> example"


def test_top_level_exports_are_documented_under_rl_modules() -> None:
    # grl_torchrl re-exports rl_modules; the reference documents them there only.
    extra = set(grl_torchrl.__all__) - set(grl_torchrl.rl_modules.__all__)
    assert extra == {"__version__", "nn", "objectives", "rl_modules"}


def test_release_in_docs_is_the_package_version(html: Path) -> None:
    assert f"grl_torchrl {grl_torchrl.__version__}" in (html / "index.html").read_text(
        encoding="utf-8"
    )


@pytest.fixture
def quiet_torchrl():
    # torchrl logs INFO lines (e.g. "Initialized LazyTensorStorage") to stdout, which doctest
    # would read as unexpected output; the pages show what a user's code prints.
    torchrl_logger = logging.getLogger("torchrl")
    level = torchrl_logger.level
    torchrl_logger.setLevel(logging.WARNING)
    yield
    torchrl_logger.setLevel(level)


@pytest.mark.parametrize("guide", GUIDES)
def test_guide_examples_run(guide: str, quiet_torchrl) -> None:
    result = doctest.testfile(
        str(DOCS / guide),
        module_relative=False,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
        report=True,  # failures are printed, and pytest shows the captured output
        verbose=False,
        encoding="utf-8",
    )
    assert result.attempted > 0, f"{guide} has no >>> examples"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {guide}"
