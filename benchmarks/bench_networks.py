"""Update throughput: stacked-parameter critics vs separate MLPs updated in sequence.

Each update is forward + backward + Adam step of a regression loss summed over the heads.

* double: ``DoubleQNetwork`` (hidden 256-256, obs 17, act 6, batch 256) against two separate
  ``nn.Sequential`` MLPs of the same size run one after the other with one Adam (how
  GenerativeRL, SB3 and CleanRL train clipped double Q).
* ensemble: ``EnsembleQNetwork(num_heads=10)`` of 64-64 heads against 10 separate MLPs.
* each also runs our ensemble with the ``torch.vmap`` + ``functional_call`` path forced, to
  show why MLP backbones use batched matmuls (``baddbmm``) instead.
* ``--compile`` adds ``sequential-compiled`` and ``stacked-compiled``: the same update (loss,
  ``torch.autograd.grad``, PyTorch's functional foreach Adam) as one
  ``torch.compile(fullgraph=True)`` graph.

Why the stacked double critic gains little at 256-256 (torch 2.14.1, one thread): the update
is matmul-bound, and a ``baddbmm`` over two stacked 256x256 weights costs what two ``addmm``
cost (measured ~1.0 ms either way, forward and weight-gradient products alike), so stacking
only saves per-op overhead and Adam launches. The one-unit output layer is the exception: as a
two-head ``bmm`` it cost ~190 us against ~15 us for two matrix-vector products, forward and
weight gradient alike, until 0.4.2 computed it transposed (``SkinnyStackedLinearReLU``): in
in-process A/B runs the stacked update went from 1.07x to 1.12x ``sequential``, where
``sequential-fused`` (separate MLPs, fused Adam) is 1.15x.

Contestants run interleaved in one process; the figures are medians over repeats (and the
best repeat, which is less sensitive to other processes sharing the CPU).

Usage: ``python benchmarks/bench_networks.py [--threads 2] [--repeats 7] [--steps 20]
[--compile] [--cases double,ensemble]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from grl_torchrl import EnsembleQNetwork

OBS, ACT, BATCH = 17, 6, 256


def q_config(hidden: list[int]) -> dict:
    return {
        "backbone": {
            "type": "ConcatenateMLP",
            "args": {"hidden_sizes": [OBS + ACT, *hidden], "output_size": 1, "activation": "relu"},
        }
    }


def separate_mlps(num_heads: int, hidden: list[int]) -> nn.ModuleList:
    def mlp():
        sizes = [OBS + ACT, *hidden]
        layers = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(n_in, n_out), nn.ReLU()]
        return nn.Sequential(*layers, nn.Linear(sizes[-1], 1))

    return nn.ModuleList(mlp() for _ in range(num_heads))


def make_step(kind: str, num_heads: int, hidden: list[int]):
    """Returns a closure doing one update.

    ``kind``: ``sequential`` (separate MLPs, default Adam as upstream/SB3/CleanRL use),
    ``sequential-fused`` (separate MLPs, the fused Adam we give the ensemble), ``stacked`` (our
    ensemble, baddbmm path, fused Adam), ``vmap`` (our ensemble forced onto the vmap path).
    """
    obs, act, target = torch.randn(BATCH, OBS), torch.randn(BATCH, ACT), torch.randn(BATCH, 1)
    if kind.startswith("sequential"):
        nets = separate_mlps(num_heads, hidden)
        x = torch.cat([act, obs], -1)

        def values():
            return [net(x) for net in nets]
    else:
        nets = EnsembleQNetwork(q_config(hidden), num_heads=num_heads, reduction="none")
        if kind == "vmap":
            nets._fused_path = None  # force the generic vmap(functional_call) path

        def values():
            return [nets.compute_heads(act, obs)]

    if kind.endswith("-compiled"):
        return compiled_step(nets, values, target)
    # Fused Adam updates all tensors in one kernel: with stacked heads, that is one tensor per
    # layer for all heads.
    fused = kind != "sequential"
    optim = torch.optim.Adam(nets.parameters(), lr=1e-4, fused=fused or None)

    def step():
        loss = sum(((v - target) ** 2).mean() for v in values())
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()

    return step


def compiled_step(nets: nn.Module, values, target: torch.Tensor):
    """The update as one graph: loss, ``torch.autograd.grad``, functional foreach Adam."""
    from torch.optim.adam import adam

    params = list(nets.parameters())
    steps = [torch.zeros(()) for _ in params]
    avgs = [torch.zeros_like(p) for p in params]
    sqs = [torch.zeros_like(p) for p in params]
    lr = torch.tensor(1e-4)

    def step():
        loss = sum(((v - target) ** 2).mean() for v in values())
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            adam(
                params,
                list(grads),
                avgs,
                sqs,
                [],
                steps,
                foreach=True,
                capturable=True,
                amsgrad=False,
                beta1=0.9,
                beta2=0.999,
                lr=lr,
                weight_decay=0.0,
                eps=1e-8,
                maximize=False,
            )

    compiled = torch.compile(step, fullgraph=True)

    def run():
        with torch._dynamo.config.patch(trace_autograd_ops=True):
            compiled()

    return run


def measure(cases: dict, repeats: int, steps: int) -> dict[str, tuple[float, float]]:
    """(median, best) updates/s per case, the cases interleaved within each repeat."""
    for step in cases.values():  # warm-up
        for _ in range(3):
            step()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, step in cases.items():
            start = time.perf_counter()
            for _ in range(steps):
                step()
            samples[name].append(steps / (time.perf_counter() - start))
    return {name: (statistics.median(v), max(v)) for name, v in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--compile", action="store_true", help="add the one-graph variants")
    parser.add_argument("--cases", default="double,ensemble")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(
        f"torch {torch.__version__}, threads={torch.get_num_threads()}, "
        f"repeats={args.repeats}, steps/repeat={args.steps}, batch={BATCH}"
    )
    kinds = ["sequential", "sequential-fused", "stacked", "vmap"]
    if args.compile:
        kinds += ["sequential-compiled", "stacked-compiled"]
    for case, title, num_heads, hidden, goal in [
        ("double", "DoubleQNetwork 256-256", 2, [256, 256], 1.1),
        ("ensemble", "10-head ensemble 64-64", 10, [64, 64], 2.0),
    ]:
        if case not in args.cases.split(","):
            continue
        cases = {kind: make_step(kind, num_heads, hidden) for kind in kinds}
        rates = measure(cases, args.repeats, args.steps)
        base, base_best = rates["sequential"]
        print(f"\n{title} (goal: stacked >= {goal}x sequential)")
        print(f"  {'':<17}{'median':>9}{'ratio':>8}{'best':>10}{'ratio':>8}   (updates/s)")
        for name, (rate, best) in rates.items():
            print(f"  {name:<17}{rate:9.1f}{rate / base:7.2f}x{best:10.1f}{best / base_best:7.2f}x")


if __name__ == "__main__":
    main()
