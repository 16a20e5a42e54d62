"""Our best cell on an optimized step schedule against k-diffusion's best sampler on its best fixed
schedule, on one trained model of a study workspace: the same initial noise, the same FID features and
bootstrap resamples (so that differences are paired), at NFE <= 6 and <= 10.

k-diffusion's samplers (euler, heun, dpm_2, lms, dpmpp_2m, dpmpp_2m_sde, dpmpp_3m_sde) run on the Karras
grid (rho 7), the log-SNR uniform grid (its get_sigmas_exponential) and Align Your Steps' Gaussian grid,
at every budget; ours are dpmpp_2m, ipndm and unipc on the grid optimized for the model, solver and
budget (`models.optimized_schedules`, the study's calibration noise and defaults). Prints the cells
and the comparison as markdown tables and writes JSON.

    python -m benchmarks.schedules_vs_k_diffusion --root DIR [--configuration edm-long] [--budgets 4 5 6 8 10]
        [--out benchmarks/results/schedules_vs_k_diffusion.json]
"""

import torch

from models.choices import SolverChoice, StepScheduleChoice
from models.fid import bootstrap_fids, features, fid_from_moments, moments
from models.solvers import SOLVERS
from models.step_schedules import sigmas_for_budget
from tasks.compute.cells import Cell, fit_sigmas, sample_cell, shared_inputs

from .helpers import peers as peer
from .helpers.measure import describe, machine, markdown, parse, parser, write_json
from .helpers.trained import trained

# k-diffusion's sampler -> our solver that calls the denoiser as often per step (for its grid at a budget)
K_DIFFUSION_SAMPLERS = {
    "sample_euler": "euler",
    "sample_heun": "heun",
    "sample_dpm_2": "dpm_solver_2",
    "sample_lms": "euler",
    "sample_dpmpp_2m": "dpmpp_2m",
    "sample_dpmpp_2m_sde": "euler",
    "sample_dpmpp_3m_sde": "euler",
}
FIXED = ("karras", "logsnr_uniform", "ays_gaussian")
OURS = ("dpmpp_2m", "ipndm", "unipc")


def scored(samples, real, extractor, resamples, **cell):
    """A cell's FID, its bootstrap FIDs (paired resamples) and standard error."""
    found = features(extractor, samples.clamp(-1, 1))
    bootstrap = bootstrap_fids(real, found, resamples)
    fid = fid_from_moments(real, [moments(found)])
    return dict(**cell, fid=fid, fid_se=torch.tensor(bootstrap, dtype=torch.float64).std().item(), fid_bootstrap=bootstrap)


def theirs(model, sampling, inputs, real, schedule, budgets):
    """Every k-diffusion sampler x fixed schedule x budget, from the shared noise."""
    rows = []
    for sampler, counterpart in K_DIFFUSION_SAMPLERS.items():
        for name in FIXED:
            for budget in budgets:
                sigmas, nfe = sigmas_for_budget(SOLVERS[counterpart], budget, name, schedule)
                x = inputs.noise * sigmas[0].item()
                generator = torch.Generator().manual_seed(0)
                samples = torch.cat(
                    [peer.k_diffusion_sample(getattr(sampling, sampler), model, chunk, sigmas, generator) for chunk in x.split(500)]
                )
                rows.append(
                    scored(samples, real, real.inception, inputs.resamples, method=f"k-diffusion {sampler}", schedule=name, nfe=nfe)
                )
    return rows


def ours(model, config, evaluate, inputs, real, budgets, sample_shape):
    """Our multistep solvers on the grid optimized for each budget, from the shared noise."""
    rows = []
    for solver in OURS:
        for budget in budgets:
            cell = Cell(config.name, SolverChoice(name=solver), StepScheduleChoice(name="optimized"), budget, evaluate.reference_nfe)
            sigmas, seconds = fit_sigmas(model, cell, evaluate, sample_shape)
            samples, _, nfe, _ = sample_cell(model, cell, inputs.noise, evaluate, fitted_sigmas=sigmas)
            rows.append(scored(samples, real, real.inception, inputs.resamples, method=f"ours {solver}", schedule="optimized", nfe=nfe))
            rows[-1]["fit_seconds"] = seconds
    return rows


def best(rows, most):
    """The row of lowest FID at NFE <= `most`."""
    return min((row for row in rows if row["nfe"] <= most), key=lambda row: row["fid"])


def main():
    arguments = parser("schedules_vs_k_diffusion", __doc__)
    arguments.add_argument("--root", required=True, help="a study workspace whose configuration is trained and features fitted")
    arguments.add_argument("--configuration", default="edm-long")
    arguments.add_argument("--budgets", type=int, nargs="+", default=[4, 5, 6, 8, 10])
    args = parse(arguments)
    study, config, model, real, sample_shape = trained(args.root, args.configuration)
    evaluate = study.evaluate
    inputs = shared_inputs(evaluate, sample_shape)
    peers = theirs(model, peer.k_diffusion_sampling(), inputs, real, model.noise_schedule, args.budgets)
    own = ours(model, config, evaluate, inputs, real, args.budgets, sample_shape)
    host = machine()
    print(describe(host))
    print(f"{args.configuration}, {evaluate.num_samples} samples, {evaluate.bootstrap} bootstrap resamples\n")
    print(
        markdown(
            ["method", "schedule", "NFE", "FID"],
            [[r["method"], r["schedule"], r["nfe"], f"{r['fid']:.2f} ± {r['fid_se']:.2f}"] for r in peers + own],
        )
    )
    comparison = []
    for most in (6, 10):
        a, b = best(own, most), best(peers, most)
        difference = torch.tensor(a["fid_bootstrap"], dtype=torch.float64) - torch.tensor(b["fid_bootstrap"], dtype=torch.float64)
        comparison.append(dict(most=most, ours=a, theirs=b, difference=a["fid"] - b["fid"], paired_se=difference.std().item()))
    print("\nOur best cell against k-diffusion's best, paired\n")
    print(
        markdown(
            ["NFE at most", "ours", "FID", "k-diffusion", "FID", "difference ± paired SE", "beyond 2 SE"],
            [
                [
                    line["most"],
                    f"{line['ours']['method']} / optimized, NFE {line['ours']['nfe']}",
                    f"{line['ours']['fid']:.2f} ± {line['ours']['fid_se']:.2f}",
                    f"{line['theirs']['method']} / {line['theirs']['schedule']}, NFE {line['theirs']['nfe']}",
                    f"{line['theirs']['fid']:.2f} ± {line['theirs']['fid_se']:.2f}",
                    f"{line['difference']:+.2f} ± {line['paired_se']:.2f}",
                    "yes" if line["difference"] < -2 * line["paired_se"] else "no",
                ]
                for line in comparison
            ],
        )
    )
    write_json(dict(configuration=args.configuration, cells=peers + own, comparison=comparison), args.out)


if __name__ == "__main__":
    main()
