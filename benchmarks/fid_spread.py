"""Does a cell's bootstrap standard error tell the FID's spread over noise seeds? For cells of one
trained configuration of a study workspace: the FID of evaluate.num_samples samples from each of
--seeds evaluation seeds (evaluate.seed + 0, 1, ...: the initial noise, a stochastic solver's own
noise and the bootstrap resamples each from its stream of that seed, as the evaluate stage draws
them), the standard deviation of those FIDs, and the bootstrap standard error that the evaluate stage
reports (evaluate.bootstrap resamples of one seed's generated features, tasks/compute/cells.py) for each
seed; and for each cell after the first, its FID's difference from the first cell's: its standard
deviation over seeds next to the paired bootstrap spread the report compares winners with
(`tasks.report.analysis.within_spread`: the same resamples of both cells).
Prints two markdown tables and writes JSON.

    python -m benchmarks.fid_spread --root DIR --configuration edm --cells heun/karras/255 unipc/karras/8
        [--seeds 5] [--out benchmarks/results/fid_spread.json]
"""

import statistics

from models.choices import SolverChoice, StepScheduleChoice
from models.fid import bootstrap_fids, fid_from_moments, moments
from tasks.compute.cells import Cell, fit_sigmas, sample_shard, shared_inputs

from .helpers.measure import describe, machine, markdown, parse, parser, write_json
from .helpers.trained import trained


def cell_of(configuration, text, reference_nfe):
    """The Cell named "solver/step_schedule/budget" (entries without options) of a grid with `reference_nfe`."""
    solver, step_schedule, budget = text.split("/")
    return Cell(configuration, SolverChoice(name=solver), StepScheduleChoice(name=step_schedule), int(budget), reference_nfe)


def scores(model, cell, real, evaluate, sample_shape, seed):
    """(FID, its bootstrap FIDs) of a cell's samples from the initial noise of `seed`; `real`: the real statistics."""
    at = evaluate.model_copy(update={"seed": seed})
    inputs = shared_inputs(at, sample_shape)
    fitted = fit_sigmas(model, cell, at, sample_shape)[0] if cell.fitted else None  # calibrated on the seed's own stream
    features = sample_shard(model, cell, inputs.noise, real.inception, at, 0, fitted).features
    fids = bootstrap_fids(real, features, inputs.resamples)
    return fid_from_moments(real, [moments(features)]), fids


def differences(first, other):
    """Per seed, `other`'s FID minus `first`'s and the standard deviation of their paired bootstrap FIDs' differences."""
    return [(b - a, statistics.stdev([y - x for x, y in zip(fa, fb)])) for (a, fa), (b, fb) in zip(first, other)]


def spread_table(rows, values, errors, headers):
    """A markdown table, a line per cell: its `values` per seed, their standard deviation, and its `errors` per seed with their mean."""
    return markdown(
        ["cell", *headers],
        [
            [
                row["cell"],
                ", ".join(f"{value:.2f}" for value in row[values]),
                f"{statistics.stdev(row[values]):.2f}",
                f"{', '.join(f'{error:.2f}' for error in row[errors])} ({statistics.mean(row[errors]):.2f})",
            ]
            for row in rows
        ],
    )


def main():
    arguments = parser("fid_spread", __doc__)
    arguments.add_argument("--root", required=True, help="a study workspace whose configuration is trained and features fitted")
    arguments.add_argument("--configuration", default="edm")
    arguments.add_argument(
        "--cells", nargs="+", default=["heun/karras/255", "unipc/karras/8", "dpmpp_2m/karras/16", "euler_ancestral/karras/32"]
    )
    arguments.add_argument("--seeds", type=int, default=5)
    args = parse(arguments)
    study, config, model, real, sample_shape = trained(args.root, args.configuration)
    evaluate = study.evaluate
    results, measured = [], {}
    for text in args.cells:
        cell = cell_of(config.name, text, study.grid(config).reference_nfe)
        measured[text] = [scores(model, cell, real, evaluate, sample_shape, evaluate.seed + s) for s in range(args.seeds)]
        fids, errors = [fid for fid, _ in measured[text]], [statistics.stdev(each) for _, each in measured[text]]
        results.append(dict(cell=text, fids=fids, seed_stdev=statistics.stdev(fids), bootstrap_se=errors))
    first = args.cells[0]
    paired = [
        dict(cell=text, against=first, differences=[d for d, _ in found], paired_se=[se for _, se in found])
        for text in args.cells[1:]
        for found in [differences(measured[first], measured[text])]
    ]
    host = machine()
    print(describe(host))
    print(f"{args.configuration}, {evaluate.num_samples} samples per seed, {evaluate.bootstrap} bootstrap resamples, {args.seeds} seeds\n")
    print(spread_table(results, "fids", "bootstrap_se", ["FID per seed", "std over seeds", "bootstrap SE per seed (mean)"]))
    print(f"\nFID minus the FID of {first}, from the same noise, per seed\n")
    print(
        spread_table(
            paired, "differences", "paired_se", ["difference per seed", "std over seeds", "paired bootstrap spread per seed (mean)"]
        )
    )
    found = dict(host=host, configuration=args.configuration, num_samples=evaluate.num_samples, results=results, paired=paired)
    write_json(found, args.out)


if __name__ == "__main__":
    main()
