"""Accuracy of every deterministic solver on the Gaussian-mixture oracle, against the exact
probability-flow ODE solution (DOP853, tolerance 1e-12), and of the step schedules optimized for a
solver (`models.optimized_schedules`) against the best fixed schedule. Prints markdown tables and
writes JSON.

    python -m benchmarks.oracle_accuracy [--samples 256] [--out benchmarks/results/oracle_accuracy.json]

The second table: for dpmpp_2m, ipndm, unipc and deis at NFE 5, 6, 8 and 10, the root-mean-square
distance to the exact solution from 128 evaluation noises of a grid fitted on 128 other (calibration)
noises (by the default search, the search with 600 solver runs, and GITS) over the best fixed
schedule's (Karras at rho 5, 7, 9, log-SNR uniform, time uniform, Align Your Steps for Gaussian
data), and the seconds fitting took.
"""

import time

import numpy as np
import torch

from models.gaussian_mixture import GaussianMixture
from models.noise_schedules import EDM
from models.optimized_schedules import distance, optimized_step_schedule
from models.solvers import SOLVERS
from models.step_schedules import sigmas_for_budget, step_schedule

from .helpers.measure import markdown, parse, parser, write_json

SIGMA_END = 1e-5  # the reference stops here; |x(1e-5) - x(0)| is below float64 noise for this mixture
VARIANTS = {"search": {}, "search, 600 runs": {"evaluations": 600}, "gits": {"method": "gits"}}  # the defaults; more runs; GITS
FIXED = [("karras", {"rho": rho}) for rho in (5.0, 7.0, 9.0)] + [("logsnr_uniform", {}), ("time_uniform", {}), ("ays_gaussian", {})]


def measured_order(solver, mixture, x, counts=(20, 40, 80, 160)):
    """Slope of log error vs log steps on Karras grids ending at sigma_min = 0.002."""
    schedule = EDM()
    reference = mixture.flow(x, schedule.sigma_max, schedule.sigma_min)
    errors = [(solver(mixture.denoiser, x, step_schedule("karras", n, schedule)[:-1]) - reference).abs().max().item() for n in counts]
    return -np.polyfit(np.log(counts), np.log(errors), 1)[0]


def optimized_rows(mixture, schedule, calibration, evaluation, solution):
    """Per solver and budget: the best fixed schedule's distance and, per method, the fitted grid's
    distance, its ratio to the best fixed one's and the seconds fitting took."""
    rows = []
    for name in ("dpmpp_2m", "ipndm", "unipc", "deis"):
        solver = SOLVERS[name]
        for budget in (5, 6, 8, 10):
            fixed = {
                f"{schedule_name}{options or ''}": distance(
                    solver(mixture.denoiser, evaluation, sigmas_for_budget(solver, budget, schedule_name, schedule, **options)[0]), solution
                )
                for schedule_name, options in FIXED
            }
            best = min(fixed, key=fixed.get)
            row = {"solver": name, "budget": budget, "best_fixed": best, "fixed_error": fixed[best]}
            num_steps = solver.steps_within(budget)
            for variant, options in VARIANTS.items():
                start = time.perf_counter()
                sigmas = optimized_step_schedule(mixture.denoiser, schedule, num_steps, solver=name, calibration=calibration, **options)
                seconds = time.perf_counter() - start
                error = distance(solver(mixture.denoiser, evaluation, sigmas), solution)
                row[variant] = {"error": error, "ratio": error / fixed[best], "seconds": seconds, "sigmas": sigmas.tolist()}
            rows.append(row)
    return rows


def main():
    arguments = parser("oracle_accuracy", __doc__)
    arguments.add_argument("--samples", type=int, default=256)
    args = parse(arguments)
    mixture, schedule = GaussianMixture.ring(), EDM()
    x = torch.randn(args.samples, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * schedule.sigma_max
    reference = mixture.flow(x, schedule.sigma_max, SIGMA_END)
    rows = []
    for name, solver in SOLVERS.items():
        if solver.stochastic:
            continue
        row = {"solver": name, "order": solver.order, "measured_order": measured_order(solver, mixture, x[:16])}
        for budget in (5, 10, 20):
            for discretization in ("karras", "logsnr_uniform"):
                sigmas, nfe = sigmas_for_budget(solver, budget, discretization, schedule)
                error = (solver(mixture.denoiser, x, sigmas) - reference).pow(2).sum(1).sqrt().mean().item()
                row[f"{discretization}@{budget}"] = {"nfe": nfe, "error": error}
        rows.append(row)
    columns = [f"{d}@{b}" for b in (5, 10, 20) for d in ("karras", "logsnr_uniform")]
    print(
        markdown(
            ["solver", "order", "measured order"] + [f"error {c} (NFE)" for c in columns],
            [
                [row["solver"], row["order"], f"{row['measured_order']:.2f}"]
                + [f"{row[c]['error']:.2e} ({row[c]['nfe']})" for c in columns]
                for row in rows
            ],
        )
    )
    calibration = torch.randn(128, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    evaluation = torch.randn(128, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * schedule.sigma_max
    optimized = optimized_rows(mixture, schedule, calibration, evaluation, mixture.flow(evaluation, schedule.sigma_max, SIGMA_END))
    print("\nOptimized step schedules: distance to the exact solution on evaluation noise, over the best fixed schedule's\n")
    print(
        markdown(
            ["solver", "NFE", "best fixed", "its error", *(f"{variant}: error (ratio, fit s)" for variant in VARIANTS)],
            [
                [row["solver"], row["budget"], row["best_fixed"], f"{row['fixed_error']:.2e}"]
                + [f"{row[v]['error']:.2e} ({row[v]['ratio']:.2f}, {row[v]['seconds']:.1f})" for v in VARIANTS]
                for row in optimized
            ],
        )
    )
    write_json({"samples": args.samples, "rows": rows, "optimized": optimized}, args.out)


if __name__ == "__main__":
    main()
