"""The study's compute without orchestration, on the device at hand (CUDA when present): fitting the
FID features, training each configuration, sampling and scoring every cell. Prints a markdown table
and writes JSON; run it beside the study to see what Prefect, MLflow and DVC add.

    python -m benchmarks.study_compute [--params profiles/smoke.yaml] [--steps N] [--mixed-precision] [--json out.json]
"""

import argparse
import json
import tempfile
import time

import torch

from flows.params import load_params
from tasks.data import prepare
from tasks.device import device
from tasks.evaluate import cells, score_cell
from tasks.features import fit, load_statistics
from tasks.sample import initial_noise
from tasks.train import train


def synchronized_time():
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--steps", type=int, help="training steps per configuration (default: the params' own)")
    parser.add_argument("--mixed-precision", action="store_true", help="bf16 autocast in training (CUDA only)")
    parser.add_argument("--json")
    args = parser.parse_args()
    study, where = load_params(args.params), device()
    rows = []
    start = synchronized_time()
    data = prepare(study.data)
    state, metrics = fit(study.features, data, device=where, log=lambda message: None)
    rows.append(dict(stage="features", seconds=synchronized_time() - start, detail=f"accuracy {metrics.get('classifier_test_accuracy', float('nan')):.4f}, floor FID {metrics['data_floor_fid']:.3f}"))
    with tempfile.TemporaryDirectory() as folder:
        torch.save(state, f"{folder}/statistics.pt")
        statistics, sample_shape = load_statistics(study.features, f"{folder}/statistics.pt", device=where)
        for name, config in study.train.configurations.items():
            config = config.model_copy(update={k: v for k, v in (("steps", args.steps), ("mixed_precision", args.mixed_precision or None)) if v})
            start = synchronized_time()
            model = train(config, data.train_images, f"{folder}/{name}", device=where, log=lambda message: None).eval()
            seconds = synchronized_time() - start
            rows.append(dict(stage=f"train {name}", seconds=seconds, detail=f"{config.steps / seconds:.1f} steps/s at batch {config.batch_size}"))
            noise = initial_noise(study.evaluate.num_samples, sample_shape, study.evaluate.seed)
            start, scored = synchronized_time(), []
            for cell in cells(study.evaluate):
                scored.append(score_cell(model, cell, noise, statistics, study.evaluate, device=where)[0])
            reference = scored[-1]
            best10 = min((r for r in scored[:-1] if r["nfe"] <= 10), key=lambda r: r["fid"], default=None)
            detail = f"{len(scored)} cells; reference FID {reference['fid']:.2f}" + (f"; best NFE<=10 {best10['solver']}/{best10['step_schedule']} FID {best10['fid']:.2f}" if best10 else "")
            rows.append(dict(stage=f"evaluate {name}", seconds=synchronized_time() - start, detail=detail, cells=scored))
    name = torch.cuda.get_device_name() if where == "cuda" else "CPU"
    print(f"device: {name}; params: {args.params}; torch {torch.__version__}\n")
    print("| stage | seconds | detail |\n|---|---|---|")
    for row in rows:
        print(f"| {row['stage']} | {row['seconds']:.1f} | {row['detail']} |")
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"device": name, "params": args.params, "rows": rows}, file, indent=2)


if __name__ == "__main__":
    main()
