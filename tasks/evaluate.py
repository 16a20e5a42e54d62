"""Score one trained model: FID of every (solver, step schedule, NFE budget) cell, all from the same
initial noise, plus a high-NFE reference, against real statistics computed once."""

from models.fid import fid_from_statistics

from .sample import cells, initial_noise, sample

REFERENCE = ("heun", "karras")


def score(model, evaluate, statistics, sample_shape, *, device="cpu", log=print):
    """One row per cell and one for the reference (EDM's Heun on a Karras grid at `reference_nfe`):
    solver, step_schedule, budget, nfe (spent), fid, seconds, reference (bool)."""
    noise = initial_noise(evaluate.num_samples, sample_shape, evaluate.seed)
    jobs = [(s.name, s.options, d.name, d.options, b, False) for s, d, b in cells(evaluate)]
    jobs.append((REFERENCE[0], {}, REFERENCE[1], {}, evaluate.reference_nfe, True))
    rows = []
    for solver, solver_options, step_schedule, schedule_options, budget, reference in jobs:
        samples, nfe, seconds = sample(
            model, solver, step_schedule, budget, noise, seed=evaluate.seed + 1, batch_size=evaluate.batch_size,
            device=device, solver_options=solver_options, schedule_options=schedule_options,
        )
        fid = fid_from_statistics(statistics, samples.clamp(-1, 1))
        rows.append(dict(solver=solver, step_schedule=step_schedule, budget=budget, nfe=nfe, fid=fid, seconds=seconds, reference=reference))
        log(f"{solver} / {step_schedule} / NFE {nfe}: FID {fid:.3f} ({seconds:.2f} s)")
    return rows


def data_floor(statistics, held_out):
    """FID of held-out real images against the training images' statistics: the best a model can read."""
    return fid_from_statistics(statistics, held_out)
