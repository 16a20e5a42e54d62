"""Every solver of the study under one contract (see `contract.Solver`), registered by name; what each
is and accepts is declared in `models.axes.SOLVER_ENTRIES`. `register` adds one in a single call."""

from .. import axes
from .ancestral import ddim, ddpm
from .contract import Solver
from .dpm_solver import dpm_solver_1, dpm_solver_2, dpm_solver_3, dpmpp_2m
from .multistep import deis, ipndm, unipc
from .runge_kutta import euler, heun, midpoint

SOLVERS = {
    s.name: s
    for s in (
        Solver("ddpm", ddpm),
        Solver("ddim", ddim),
        Solver("euler", euler),
        Solver("euler_ancestral", ddim, defaults={"eta": 1.0}),
        Solver("midpoint", midpoint),
        Solver("heun", heun),
        Solver("dpm_solver_1", dpm_solver_1),
        Solver("dpm_solver_2", dpm_solver_2),
        Solver("dpm_solver_3", dpm_solver_3),
        Solver("dpmpp_2m", dpmpp_2m),
        Solver("ipndm", ipndm),
        Solver("deis", deis),
        Solver("unipc", unipc),
    )
}


def register(name, algorithm, entry, defaults=None):
    """Add the solver `name`: its declaration `entry` (a `models.axes.SolverEntry`: paper, order, calls
    per step, an Options model of its options) and its `algorithm` (the contract's signature); a
    params file may then name it, and its options are checked against `entry` before any work."""
    axes.SOLVER_ENTRIES[name] = entry
    SOLVERS[name] = Solver(name, algorithm, defaults or {})
    return SOLVERS[name]
