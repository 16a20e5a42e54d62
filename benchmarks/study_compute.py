"""The study's compute without orchestration, on the device at hand (CUDA when present): fitting the
FID features, training each configuration, sampling and scoring every cell. Prints a markdown table
and writes JSON; run it beside the study to see what Prefect, MLflow and DVC add.

    python -m benchmarks.study_compute [--params params.yaml] [--steps N] [--mixed-precision] [--threads N]
        [--out benchmarks/results/study_compute.json]
"""

import tempfile
import time

import torch

from schema.params_file import load_params
from tasks.compute.cells import cells, fit_sigmas, measured_against, ode_solution, sample_shard, score, shared_inputs
from tasks.compute.data import prepare
from tasks.compute.feature_space import fit, load_statistics
from tasks.compute.train import train
from tasks.device import device

from .helpers.measure import markdown, parse, parser, write_json


def synchronized_time():
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter()


def main():
    arguments = parser("study_compute", __doc__, threads=True)
    arguments.add_argument("--params", default="params.yaml")
    arguments.add_argument("--steps", type=int, help="training steps per configuration (default: the params' own)")
    arguments.add_argument("--mixed-precision", action="store_true", help="bf16 autocast in training (CUDA only)")
    args = parse(arguments)
    study, where = load_params(args.params), device()
    rows = []
    start = synchronized_time()
    data = prepare(study.data)
    state, metrics = fit(study.features, data, device=where, log=lambda message: None)
    accuracy = metrics.get("classifier_test_accuracy", float("nan"))
    rows.append(
        dict(
            stage="features",
            seconds=synchronized_time() - start,
            detail=f"accuracy {accuracy:.4f}, floor FID {metrics['data_floor_fid']:.3f}",
        )
    )
    with tempfile.TemporaryDirectory() as folder:
        torch.save(state, f"{folder}/statistics.pt")
        statistics, sample_shape = load_statistics(study.features, f"{folder}/statistics.pt", device=where)
        for name, config in study.train.configurations.items():
            overrides = (("steps", args.steps), ("mixed_precision", args.mixed_precision or None))
            config = config.model_copy(update={k: v for k, v in overrides if v})
            start = synchronized_time()
            model = train(config, data.train_images, f"{folder}/{name}", device=where, log=lambda message: None).eval()
            seconds = synchronized_time() - start
            rows.append(
                dict(stage=f"train {name}", seconds=seconds, detail=f"{config.steps / seconds:.1f} steps/s at batch {config.batch_size}")
            )
            inputs, evaluate, solutions = shared_inputs(study.evaluate, sample_shape), study.evaluate, {}
            start, scored = synchronized_time(), []
            for cell in cells(study.grid(config), name):  # one shard per cell, as the flow with fid_shards 1
                finer = None
                if cell.reference:  # its ODE solution at twice its steps, and at four times for the error ratio
                    solutions[cell.label] = ode_solution(model, cell, inputs.noise, evaluate, device=where)
                    finer = ode_solution(model, cell, inputs.noise, evaluate, 2, device=where)
                fitted, fit_seconds = fit_sigmas(model, cell, evaluate, sample_shape, device=where) if cell.fitted else (None, None)
                shard = sample_shard(model, cell, inputs.noise, statistics.inception, evaluate, 0, fitted, device=where)
                scored.append(score(cell, [shard], statistics, inputs.resamples, measured_against(cell, solutions), finer, fit_seconds)[0])
            reference = next(row for row in scored if row["reference"])
            best10 = min((r for r in scored if not r["reference"] and r["nfe"] <= 10), key=lambda r: r["fid"], default=None)
            detail = f"{len(scored)} cells; reference FID {reference['fid']:.2f}"
            if best10:
                detail += f"; best NFE<=10 {best10['solver']}/{best10['step_schedule']} FID {best10['fid']:.2f}"
            rows.append(dict(stage=f"evaluate {name}", seconds=synchronized_time() - start, detail=detail, cells=scored))
    name = torch.cuda.get_device_name() if where == "cuda" else "CPU"
    print(f"device: {name}; params: {args.params}; torch {torch.__version__}\n")
    print(markdown(["stage", "seconds", "detail"], [[row["stage"], f"{row['seconds']:.1f}", row["detail"]] for row in rows]))
    write_json({"device": name, "params": args.params, "rows": rows}, args.out)


if __name__ == "__main__":
    main()
