"""What every benchmark shares: repeats of the compared runs interleaved on one machine, medians and
paired ratios of them, a description of the machine, markdown tables, the common command line
(`--out`, default benchmarks/results/<name>.json) and the JSON file of a run, which holds the machine.

A 2-core machine shared with other work drifts in speed; interleaving puts every compared run in the
same slow or fast period, and a ratio taken repeat by repeat cancels the drift that remains.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parents[1] / "results"


def seconds(run):
    """Wall-clock seconds of one call of `run`."""
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def interleaved(runs, repeats):
    """{name: [seconds of each repeat]} for `runs` ({name: callable}); each repeat calls every run
    once, starting one further along the list than the repeat before."""
    names, times = list(runs), {name: [] for name in runs}
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(seconds(runs[name]))
    return times


def paired(numerator, denominator):
    """Median and quartiles of numerator[i] / denominator[i], each pair timed in the same repeat."""
    ratios = [a / b for a, b in zip(numerator, denominator)]
    low, high = statistics.quantiles(ratios, n=4, method="inclusive")[::2] if len(ratios) > 1 else ratios * 2
    return {"median": statistics.median(ratios), "quartiles": [low, high], "repeats": len(ratios)}


def spread(ratio, digits=3):
    """A paired ratio as 'median (lower quartile-upper quartile)'."""
    low, high = ratio["quartiles"]
    return f"{ratio['median']:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def machine():
    """The CPU, its cores, torch's threads, the GPU (None without CUDA), the versions the numbers were
    measured with, and the date."""
    names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")]
    return {
        "cpu": names[0] if names else platform.processor(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": datetime.date.today().isoformat(),
    }


def describe(host):
    """`machine()` in one line."""
    gpu = f", GPU {host['gpu']}" if host["gpu"] else ""
    return (
        f"{host['cpu']}, {host['cores']} cores, {host['torch_threads']} torch threads{gpu}; torch {host['torch']}, "
        f"Python {host['python']}; {host['date']}"
    )


def markdown(headers, rows):
    """A markdown table of `rows` (lists of cells) under `headers`."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows])


def parser(name, doc, repeats=None, threads=False):
    """The command line of the script `benchmarks/<name>.py`, described by the first paragraph of
    `doc`: the common options (see `add_common`) before the script's own."""
    arguments = argparse.ArgumentParser(prog=f"python -m benchmarks.{name}", description=" ".join(doc.split("\n\n")[0].split()))
    return add_common(arguments, name, repeats, threads)


def add_common(arguments, name, repeats=None, threads=False):
    """`arguments` with --out (default benchmarks/results/<name>.json); with --repeats (default
    `repeats`) where a number is given, and with --threads where `threads`."""
    arguments.add_argument(
        "--out",
        type=Path,
        default=RESULTS / f"{name}.json",
        metavar="FILE",
        help=f"where the JSON of this run goes (default: benchmarks/results/{name}.json)",
    )
    if repeats is not None:
        arguments.add_argument(
            "--repeats", type=int, default=repeats, metavar="N", help=f"interleaved repeats of every timed run (default: {repeats})"
        )
    if threads:
        arguments.add_argument(
            "--threads",
            type=int,
            metavar="N",
            help="torch threads (default: torch's); 1 where other work holds "
            "a core, since spinning OpenMP threads then slow every call several-fold",
        )
    return arguments


def parse(arguments):
    """The parsed arguments, with torch's thread count set from --threads where given."""
    args = arguments.parse_args()
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    return args


def write_json(data, path):
    """`data` (a dict) after the machine's description, as indented JSON at `path`; says where."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2) + "\n")
    print(f"\nJSON: {path}")
