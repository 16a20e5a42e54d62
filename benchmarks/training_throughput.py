"""Training throughput: images per second of the pipeline's training, `tasks.compute.train.train` (warm-up,
the finite-loss check, gradient clipping, EMA, a checkpoint every `checkpoint_every` steps as in
params.yaml), against a bare PyTorch loop with the same network, batch, optimizer and loss (the
objective's mean, backward, Adam step and nothing else); the pipeline's training also with its loss
logged to a real MLflow SQLite store in a temporary folder every 100 steps through
`tasks.record.tracking.log_curve`, as flows/train.py does. Prints markdown tables and writes JSON.

Two measurements:
- whole runs of each (building the model and optimizer included), interleaved;
- per step, in lockstep: a bare step and the pipeline's `train_step` alternate on two copies of the
  model fed the same batches and noise, so both see the same moments of a shared machine; a
  checkpoint (`save_checkpoint` of `Training.state`) and an MLflow batch are timed alone, and
  their cost is spread over `checkpoint_every` and 100 steps. Their ratio resolves the few percent
  that whole runs on a shared 2-core machine do not.

    python -m benchmarks.training_throughput [--params params.yaml] [--steps 500] [--repeats 3] [--threads N]
        [--out benchmarks/results/training_throughput.json]
"""

import statistics
import tempfile
import time

import torch
from mlflow import MlflowClient

from models.training import EMA, train_step, warmup
from schema.params_file import load_params
from tasks.compute.checkpoints import save_checkpoint
from tasks.compute.data import prepare
from tasks.compute.train import Training, build_model, objective_of, train
from tasks.record.tracking import experiment, log_curve

from .helpers.measure import describe, interleaved, machine, markdown, paired, parse, parser, spread, write_json

LOG_EVERY = 100  # steps of loss per MLflow batch, as in flows/train.py
TARGET = 0.95  # the pipeline's training at least this fraction of the bare loop's images per second


class Run:
    """One copy of the training: model, optimizer, objective and the data-order and noise generators of `train`."""

    def __init__(self, config, images):
        torch.manual_seed(config.seed)
        self.config, self.images = config, images
        self.model = build_model(config, tuple(images.shape[1:]))
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.objective = objective_of(config)
        self.data_order, self.noise = torch.Generator().manual_seed(config.seed), torch.Generator().manual_seed(config.seed + 1)

    def batch(self):
        return self.images[torch.randint(len(self.images), (self.config.batch_size,), generator=self.data_order)]

    def bare_step(self):
        """The objective's mean, backward, Adam step."""
        loss = self.objective(self.model, self.batch(), self.noise)[0].mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()


def bare_loop(config, images):
    run = Run(config, images)
    for _ in range(config.steps):
        run.bare_step()


def pipeline(config, images, folder, tracking=None):
    """`train` from scratch into a fresh checkpoint folder under `folder`; with `tracking` = (client,
    run id), its loss goes to MLflow every LOG_EVERY steps."""
    losses = []

    def on_step(step, loss):
        losses.append((step, loss))
        if len(losses) == LOG_EVERY:
            log_curve(*tracking, "loss", losses)
            losses.clear()

    with tempfile.TemporaryDirectory(dir=folder) as checkpoints:
        train(config, images, checkpoints, on_step=on_step if tracking else None, log=lambda message: None)
    if tracking and losses:
        log_curve(*tracking, "loss", losses)


def lockstep(config, images, folder, tracking, repeats):
    """Seconds per bare step and per `train_step` (alternating, same batches and noise), and the
    median seconds of one checkpoint and of one MLflow batch of LOG_EVERY losses."""
    bare, ours = Run(config, images), Run(config, images)
    ema = EMA(ours.model, decay=config.ema_decay, half_life_images=config.ema_half_life_images)
    times, losses = {"bare": [], "ours": []}, []

    def ours_step(step):
        lr = config.lr * warmup(step, config.warmup_steps)
        losses.append(
            (
                step,
                train_step(
                    ours.model,
                    ours.objective,
                    ours.optimizer,
                    ours.batch(),
                    generator=ours.noise,
                    ema=ema,
                    lr=lr,
                    grad_clip=config.grad_clip,
                    mixed_precision=config.mixed_precision,
                )[0],
            )
        )

    for step in range(config.steps):
        order = (("bare", bare.bare_step), ("ours", lambda step=step: ours_step(step)))
        for name, run in order if step % 2 else order[::-1]:
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    state = Training(ours.model, ema, ours.optimizer, ours.data_order, ours.noise).state(config.steps, None)
    costs = interleaved(
        {"checkpoint": lambda: save_checkpoint(state, folder), "mlflow": lambda: log_curve(*tracking, "loss", losses[:LOG_EVERY])}, repeats
    )
    return times, {name: statistics.median(seconds) for name, seconds in costs.items()}


def main():
    arguments = parser("training_throughput", __doc__, repeats=3, threads=True)
    arguments.add_argument("--steps", type=int, default=500, help="steps per run (default: one checkpoint interval of params.yaml)")
    arguments.add_argument("--params", default="params.yaml")
    args = parse(arguments)
    study = load_params(args.params)
    name, config = next(iter(study.train.configurations.items()))
    config = config.model_copy(update={"steps": args.steps})
    images = prepare(study.data).train_images
    with tempfile.TemporaryDirectory() as folder:
        client = MlflowClient(f"sqlite:///{folder}/mlflow.db")
        tracking = (client, client.create_run(experiment(client, "throughput", f"{folder}/artifacts")).info.run_id)
        whole = interleaved(
            {
                "bare PyTorch loop": lambda: bare_loop(config, images),
                "tasks.compute.train.train": lambda: pipeline(config, images, folder),
                "tasks.compute.train.train + MLflow": lambda: pipeline(config, images, folder, tracking),
            },
            args.repeats,
        )
        steps, costs = lockstep(config, images, folder, tracking, max(args.repeats, 10))
    bare = whole["bare PyTorch loop"]
    bare_step, step_ratio = statistics.median(steps["bare"]), paired(steps["ours"], steps["bare"])
    per_step = {"tasks.compute.train.train": bare_step * step_ratio["median"] + costs["checkpoint"] / config.checkpoint_every}
    per_step["tasks.compute.train.train + MLflow"] = per_step["tasks.compute.train.train"] + costs["mlflow"] / LOG_EVERY
    rows = [
        {
            "run": run,
            "images_per_second": args.steps * config.batch_size / statistics.median(seconds),
            "vs_bare": paired(bare, seconds),
            "vs_bare_in_lockstep": bare_step / per_step.get(run, bare_step),
        }
        for run, seconds in whole.items()
    ]
    met = all(row["vs_bare_in_lockstep"] >= TARGET for row in rows)
    print(f"{describe(machine())}\n")
    print(
        f"Configuration {name!r}: {args.steps} steps at batch {config.batch_size}, checkpoint every {config.checkpoint_every} steps, "
        f"grad_clip {config.grad_clip}, ema_decay {config.ema_decay}. Whole runs: median (quartiles) of {args.repeats} paired repeats; "
        f"lockstep: median of {args.steps} step pairs ({bare_step * 1e3:.1f} ms bare, train_step / bare {spread(step_ratio)}), "
        f"checkpoint {costs['checkpoint'] * 1e3:.0f} ms, MLflow batch {costs['mlflow'] * 1e3:.0f} ms:\n"
    )
    print(
        markdown(
            ["run", "images/s, whole runs", "throughput / bare, whole runs", "throughput / bare, lockstep"],
            [[row["run"], f"{row['images_per_second']:.0f}", spread(row["vs_bare"]), f"{row['vs_bare_in_lockstep']:.3f}"] for row in rows],
        )
    )
    print(f"\ntarget: throughput >= {TARGET} x the bare loop (lockstep): {'met' if met else 'missed'}")
    write_json(
        {
            "configuration": name,
            "steps": args.steps,
            "batch": config.batch_size,
            "repeats": args.repeats,
            "rows": rows,
            "lockstep": {
                "bare_step_seconds": bare_step,
                "train_step_over_bare": step_ratio,
                **{f"{k}_seconds": v for k, v in costs.items()},
            },
            "target": TARGET,
            "met": met,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
