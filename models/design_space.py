"""Every design axis in one table: its declarations (`models.axes`), its implementations and the
defaults each implementation gives the options its declaration names. The docs' axis tables are made
from it (`python -m tools.axes_doc`), and tests/test_axes.py holds declarations and implementations
to each other through it. Nothing of the study imports it: it imports every implementation."""

import inspect
from typing import NamedTuple

from . import axes
from .clipping import CLIPPINGS
from .conditioning import CONDITIONINGS
from .networks import NETWORKS
from .noise_schedules import NOISE_SCHEDULES
from .objectives import NOISE_SAMPLING, WEIGHTINGS
from .optimized_schedules import FITTED_SCHEDULES
from .parameterizations import PARAMETERIZATIONS
from .solvers import SOLVERS
from .step_schedules import STEP_SCHEDULES

SIZE = {"in_channels", "dim"}  # a network's input size comes from the data, not from params


def keyword_defaults(function, skip=()):
    """{name: default} of the parameters of `function` with a default, minus `skip`."""
    parameters = inspect.signature(function).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not p.empty and p.name not in skip}


def step_schedule_defaults(function):
    """A fixed schedule's keyword defaults and its sigma range (the model's unless given); a fitted
    one's, with the study's count of calibration noises."""
    if function in STEP_SCHEDULES.values():
        return {**keyword_defaults(function), "sigma_min": None, "sigma_max": None}
    return {**keyword_defaults(function, skip=("solver_options",)), "calibration": None}


class Axis(NamedTuple):
    """One design axis: its declarations (name -> `models.axes.Entry`), its implementations (name ->
    function or class) and `defaults(implementation)`: {option: the implementation's default}."""

    declared: dict
    implemented: dict
    defaults: object


AXES = {  # the name an axis has in messages -> the axis
    "noise schedule": Axis(axes.NOISE_SCHEDULE_ENTRIES, NOISE_SCHEDULES, keyword_defaults),
    "parameterization": Axis(axes.PARAMETERIZATION_ENTRIES, PARAMETERIZATIONS, lambda entry: {}),
    "time conditioning": Axis(axes.CONDITIONING_ENTRIES, CONDITIONINGS, lambda entry: {}),
    "noise sampling": Axis(axes.NOISE_SAMPLING_ENTRIES, NOISE_SAMPLING, keyword_defaults),
    "loss weighting": Axis(axes.WEIGHTING_ENTRIES, WEIGHTINGS, keyword_defaults),
    "network": Axis(axes.NETWORK_ENTRIES, NETWORKS, lambda entry: keyword_defaults(entry, skip=SIZE)),
    "solver": Axis(axes.SOLVER_ENTRIES, SOLVERS, lambda entry: entry.options),
    "step schedule": Axis(axes.STEP_SCHEDULE_ENTRIES, {**STEP_SCHEDULES, **FITTED_SCHEDULES}, step_schedule_defaults),
    "clipping": Axis(axes.CLIPPING_ENTRIES, CLIPPINGS, keyword_defaults),
}
