"""The SBX (Stable-Baselines-JAX) contestant of ``bench_losses.py``, in its own interpreter.

SBX needs JAX, which the project's venv does not carry; ``bench_losses.py --sbx PYTHON``
starts this script with a Python that has ``sbx-rl`` installed (see its docstring) and
drives it over stdin/stdout so that SBX runs interleaved with the other variants:

* argv: ``algo`` (``sac`` or ``td3``), ``batch_size``, ``updates``, ``keep_freed_memory``
  (``1``: ``grl_torchrl.allocator.keep_freed_memory()`` first, as in the driving process);
* it builds the agent as ``bench_losses.sb3_update`` does (Pendulum-v1, 256-256, lr 1e-3,
  a 10k buffer filled by random steps), jit-compiles ``train``, prints ``ready``;
* each ``run`` line on stdin: one ``model.train(gradient_steps=updates)`` (SBX runs the
  updates in one XLA call, ``lax.fori_loop``, as its training loop does with
  ``train_freq`` > 1), answered by ``<wall seconds> <process CPU seconds>``.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

# one XLA thread, like the one torch thread of the other variants
os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)


def main() -> None:
    algo, batch_size, updates = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if sys.argv[4] == "1":
        # the SBX venv sees the project's packages but not its editable install
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from grl_torchrl.allocator import keep_freed_memory

        keep_freed_memory()
    import sbx
    from stable_baselines3.common.logger import Logger

    buffer = 10_000
    kwargs = {"ent_coef": "auto_1.0"} if algo == "sac" else {}
    model = {"sac": sbx.SAC, "td3": sbx.TD3}[algo](
        "MlpPolicy",
        "Pendulum-v1",
        learning_rate=1e-3,
        buffer_size=buffer,
        learning_starts=buffer,
        batch_size=batch_size,
        policy_kwargs={"net_arch": [256, 256]},
        seed=0,
        **kwargs,
    )
    model.set_logger(Logger(folder=None, output_formats=[]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.learn(total_timesteps=buffer)  # random steps fill the buffer
    model.train(gradient_steps=updates, batch_size=batch_size)  # jit compile
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        tic, cpu_tic = time.perf_counter(), time.process_time()
        model.train(gradient_steps=updates, batch_size=batch_size)  # ends with .item()
        print(f"{time.perf_counter() - tic} {time.process_time() - cpu_tic}", flush=True)


if __name__ == "__main__":
    main()
