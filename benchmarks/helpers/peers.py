"""The libraries users would otherwise pick, run on our denoiser, grid and noise. Neither is a
dependency of the project: `pip install -e '.[bench]'` installs diffusers and what k-diffusion's
sampling.py imports, and `pip install --no-deps k-diffusion==0.1.1.post1` installs k-diffusion itself
(its declared dependencies include torchvision, which would replace the CPU build of torch).

- k-diffusion (Crowson): the package's __init__ imports all its modules, and its utils.py imports
  torchvision; sampling.py alone needs only `utils.append_dims`. So sampling.py is loaded from the
  installed package by itself, beside the functions it uses compiled from the package's own utils.py.
- diffusers: a scheduler is driven by its pipelines' loop (`set_timesteps`, then per timestep
  `scale_model_input`, the model, `step`), with Karras sigmas between our model's sigma_min and
  sigma_max, so its grid is `step_schedule("karras", ...)` (float32). Its model is an epsilon
  predictor on the scaled input `x / sqrt(1 + sigma^2)` (`epsilon_model`), made from our denoiser
  at the sigma the scheduler evaluates next.
"""

import ast
import importlib
import importlib.util
import inspect
import math
import sys
import types
from pathlib import Path

import torch

INSTALL = {
    "k-diffusion": "pip install -e '.[bench]' && pip install --no-deps k-diffusion==0.1.1.post1",
    "diffusers": "pip install -e '.[bench]'",
}

# Our solver -> k-diffusion's sampler of the same update (DDIM with eta = 0 and DPM-Solver-1 are Euler in sigma-space).
K_DIFFUSION = {
    "ddim": "sample_euler",
    "euler": "sample_euler",
    "dpm_solver_1": "sample_euler",
    "euler_ancestral": "sample_euler_ancestral",
    "heun": "sample_heun",
    "dpm_solver_2": "sample_dpm_2",
    "dpmpp_2m": "sample_dpmpp_2m",
}

# Our solver -> (diffusers scheduler, options that select the same algorithm).
DIFFUSERS = {
    "ddim": ("EulerDiscreteScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "dpm_solver_1": ("EulerDiscreteScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    "dpm_solver_2": ("KDPM2DiscreteScheduler", {}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2, "final_sigmas_type": "zero"}),
    "unipc": ("UniPCMultistepScheduler", {"solver_order": 2, "solver_type": "bh2", "predict_x0": True, "final_sigmas_type": "zero"}),
}

# The peers' own higher-order deterministic methods (one call per step), which have no counterpart here.
K_DIFFUSION_ONLY = {"lms (order 4)": "sample_lms"}
DIFFUSERS_ONLY = {
    "dpmpp_3m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 3, "final_sigmas_type": "zero"}),
    "unipc (order 3)": ("UniPCMultistepScheduler", {"solver_order": 3, "final_sigmas_type": "zero"}),
    "deis (order 3)": ("DEISMultistepScheduler", {"solver_order": 3}),
}  # not LMSDiscreteScheduler: its Karras grid ignores sigma_min and sigma_max and spans its timestep table

# DDPM's betas, whose timesteps' sigmas reach 157: with a table that ends below sigma_max = 80 (the
# default betas of Heun and KDPM2 end at 14.6) the first sigmas all map to timestep 999, and a
# scheduler that finds its first timestep repeated starts at the second sigma.
VP_TABLE = {"num_train_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02, "beta_schedule": "linear"}


def missing(package, error):
    """The line to print when `package` (or what it imports) is absent."""
    return f"{package} is not available ({error}); to compare with it: {INSTALL[package]}"


def used_attributes(source, name):
    """Attributes read from the module `name` in `source`, e.g. {'append_dims'} for utils.append_dims."""
    return {
        node.attr
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == name
    }


def functions_from(path, names, module_name):
    """A module holding the top-level functions `names` of the file at `path`, with the file's own
    imports of the names they use (so none of its other imports runs)."""
    tree = ast.parse(Path(path).read_text())
    functions = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in names]
    if {f.name for f in functions} != set(names):
        raise ImportError(f"{path} lacks {sorted(set(names) - {f.name for f in functions})}")
    used = {node.id for f in functions for node in ast.walk(f) if isinstance(node, ast.Name)}
    imports = [
        node
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom) and any((alias.asname or alias.name).split(".")[0] in used for alias in node.names)
    ]
    module = types.ModuleType(module_name)
    exec(compile(ast.Module(body=imports + functions, type_ignores=[]), str(path), "exec"), module.__dict__)
    return module


def k_diffusion_sampling():
    """k-diffusion's `sampling` module, loaded from the installed package without its __init__."""
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None:
        raise ModuleNotFoundError("No module named 'k_diffusion'")
    folder, name = Path(spec.origin).parent, "k_diffusion_sampling"
    package = types.ModuleType(name)
    package.__path__ = [str(folder)]
    package.utils = functions_from(folder / "utils.py", used_attributes((folder / "sampling.py").read_text(), "utils"), f"{name}.utils")
    sys.modules[name], sys.modules[f"{name}.utils"] = package, package.utils
    spec = importlib.util.spec_from_file_location(f"{name}.sampling", folder / "sampling.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def k_diffusion_sample(sampler, denoiser, x, sigmas, generator=None):
    """`sampler` (a k-diffusion sample_* function) from x at sigmas[0], with the grid in x's dtype as
    k-diffusion's own grids are; a stochastic sampler draws its noise from `generator`, in the order
    our solvers draw it."""
    sigmas = sigmas.to(x.dtype)
    if "noise_sampler" in inspect.signature(sampler).parameters:
        return sampler(
            denoiser,
            x,
            sigmas,
            disable=True,
            noise_sampler=lambda sigma, sigma_next: torch.randn(x.shape, generator=generator, dtype=x.dtype),
        )
    return sampler(denoiser, x, sigmas, disable=True)


def diffusers_scheduler(name, options, sigma_min, sigma_max):
    """diffusers' scheduler `name` with `options`, Karras sigmas from sigma_max to sigma_min then 0.

    `from_config` keeps sigma_min and sigma_max in the config also where the constructor does not
    take them, and every scheduler's Karras conversion reads them from there.
    """
    schedulers = importlib.import_module("diffusers")
    config = {**VP_TABLE, "use_karras_sigmas": True, "sigma_min": sigma_min, "sigma_max": sigma_max, **options}
    return getattr(schedulers, name).from_config(config)


def model_sigma(scheduler):
    """The sigma at which `scheduler` calls the model next: `sigmas[step_index]`, or KDPM2's
    midpoint `sigmas_interpol[step_index]` on its second call of a step."""
    index = scheduler.step_index or 0
    if hasattr(scheduler, "sigmas_interpol") and not scheduler.state_in_first_order:
        return scheduler.sigmas_interpol[index].item()
    return scheduler.sigmas[index].item()


def epsilon_model(denoiser):
    """diffusers' model from our denoiser: `model(model_input, sigma)` is the noise prediction
    (x - D(x; sigma)) / sigma on the scaled input model_input = x / sqrt(1 + sigma^2)."""

    def model(model_input, sigma):
        x = model_input * math.sqrt(1 + sigma**2)
        return (x - denoiser(x, torch.full((x.shape[0],), sigma, dtype=x.dtype))) / sigma

    return model


def diffusers_sample(scheduler, model, x, num_steps):
    """Our x at the grid's sigma_max through `scheduler`'s loop of `num_steps` steps, calling
    `model(model_input, sigma)` (see `epsilon_model`). Schedulers that convert sigma to (alpha_t,
    sigma_t) keep the VP state alpha_t x with alpha_t = 1 / sqrt(1 + sigma^2)."""
    scheduler.set_timesteps(num_steps)
    vp = hasattr(scheduler, "_sigma_to_alpha_sigma_t")
    sample = x / math.sqrt(1 + scheduler.sigmas[0].item() ** 2) if vp else x
    for t in scheduler.timesteps:
        model_input = scheduler.scale_model_input(sample, t)
        sample = scheduler.step(model(model_input, model_sigma(scheduler)), t, sample).prev_sample
    return sample
