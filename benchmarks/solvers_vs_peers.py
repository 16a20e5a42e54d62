"""Our solvers against k-diffusion's samplers and diffusers' schedulers of the same algorithm, on one
denoiser, sigma grid and noise (`benchmarks/helpers/peers.py` says how each peer is run). Prints
markdown tables and writes JSON.

1. Speed: seconds to sample a batch (default 1,000) with the default study's U-Net (the first
   configuration of params.yaml, untrained, seed 0, its zero-initialised output layer drawn like the
   others so that it does not return 0) on a Karras grid, and the same number of bare denoiser
   calls. A few percent is below the noise of whole runs on a shared 2-core machine, so each
   method's own time is also measured alone, many times: the same run with a model that returns a
   stored network output (a fresh copy per call). Solver overhead = own time / time of the NFE bare
   calls (= time / (NFE x one call) - 1); ours / peer = (calls + our own time) / (calls + theirs).
   The JSON also holds the ratios of whole runs, paired within a repeat.
2. Agreement: max |ours - peer| over the batch, and whether the peer called the denoiser at the same
   sigmas (relative difference < 1e-6).
3. Accuracy: on the Gaussian-mixture oracle (float64, 256 draws), the mean distance to the exact ODE
   solution (as benchmarks/oracle_accuracy.py) at NFE budgets 5, 10, 20 on Karras grids, for ours,
   the peers' counterparts and the peers' own higher-order methods.

    python -m benchmarks.solvers_vs_peers [--params params.yaml] [--batch 1000] [--steps 10] [--repeats 3] [--own-repeats 30]
        [--threads N] [--out benchmarks/results/solvers_vs_peers.json]
"""

import importlib
import importlib.metadata
import statistics
from collections.abc import Callable
from typing import NamedTuple

import torch

from models.gaussian_mixture import GaussianMixture
from models.noise_schedules import EDM
from models.solvers import SOLVERS
from models.step_schedules import sigmas_for_budget, step_schedule
from schema.params_file import load_params
from tasks.compute.train import build_model

from .helpers import peers as peer
from .helpers.measure import describe, interleaved, machine, markdown, paired, parse, parser, write_json
from .oracle_accuracy import SIGMA_END

BUDGETS = (5, 10, 20)
SAMPLE_SHAPE = (1, 8, 8)  # the default study's digits
SAME_SIGMA = 1e-6  # relative difference below which two denoiser calls are at the same sigma
SAME_OUTPUT = 1e-4  # max abs difference of float32 samples that float32 rounding over the steps explains


def available_peers():
    """{"k-diffusion": its sampling module, "diffusers": the package} for those present; says what is missing."""
    found = {}
    for name, load in (("k-diffusion", peer.k_diffusion_sampling), ("diffusers", lambda: importlib.import_module("diffusers"))):
        try:
            found[name] = load()
        except ImportError as error:
            print(peer.missing(name, error))
    return found


class Method(NamedTuple):
    """A sampler `sample(model, x)` and `wrap(denoiser)`, which makes our denoiser the model it calls."""

    sample: Callable
    wrap: Callable = lambda denoiser: denoiser

    def __call__(self, denoiser, x):
        return self.sample(self.wrap(denoiser), x)


def counterparts(name, peers, sigmas):
    """{implementation: Method}: our solver `name` on `sigmas` and each present peer's method of the
    same algorithm on the same grid; stochastic ones draw from generators seeded 0."""
    found = {"ours": Method(lambda model, x: SOLVERS[name](model, x, sigmas, generator=torch.Generator().manual_seed(0)))}
    if "k-diffusion" in peers and name in peer.K_DIFFUSION:
        found["k-diffusion"] = k_diffusion_method(peers, peer.K_DIFFUSION[name], sigmas)
    if "diffusers" in peers and name in peer.DIFFUSERS:
        found["diffusers"] = diffusers_method(*peer.DIFFUSERS[name], sigmas)
    return found


def k_diffusion_method(peers, sampler_name, sigmas):
    sampler = getattr(peers["k-diffusion"], sampler_name)
    return Method(lambda model, x: peer.k_diffusion_sample(sampler, model, x, sigmas, torch.Generator().manual_seed(0)))


def diffusers_method(scheduler_name, options, sigmas):
    scheduler = peer.diffusers_scheduler(scheduler_name, options, sigmas[-2].item(), sigmas[0].item())
    return Method(lambda model, x: peer.diffusers_sample(scheduler, model, x, len(sigmas) - 1), peer.epsilon_model)


def peer_only_methods(peers, sigmas):
    """{(method, implementation): Method}: the peers' own methods without a counterpart here."""
    found = {}
    if "k-diffusion" in peers:
        found.update(
            {(label, "k-diffusion"): k_diffusion_method(peers, sampler, sigmas) for label, sampler in peer.K_DIFFUSION_ONLY.items()}
        )
    if "diffusers" in peers:
        found.update({(label, "diffusers"): diffusers_method(*entry, sigmas) for label, entry in peer.DIFFUSERS_ONLY.items()})
    return found


class Recorded:
    """A denoiser that records the sigma of every call."""

    def __init__(self, denoiser):
        self.denoiser, self.sigmas = denoiser, []

    def __call__(self, x, sigma):
        self.sigmas.append(sigma[0].item())
        return self.denoiser(x, sigma)


def same_calls(a, b):
    return len(a) == len(b) and all(abs(s - t) <= SAME_SIGMA * max(s, t) for s, t in zip(a, b))


def default_network(params):
    """The first configuration's denoiser, untrained (seed 0), with its output layer drawn by
    PyTorch's default initialisation instead of zeros."""
    config = next(iter(load_params(params).train.configurations.values()))
    torch.manual_seed(0)
    model = build_model(config, SAMPLE_SHAPE).eval()
    model.network.conv_out.reset_parameters()
    return config.name, model


def bare_calls(model, x, sigmas, nfe):
    """`nfe` denoiser calls on x, cycling through the grid's nonzero sigmas: the network cost alone."""
    for i in range(nfe):
        model(x, torch.full((x.shape[0],), sigmas[i % (len(sigmas) - 1)].item()))


def speed(model, peers, args):
    """One row per solver: time, own time, overhead, ratio to each peer and agreement, on a Karras grid of args.steps."""
    sigmas = step_schedule("karras", args.steps, EDM())
    x = torch.randn(args.batch, *SAMPLE_SHAPE, generator=torch.Generator().manual_seed(0)) * sigmas[0].item()
    stored = model(x, torch.full((args.batch,), sigmas[0].item()))
    rows = []
    for name, solver in SOLVERS.items():
        methods = counterparts(name, peers, sigmas)
        nfe = solver.nfe(args.steps)
        runs = {"network": lambda nfe=nfe: bare_calls(model, x, sigmas, nfe)}
        runs.update({implementation: (lambda method=method: method(model, x)) for implementation, method in methods.items()})
        whole = interleaved(runs, args.repeats)
        alone = interleaved(
            {
                implementation: (lambda method=method: method.sample(lambda *given: stored.clone(), x))
                for implementation, method in methods.items()
            },
            args.own_repeats,
        )
        calls = statistics.median(whole["network"])
        own = {implementation: statistics.median(times) for implementation, times in alone.items()}
        ours = Recorded(model)
        reference = methods["ours"](ours, x)
        row = {
            "solver": name,
            "nfe": nfe,
            "seconds": statistics.median(whole["ours"]),
            "network_seconds": calls,
            "own_seconds": own["ours"],
            "overhead": own["ours"] / calls,
            "peers": {},
        }
        for implementation in sorted(set(methods) - {"ours"}):
            theirs = Recorded(model)
            difference = (methods[implementation](theirs, x) - reference).abs().max().item()
            row["peers"][implementation] = {
                "seconds": statistics.median(whole[implementation]),
                "own_seconds": own[implementation],
                "ratio": (calls + own["ours"]) / (calls + own[implementation]),
                "whole_run_ratio": paired(whole["ours"], whole[implementation]),
                "max_abs_difference": difference,
                "same_calls": same_calls(ours.sigmas, theirs.sigmas),
                "nfe": len(theirs.sigmas),
            }
        rows.append(row)
        print(f"  {name}: {row['seconds']:.3f} s, own {1e3 * own['ours']:.2f} ms, overhead {100 * row['overhead']:.2f} %", flush=True)
    return rows


def accuracy(peers):
    """Mean distance to the exact ODE solution on the oracle for every deterministic method and
    budget, and whether the method called the denoiser at the sigmas of ours (or of the grid)."""
    mixture, schedule = GaussianMixture.ring(), EDM()
    x = torch.randn(256, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * schedule.sigma_max
    exact = mixture.flow(x, schedule.sigma_max, SIGMA_END)

    def run(method, expected=None):
        denoiser = Recorded(mixture.denoiser)
        error = (method(denoiser, x) - exact).pow(2).sum(1).sqrt().mean().item()
        calls = denoiser.sigmas
        return {"error": error, "nfe": len(calls), "same_grid": same_calls(calls, calls if expected is None else expected)}, calls

    rows = {}
    for budget in BUDGETS:
        for name, solver in SOLVERS.items():
            if not solver.stochastic:
                methods = counterparts(name, peers, sigmas_for_budget(solver, budget, "karras", schedule)[0])
                rows.setdefault((name, "ours"), {})[budget], ours = run(methods.pop("ours"))
                for implementation, method in methods.items():
                    rows.setdefault((name, implementation), {})[budget], _ = run(method, ours)
        grid = step_schedule("karras", budget, schedule)
        for key, method in peer_only_methods(peers, grid).items():
            rows.setdefault(key, {})[budget], _ = run(method, grid[:-1].tolist())
    return [{"method": method, "implementation": implementation, "budgets": budgets} for (method, implementation), budgets in rows.items()]


def speed_table(rows, peer_names):
    headers = ["solver", "NFE", "ours, s/batch", "own time, ms", "overhead"]
    for name in peer_names:
        headers += [f"{name}: own time, ms", f"ours / {name}", "max abs diff"]
    lines = []
    for row in rows:
        cells = [row["solver"], row["nfe"], f"{row['seconds']:.2f}", f"{1e3 * row['own_seconds']:.2f}", f"{100 * row['overhead']:.2f} %"]
        for name in peer_names:
            found = row["peers"].get(name)
            cells += (
                ["-"] * 3
                if found is None
                else [
                    f"{1e3 * found['own_seconds']:.2f}",
                    f"{found['ratio']:.4f}",
                    f"{found['max_abs_difference']:.1e}" + ("" if found["same_calls"] else " (calls differ)"),
                ]
            )
        lines.append(cells)
    return markdown(headers, lines)


def accuracy_table(rows):
    headers = ["method", "implementation"] + [f"error, NFE <= {budget} (NFE)" for budget in BUDGETS]
    return markdown(
        headers,
        [
            [row["method"], row["implementation"]]
            + [
                f"{row['budgets'][b]['error']:.2e} ({row['budgets'][b]['nfe']})" + ("" if row["budgets"][b]["same_grid"] else " other grid")
                for b in BUDGETS
            ]
            for row in rows
        ],
    )


def targets(speed_rows, accuracy_rows):
    """Each target of the issue with its measured value and whether it is met."""
    worst = max(speed_rows, key=lambda row: row["overhead"])
    compared = [(row["solver"], name, found) for row in speed_rows for name, found in row["peers"].items()]
    slowest = max(compared, key=lambda item: item[2]["ratio"], default=None)
    largest = max(compared, key=lambda item: item[2]["max_abs_difference"], default=None)
    best = {
        side: min(
            (row for row in accuracy_rows if (row["implementation"] == "ours") == (side == "ours") and row["budgets"][10]["same_grid"]),
            key=lambda row: row["budgets"][10]["error"],
            default=None,
        )
        for side in ("ours", "peers")
    }
    found = [
        (
            "solver overhead <= 3 % of the network cost (worst solver)",
            f"{worst['solver']}: {100 * worst['overhead']:.2f} %",
            worst["overhead"] <= 0.03,
        )
    ]
    if slowest is not None:
        found.append(
            ("ours / peer time <= 1.0 (worst pair)", f"{slowest[0]} vs {slowest[1]}: {slowest[2]['ratio']:.4f}", slowest[2]["ratio"] <= 1.0)
        )
        found.append(
            (
                f"same output (largest max abs difference <= {SAME_OUTPUT:g}; same denoiser calls)",
                f"{largest[0]} vs {largest[1]}: {largest[2]['max_abs_difference']:.1e}",
                largest[2]["max_abs_difference"] <= SAME_OUTPUT and all(item[2]["same_calls"] for item in compared),
            )
        )
    if best["peers"] is not None:
        ours, theirs = (best[side]["budgets"][10]["error"] for side in ("ours", "peers"))
        found.append(
            (
                "best oracle error at NFE 10 no worse than the best peer's",
                f"ours {best['ours']['method']} {ours:.2e}, "
                f"best peer {best['peers']['method']} ({best['peers']['implementation']}) {theirs:.2e}",
                ours <= theirs,
            )
        )
    return [{"target": target, "measured": measured, "met": met} for target, measured, met in found]


def main():
    arguments = parser("solvers_vs_peers", __doc__, repeats=3, threads=True)
    arguments.add_argument("--own-repeats", type=int, default=30, help="repeats of each method's own time")
    arguments.add_argument("--batch", type=int, default=1000)
    arguments.add_argument("--steps", type=int, default=10, help="steps of the Karras grid of the speed table")
    arguments.add_argument("--params", default="params.yaml")
    args = parse(arguments)
    peers = available_peers()
    peer_names = [name for name in ("k-diffusion", "diffusers") if name in peers]
    configuration, model = default_network(args.params)
    with torch.no_grad():
        print(f"speed: {configuration}'s U-Net, batch {args.batch}, Karras grid of {args.steps} steps, {args.repeats} repeats")
        speed_rows = speed(model, peers, args)
        accuracy_rows = accuracy(peers)
    goals = targets(speed_rows, accuracy_rows)
    print(f"\n{describe(machine())}; peers: " + ", ".join(f"{n} {importlib.metadata.version(n)}" for n in peer_names))
    print(
        f"\nSpeed, batch {args.batch}, Karras grid of {args.steps} steps; whole runs: median of {args.repeats}, "
        f"own times: median of {args.own_repeats}:\n"
    )
    print(speed_table(speed_rows, peer_names))
    print("\nOracle: mean distance to the exact ODE solution, Karras grids:\n")
    print(accuracy_table(accuracy_rows))
    print("\n" + markdown(["target", "measured", "met"], [[g["target"], g["measured"], "met" if g["met"] else "missed"] for g in goals]))
    write_json(
        {
            "configuration": configuration,
            "batch": args.batch,
            "steps": args.steps,
            "repeats": args.repeats,
            "own_repeats": args.own_repeats,
            "peers": {n: importlib.metadata.version(n) for n in peer_names},
            "speed": speed_rows,
            "accuracy": accuracy_rows,
            "targets": goals,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
