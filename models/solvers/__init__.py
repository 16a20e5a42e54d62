"""Every solver of the study under one contract (see `contract.Solver`), registered by name."""

from .ancestral import ddim, ddpm
from .contract import Solver
from .dpm_solver import dpm_solver_1, dpm_solver_2, dpm_solver_3, dpmpp_2m
from .multistep import deis, ipndm, unipc
from .runge_kutta import euler, heun, midpoint

SOLVERS = {
    s.name: s
    for s in (
        Solver("ddpm", ddpm, "Ho et al. 2020", order=1, stochastic=True),
        Solver("ddim", ddim, "Song et al. 2021", order=1, stochastic=False),
        Solver("euler", euler, "Euler; Karras et al. 2022", order=1, stochastic=False),
        Solver("euler_ancestral", ddim, "k-diffusion (DDIM, eta = 1)", order=1, stochastic=True, defaults={"eta": 1.0}),
        Solver("midpoint", midpoint, "Runge-Kutta midpoint rule", order=2, stochastic=False, calls_per_step=2, final_calls=2),
        Solver("heun", heun, "Karras et al. 2022", order=2, stochastic=False, calls_per_step=2),
        Solver("dpm_solver_1", dpm_solver_1, "Lu et al. 2022", order=1, stochastic=False),
        Solver("dpm_solver_2", dpm_solver_2, "Lu et al. 2022", order=2, stochastic=False, calls_per_step=2),
        Solver("dpm_solver_3", dpm_solver_3, "Lu et al. 2022", order=3, stochastic=False, calls_per_step=3),
        Solver("dpmpp_2m", dpmpp_2m, "Lu et al. 2022b", order=2, stochastic=False),
        Solver("ipndm", ipndm, "Zhang & Chen 2023", order=2, stochastic=False),
        Solver("deis", deis, "Zhang & Chen 2023", order=2, stochastic=False),
        Solver("unipc", unipc, "Zhao et al. 2023", order=3, stochastic=False),
    )
}
