"""Accuracy of every deterministic solver on the Gaussian-mixture oracle, against the exact
probability-flow ODE solution (DOP853, tolerance 1e-12). Prints a markdown table and writes JSON.

    python -m benchmarks.oracle_accuracy [--samples 256] [--out benchmarks/results/oracle_accuracy.json]
"""

import numpy as np
import torch

from models.gaussian_mixture import GaussianMixture
from models.noise_schedules import EDM
from models.solvers import SOLVERS
from models.step_schedules import grid_for_budget, step_schedule

from .helpers.measure import markdown, parse, parser, write_json

SIGMA_END = 1e-5  # the reference stops here; |x(1e-5) - x(0)| is below float64 noise for this mixture


def measured_order(solver, mixture, x, counts=(20, 40, 80, 160)):
    """Slope of log error vs log steps on Karras grids ending at sigma_min = 0.002."""
    schedule = EDM()
    reference = mixture.flow(x, schedule.sigma_max, schedule.sigma_min)
    errors = [(solver(mixture.denoiser, x, step_schedule("karras", n, schedule)[:-1]) - reference).abs().max().item() for n in counts]
    return -np.polyfit(np.log(counts), np.log(errors), 1)[0]


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
                sigmas, nfe = grid_for_budget(solver, budget, discretization, schedule)
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
    write_json({"samples": args.samples, "rows": rows}, args.out)


if __name__ == "__main__":
    main()
