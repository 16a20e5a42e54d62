"""`python -m tools.axes_doc`: write docs/axes.md, a table per design axis, from the declarations of
models/axes.py and the defaults of their implementations (`models.design_space.AXES`); tests/test_axes.py
fails when the page and the declarations differ, so no copy of a table goes stale."""

from models.design_space import AXES
from models.noise_schedules import NOISE_SCHEDULES
from models.options import requirement
from tasks.compute.provenance import PROJECT

PAGE = PROJECT / "docs" / "axes.md"

INTRO = {  # axis -> what a reader needs to know before its table
    "noise schedule": "`x_t = alpha(t) x0 + sigma(t) eps`, EDM sigma `= sigma / alpha`, log-SNR `lambda = -log(sigma_edm)` "
    "(`models/noise_schedules.py`); each has `alpha`, `sigma`, `edm_sigma`, `log_snr` and their inverses.",
    "parameterization": "Each is `D = c_skip x + c_out F(c_in x)` in sigma-space (EDM Table 1) with target "
    "`(x0 - c_skip x) / c_out`; `s` is EDM sigma, `sd` sigma_data, `alpha` the schedule's scaling (`models/parameterizations.py`).",
    "time conditioning": "How the network is told the noise level (`models/conditioning.py`).",
    "noise sampling": "Which noise levels training draws (`models/objectives.py`): each entry the distribution its paper "
    "defines, whatever the schedule it is combined with (tests/test_objectives.py checks the quartiles of sigma on every schedule).",
    "loss weighting": "Every pair (parameterization, weighting) is the x0-space loss `|D - x0|^2` times an effective "
    "weight `w(sigma)` (Kingma & Gao 2023), which `Objective.weight` reports.",
    "network": "Both embed the conditioning scalar (`positional`: sinusoidal, Ho et al. 2020; `fourier`: random Fourier "
    "features, Tancik et al. 2020); `compile: true` in a configuration compiles its network in place (`models/networks.py`).",
    "solver": "Every solver has one signature, `solver(denoiser, x, sigmas, *, generator=None, **options)`, and returns "
    "the state at `sigmas[-1]` (`models/solvers/contract.py`). NFE on a grid of N steps ending at 0 is "
    "`NFE per step x (N - 1) + calls into sigma = 0`.",
    "step schedule": "`step_schedule(name, num_steps, noise_schedule, sigma_min=None, sigma_max=None, **options)` "
    "returns a float64 grid from sigma_max to 0 in the model's range, snapped to a discrete model's timesteps "
    "(`models/step_schedules.py`); a fitted one is computed per model, solver and budget (`models/optimized_schedules.py`).",
    "clipping": "A sampling-time option that wraps the denoiser, so every solver gets it (`models/clipping.py`): each "
    "output D(x; sigma) is brought into the data range before the solver uses it.",
}


def options_text(entry, defaults):
    """Each option of an entry: `name` (what it must be; default: the implementation's)."""
    fields = entry.options.model_fields
    said = [f"`{name}` ({requirement(name, field)}; default {shown_default(name, defaults.get(name))})" for name, field in fields.items()]
    return "; ".join(said)


UNSET = {
    "sigma_min": "the model's",
    "sigma_max": "the model's",
    "calibration": "the study's 16",
    "t_max": "where sigma = 80",
    "embedding_dim": "4 x channels",
}  # None means


def shown_default(name, value):
    if value is None:
        return UNSET[name]
    return f"`{value!r}`" if isinstance(value, str) else f"`{value}`"


def sigma_range(name):
    schedule = NOISE_SCHEDULES[name]()
    return f"{schedule.sigma_min:.3g} .. {schedule.sigma_max:.3g}"


def schedules_of(entry):
    """The noise schedules a noise sampling or conditioning goes with."""
    schedules = AXES["noise schedule"].declared
    if entry.needs_discrete:
        return ", ".join(f"`{name}`" for name, own in schedules.items() if own.discrete)
    if entry.needs_uniform_time:
        return ", ".join(f"`{name}`" for name, own in schedules.items() if own.uniform_time)
    return "every one"


def draws_noise(name, entry):
    """Whether a solver draws noise: always, never, or with which of its options."""
    if not entry.noise_options:
        return yes(entry.stochastic)
    return " or ".join(f"with {option} > 0" for option in entry.noise_options) + " (by default)" * entry.stochastic


def yes(flag):
    return "yes" if flag else "no"


EXTRA = {  # axis -> (column, its cell of (name, entry)) beyond name, paper, what it is and options
    "noise schedule": [
        ("EDM sigma range", lambda name, entry: sigma_range(name)),
        ("scaling", lambda name, entry: entry.scaling),
        ("discrete", lambda name, entry: yes(entry.discrete)),
    ],
    "time conditioning": [("noise schedules", lambda name, entry: schedules_of(entry))],
    "noise sampling": [("noise schedules", lambda name, entry: schedules_of(entry))],
    "solver": [
        ("order", lambda name, entry: str(entry.order)),
        ("NFE per step", lambda name, entry: str(entry.calls_per_step)),
        ("calls into sigma = 0", lambda name, entry: str(entry.final_calls)),
        ("draws noise", draws_noise),
    ],
    "step schedule": [("fitted to the model", lambda name, entry: yes(entry.fitted))],
}


def table(kind):
    """The Markdown table of the axis `kind`."""
    axis, extra = AXES[kind], EXTRA.get(kind, [])
    head = ["name", "paper", "what it is", *(column for column, _ in extra), "options"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for name, entry in axis.declared.items():
        options = options_text(entry, axis.defaults(axis.implemented[name])) or ""
        cells = [f"`{name}`", entry.paper, entry.summary, *(cell(name, entry) for _, cell in extra), options]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def page():
    """docs/axes.md."""
    parts = [
        "# The design axes\n",
        "Every axis is a table of interchangeable entries, each declared in `models/axes.py` with the options it takes "
        "(type and range) and the rules it needs; the implementation gives each option its default. This page is "
        "generated from them by `python -m tools.axes_doc` (tests/test_axes.py fails when it differs). Any entry "
        "names itself in params.yaml as `name` or `{name: ..., options: {...}}`.\n",
    ]
    for kind in AXES:
        parts += [f"## {kind[0].upper()}{kind[1:]}\n", INTRO[kind] + "\n", table(kind) + "\n"]
    return "\n".join(parts)


if __name__ == "__main__":
    PAGE.write_text(page())
