"""FID and KID at the study's sample count against 10,000 samples: for the cells of one trained
configuration of a study workspace (by default its grid's), each metric at evaluate.num_samples
samples from each of --seeds evaluation seeds and once at --large samples (another seed); per cell
the metric's mean over seeds against its value at --large samples (FID's bias falls with the sample
count, KID has none) and its spread over seeds relative to the spread of the cells' values; per pair
of cells, how often a seed ranks the two the way --large samples do, from the same noise (paired) and
from two seeds' (unpaired).
Prints two markdown tables and writes JSON.

    python -m benchmarks.kid_vs_fid --root DIR [--configuration edm] [--seeds 10] [--large 10000]
        [--out benchmarks/results/kid_vs_fid.json]
"""

import itertools
import statistics

from models.fid import fid_from_moments, moments
from models.kid import kids
from tasks.compute.cells import cells, fit_sigmas, sample_shard, shared_inputs

from .helpers.measure import describe, machine, markdown, parse, parser, write_json
from .helpers.trained import trained

METRICS = ("fid", "kid")
PAIRINGS = {"paired": 0, "unpaired": 1}  # the second cell's seed, this many seeds on from the first's (`agreement`)


def measured(model, cell, real, evaluate, sample_shape, seed, count):
    """{fid, kid} of `count` samples of a cell from the initial noise of `seed`."""
    at = evaluate.model_copy(update={"seed": seed, "num_samples": count})
    fitted = fit_sigmas(model, cell, at, sample_shape)[0] if cell.fitted else None
    features = sample_shard(model, cell, shared_inputs(at, sample_shape).noise, real.inception, at, 0, fitted).features
    kid = kids(real.kid_real, real.kid_within, features, features.new_ones(1, len(features))).item()
    return dict(fid=fid_from_moments(real, [moments(features)]), kid=kid)


def agreement(small, large, first, second, metric, shift=0):
    """The share of seeds whose `metric` orders cells `first` and `second` as the large sample does:
    both from the same seed's noise (paired, as the cells of one model), or with `shift`, `second` from
    the seed `shift` further on (unpaired, as the rows of an ablation: models trained apart)."""
    truth, other = large[first][metric] < large[second][metric], small[second][shift:] + small[second][:shift]
    return statistics.mean((a[metric] < b[metric]) == truth for a, b in zip(small[first], other))


def pair_columns(pair, metric):
    """A pair's difference at the large sample count and its agreements, paired / unpaired, by `metric`."""
    return f"{pair[f'{metric}_large_difference']:+.3f}", f"{pair[f'{metric}_paired']:.2f} / {pair[f'{metric}_unpaired']:.2f}"


def main():
    arguments = parser("kid_vs_fid", __doc__)
    arguments.add_argument("--root", required=True, help="a study workspace whose configuration is trained and features fitted")
    arguments.add_argument("--configuration", default="edm")
    arguments.add_argument("--seeds", type=int, default=10)
    arguments.add_argument("--large", type=int, default=10_000)
    args = parse(arguments)
    study, config, model, real, sample_shape = trained(args.root, args.configuration)
    evaluate = study.evaluate
    grid = [cell for cell in cells(study.grid(config), config.name) if not cell.reference]
    small, large = {}, {}
    for cell in grid:
        small[cell.label] = [
            measured(model, cell, real, evaluate, sample_shape, evaluate.seed + s, evaluate.num_samples) for s in range(args.seeds)
        ]
        large[cell.label] = measured(model, cell, real, evaluate, sample_shape, evaluate.seed + 1000, args.large)
        print(f"{cell.label}: {large[cell.label]}", flush=True)
    per_cell = [
        dict(
            cell=label,
            **{f"{m}_large": large[label][m] for m in METRICS},
            **{f"{m}_seeds": [each[m] for each in small[label]] for m in METRICS},
        )
        for label in small
    ]
    between = {m: statistics.stdev(large[label][m] for label in large) for m in METRICS}  # how far apart the cells are
    pairs = [
        dict(
            first=a,
            second=b,
            **{f"{m}_large_difference": large[b][m] - large[a][m] for m in METRICS},
            **{f"{m}_{kind}": agreement(small, large, a, b, m, shift) for m in METRICS for kind, shift in PAIRINGS.items()},
        )
        for a, b in itertools.combinations(small, 2)
    ]
    host = machine()
    print(describe(host))
    print(f"{args.configuration}: {evaluate.num_samples} samples per seed, {args.seeds} seeds; large: {args.large} samples\n")
    rows = []
    for line in per_cell:
        row = [line["cell"]]
        for m in METRICS:
            seeds = line[f"{m}_seeds"]
            row += [
                f"{statistics.mean(seeds):.3f} ± {statistics.stdev(seeds):.3f}",
                f"{line[f'{m}_large']:.3f}",
                f"{statistics.stdev(seeds) / between[m]:.2f}",
            ]
        rows.append(row)
    print(
        markdown(
            [
                "cell",
                f"FID at {evaluate.num_samples}: mean ± std over seeds",
                f"FID at {args.large}",
                "FID: std over seeds / std between cells",
                f"KID at {evaluate.num_samples}",
                f"KID at {args.large}",
                "KID: std over seeds / std between cells",
            ],
            rows,
        )
    )
    print(f"\nPairs of cells: the share of seeds at {evaluate.num_samples} samples that rank them as {args.large} samples do\n")
    print(
        markdown(
            [
                "first",
                "second",
                *(f"{m.upper()} {what}" for m in METRICS for what in (f"difference at {args.large}", "agrees: paired / unpaired")),
            ],
            [[p["first"], p["second"], *(part for m in METRICS for part in pair_columns(p, m))] for p in pairs],
        )
    )
    overall = {f"{m}_{kind}": statistics.mean(p[f"{m}_{kind}"] for p in pairs) for m in METRICS for kind in PAIRINGS}
    print(
        "\nmean agreement over pairs, paired / unpaired: "
        + ", ".join(f"{m.upper()} {overall[f'{m}_paired']:.3f} / {overall[f'{m}_unpaired']:.3f}" for m in METRICS)
    )
    found = dict(
        host=host,
        configuration=args.configuration,
        num_samples=evaluate.num_samples,
        large=args.large,
        seeds=args.seeds,
        cells=per_cell,
        pairs=pairs,
        agreement=overall,
    )
    write_json(found, args.out)


if __name__ == "__main__":
    main()
