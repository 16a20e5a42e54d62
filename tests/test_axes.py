"""The declarations of models/axes.py say what the implementations do: the same names in every
table, the same options, defaults that the declared ranges accept, and the rules the code enforces."""

import dataclasses
import re
from pathlib import Path

import pytest
import torch
import yaml

from models import axes, options
from models.conditioning import CONDITIONINGS
from models.design_space import AXES
from models.noise_schedules import NOISE_SCHEDULES
from models.objectives import NOISE_SAMPLING
from models.solvers import SOLVERS, register
from schema.params_file import ParamsError, load_params
from tools import axes_doc

PROJECT = Path(__file__).resolve().parents[1]

ENTRIES = [(kind, name) for kind, axis in AXES.items() for name in axis.declared]


@pytest.mark.parametrize("kind", AXES)
def test_every_table_declares_exactly_its_entries(kind):
    assert list(AXES[kind].declared) == list(AXES[kind].implemented)


@pytest.mark.parametrize("kind, name", ENTRIES)
def test_every_entry_declares_exactly_its_options_and_accepts_its_defaults(kind, name):
    declared, implemented, options_of = AXES[kind]
    defaults = options_of(implemented[name])
    assert set(declared[name].options.model_fields) == set(defaults), (kind, name)
    given = {
        key: list(value) if isinstance(value, tuple) else value for key, value in defaults.items() if value is not None
    }  # as YAML writes them
    assert list(options.option_problems(kind, name, declared[name], given)) == [], (kind, name, given)


def test_discrete_noise_schedules_are_those_with_timesteps():
    assert {name for name, entry in axes.NOISE_SCHEDULE_ENTRIES.items() if entry.discrete} == {
        name for name, schedule in NOISE_SCHEDULES.items() if schedule().timesteps is not None
    }


def test_entries_that_need_a_discrete_schedule_refuse_a_continuous_one():
    continuous, discrete = NOISE_SCHEDULES["edm"](), NOISE_SCHEDULES["ddpm"]()
    sigma = torch.tensor([1.0], dtype=torch.float64)
    for name, entry in axes.CONDITIONING_ENTRIES.items():
        CONDITIONINGS[name](sigma, discrete)
        if entry.needs_discrete:
            with pytest.raises(ValueError, match="discrete"):
                CONDITIONINGS[name](sigma, continuous)
        else:
            CONDITIONINGS[name](sigma, continuous)
    for name, entry in axes.NOISE_SAMPLING_ENTRIES.items():
        NOISE_SAMPLING[name](4, discrete, torch.Generator())
        if entry.needs_discrete:
            with pytest.raises(ValueError, match="discrete"):
                NOISE_SAMPLING[name](4, NOISE_SCHEDULES["flow"](), torch.Generator())


def test_schedules_trained_with_t_uniform_are_those_whose_implementation_draws_it():
    """`uniform_time` is declared where the implementation accepts t uniform (not EDM's, whose time is
    sigma), and the one noise sampling that needs it refuses every other schedule."""
    declared = {name for name, entry in axes.NOISE_SCHEDULE_ENTRIES.items() if entry.uniform_time}
    assert declared == {name for name, schedule in NOISE_SCHEDULES.items() if schedule().uniform_time} == set(NOISE_SCHEDULES) - {"edm"}
    for name, entry in axes.NOISE_SAMPLING_ENTRIES.items():
        for schedule_name, schedule in NOISE_SCHEDULES.items():
            refused = entry.needs_uniform_time and schedule_name not in declared or entry.needs_discrete and schedule_name != "ddpm"
            if refused:
                with pytest.raises(ValueError):
                    NOISE_SAMPLING[name](4, schedule(), torch.Generator())
            else:
                NOISE_SAMPLING[name](4, schedule(), torch.Generator())


@pytest.mark.parametrize(
    "options, problem",
    [
        ({"eta": 2}, "option eta must be a number with 0 <= eta <= 1"),
        ({"eta": True}, "option eta must be a number with 0 <= eta <= 1"),
        ({"eta": "0.5"}, "option eta must be a number"),
        ({"etta": 0.5}, "does not accept option(s) ['etta']; allowed: ['eta']"),
    ],
)
def test_a_solver_refuses_options_its_declaration_refuses(options, problem):
    with pytest.raises(ValueError, match=rf"^solver 'ddim'.*{re.escape(problem)}"):
        SOLVERS["ddim"](lambda x, sigma: x, torch.zeros(2, 2), [1.0, 0.0], **options)


def test_requirements_in_words():
    fields = {**axes.HeunOptions.model_fields, **axes.UNetOptions.model_fields, **axes.SigmaRange.model_fields}
    assert options.requirement("s_churn", fields["s_churn"]) == "a number with 0 <= s_churn"
    assert options.requirement("dropout", fields["dropout"]) == "a number with 0 <= dropout < 1"
    assert options.requirement("channels", fields["channels"]) == "a positive integer"
    assert options.requirement("sigma_min", fields["sigma_min"]) == "a positive, finite number"
    assert options.requirement("attention", fields["attention"]) == "true or false"
    assert options.requirement("embedding", fields["embedding"]) == "one of 'positional', 'fourier'"


class Damping(options.Options):
    fraction: float = options.option(gt=0, le=1)


def damped_euler(denoise, x, sigmas, *, generator=None, fraction=1.0):
    """Euler steps shortened to `fraction` of their length, then one step into sigma = 0 (a test solver)."""
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        x = x + fraction * (sigma_next - sigma) * (x - denoise(x, sigma)) / sigma
    return x


@pytest.fixture
def registered():
    """A new solver with one typed option, added by one call to `register`, taken out after the test."""
    solver = register("damped_euler", damped_euler, axes.SolverEntry(order=1, stochastic=False, options=Damping))
    yield solver
    del axes.SOLVER_ENTRIES["damped_euler"], SOLVERS["damped_euler"]


def test_a_solver_registered_in_one_call_is_checked_from_params_and_runs(registered, tmp_path):
    params = yaml.safe_load((PROJECT / "profiles" / "smoke.yaml").read_text())
    for fraction, problem in (
        (0.5, None),
        (2, "evaluate.solvers.0.options.fraction: solver 'damped_euler': option fraction must be a number with 0 < fraction <= 1 (got 2)"),
    ):
        params["evaluate"]["solvers"] = [{"name": "damped_euler", "options": {"fraction": fraction}}]
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        if problem is None:
            assert load_params(tmp_path / "params.yaml").evaluate.solvers[0].options == {"fraction": 0.5}
        else:
            with pytest.raises(ParamsError) as error:
                load_params(tmp_path / "params.yaml")
            assert problem in str(error.value)
    x = torch.randn(5, 2, dtype=torch.float64)
    out = registered(lambda x, sigma: torch.zeros_like(x), x, [2.0, 1.0, 0.0], fraction=0.5)
    torch.testing.assert_close(out, x * 0.75 * 0.5)  # each step keeps 1 - fraction (sigma - sigma_next) / sigma of x


def test_every_entry_says_what_it_is_and_that_is_no_part_of_a_cells_identity():
    for kind, axis in AXES.items():
        assert all(entry.summary for entry in axis.declared.values()), kind
    said = dataclasses.replace(axes.SOLVER_ENTRIES["heun"], summary="edited")
    assert repr(said) == repr(axes.SOLVER_ENTRIES["heun"])  # `cell_code` counts a solver's declaration by its repr


def test_the_axes_page_is_the_one_the_declarations_make():
    assert (PROJECT / "docs" / "axes.md").read_text() == axes_doc.page(), "python -m tools.axes_doc writes it"
