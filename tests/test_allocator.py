"""keep_freed_memory: glibc keeps freed blocks, so repeated steps stop faulting pages in."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from grl_torchrl import allocator
from grl_torchrl.allocator import MAX_MMAP_THRESHOLD, keep_freed_memory

# Six 4 MiB tensors written and freed per "step", as an update step's intermediates are; the
# page faults of 20 steps after a warm-up, counted by the kernel (ru_minflt), in a fresh
# interpreter: the setting is process-wide and cannot be undone.
#
# Both runs start from glibc's initial thresholds (128 KiB), set here with mallopt itself:
# glibc raises its thresholds as the process frees large blocks, so how much the untouched
# defaults return depends on the process's history (in a fresh checkout, an interpreter that
# compiles its imports' bytecode first faulted no page at all in this loop).
FAULTS_PER_STEP = """
import ctypes, resource, sys, torch
from grl_torchrl.allocator import keep_freed_memory
mallopt = ctypes.CDLL("libc.so.6").mallopt
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
assert mallopt(M_MMAP_THRESHOLD, 128 << 10) and mallopt(M_TRIM_THRESHOLD, 128 << 10)
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def step():
    tensors = [torch.ones(1 << 20) for _ in range(6)]
    del tensors
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


def faults_per_step(mode: str) -> float:
    result = subprocess.run(
        [sys.executable, "-c", FAULTS_PER_STEP, mode], capture_output=True, text=True, check=True
    )
    return float(result.stdout.split()[-1])


def test_repeated_steps_stop_faulting_pages() -> None:
    pages_per_step = 6 * (4 << 20) // 4096
    # low thresholds hand the 24 MiB back after each step: each page is faulted in again
    assert faults_per_step("return") >= pages_per_step / 2
    assert faults_per_step("keep") < 0.01 * pages_per_step


def test_sets_glibcs_two_thresholds(monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(allocator, "_glibc_mallopt", lambda: lambda *args: calls.append(args) or 1)
    assert keep_freed_memory(trim_threshold=3 << 20, mmap_threshold=1 << 20) is True
    # M_MMAP_THRESHOLD is -3 and M_TRIM_THRESHOLD -1 in glibc's malloc.h
    assert calls == [(-3, 1 << 20), (-1, 3 << 20)]


def test_reports_a_refused_setting(monkeypatch) -> None:
    monkeypatch.setattr(allocator, "_glibc_mallopt", lambda: lambda *args: 0)
    assert keep_freed_memory() is False


def test_not_glibc_changes_nothing(monkeypatch) -> None:
    monkeypatch.setattr(allocator, "_glibc_mallopt", lambda: None)
    assert keep_freed_memory() is False


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"trim_threshold": 0}, "trim_threshold must be a positive number of bytes, got 0"),
        ({"trim_threshold": -5}, "trim_threshold must be a positive number of bytes, got -5"),
        ({"trim_threshold": 1.5e9}, "trim_threshold must be a positive number of bytes"),
        ({"mmap_threshold": True}, "mmap_threshold must be a positive number of bytes, got True"),
        (
            {"mmap_threshold": MAX_MMAP_THRESHOLD + 1},
            f"mmap_threshold must be at most {MAX_MMAP_THRESHOLD} bytes",
        ),
        ({"trim_threshold": 1 << 31}, "trim_threshold must fit a C int"),
    ],
)
def test_bad_thresholds_are_refused_before_anything_is_set(
    monkeypatch, kwargs: dict, message: str
) -> None:
    calls = []
    monkeypatch.setattr(allocator, "_glibc_mallopt", lambda: lambda *args: calls.append(args) or 1)
    with pytest.raises(ValueError, match=re.escape(message)):
        keep_freed_memory(**kwargs)
    assert calls == []
