"""params.yaml validation: the shipped files load, and each malformed file fails fast with an error
that names the key path and what is allowed."""

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from schema.params_file import ParamsError, load_params

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ["params.yaml", "profiles/smoke.yaml", "profiles/cifar10.yaml"]


def create_files_it_reads(params):
    """The files a params file names (data.root unless downloaded, Inception's weights), made empty
    under the current directory, where stages resolve them."""
    data, features = params.get("data", {}), params.get("features", {})
    if data.get("root") and not data.get("download"):
        Path(data["root"]).mkdir(parents=True)
    if features.get("kind") == "inception":
        Path(features["weights_path"]).parent.mkdir(parents=True, exist_ok=True)
        Path(features["weights_path"]).touch()


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_params_files_are_valid(name, tmp_path, monkeypatch):
    """Each shipped file as it stands, run from a folder that holds the files it names (the CIFAR-10
    profile's Inception weights are not in the repository)."""
    monkeypatch.chdir(tmp_path)
    create_files_it_reads(yaml.safe_load((ROOT / name).read_text()))
    study = load_params(ROOT / name)
    assert study.train.configurations and study.evaluate.solvers


def test_cifar10_profile_without_its_inception_weights_names_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParamsError) as error:
        load_params(ROOT / "profiles/cifar10.yaml")
    weights = "data/raw/inception/weights-inception-2015-12-05-6726825d.pth"
    assert str(error.value) == (
        f"{ROOT / 'profiles/cifar10.yaml'}: features.weights_path: no file {str(tmp_path / weights)!r}; "
        f"allowed: an existing Inception-v3 weights file (see docs/study.md) (got {weights!r})"
    )


def base():
    return yaml.safe_load((ROOT / "profiles/smoke.yaml").read_text())


def edit(path, value):
    """A copy of the smoke params with `value` at the dotted `path` (None deletes the key)."""
    params = base()
    *parents, last = path.split(".")
    node = params
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is None:
        del node[int(last) if last.isdigit() else last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return yaml.safe_dump(params)


MALFORMED = {
    "empty": ("", ["empty"]),
    "yaml syntax": ("train: [unclosed\n", ["not valid YAML", "line"]),
    "not a mapping": ("- data\n- train\n", ["expected a mapping"]),
    "unknown section": (edit("trian", {"configurations": []}), ["trian", "unknown key", "did you mean 'train'"]),
    "missing section": (edit("evaluate", None), ["evaluate", "Field required"]),
    "schedule typo": (
        edit("train.configurations.edm.noise_schedule", "edn"),
        ["train.configurations.edm.noise_schedule", "'edn'", "did you mean 'edm'"],
    ),
    "unknown parameterization": (
        edit("train.configurations.eps.parameterization", "epsilon"),
        ["train.configurations.eps.parameterization", "allowed", "'eps'"],
    ),
    "weighting typo": (edit("train.configurations.edm.weighting", "min-snr"), ["weighting", "did you mean 'min_snr'"]),
    "negative steps": (edit("train.configurations.edm.steps", -5), ["train.configurations.edm.steps", "greater than 0", "-5"]),
    "steps not a number": (edit("train.configurations.edm.steps", "many"), ["train.configurations.edm.steps", "integer", "'many'"]),
    "zero learning rate": (edit("train.configurations.edm.lr", 0), ["train.configurations.edm.lr", "greater than 0"]),
    "unknown configuration key": (edit("train.configurations.edm.lrate", 0.1), ["train.configurations.edm.lrate", "did you mean 'lr'"]),
    "bad configuration name": (edit("train.configurations.my config", {"steps": 10}), ["train.configurations.my config.name", "pattern"]),
    "repeated configuration name": (edit("evaluate.seed", 0).replace("  eps:", "  edm:"), ["repeated key 'edm'", "line"]),
    "name inside a configuration": (edit("train.configurations.edm.name", "other"), ["has a 'name' key", "its name"]),
    "index needs a discrete schedule": (
        edit("train.configurations.edm.conditioning", "index"),
        ["conditioning 'index' needs a discrete schedule", "'edm'"],
    ),
    "unknown schedule option": (
        edit("train.configurations.edm.noise_schedule", {"name": "edm", "options": {"rho": 7}}),
        ["noise schedule 'edm'", "rho", "sigma_max"],
    ),
    "unknown network option": (
        edit("train.configurations.edm.network", {"name": "unet", "options": {"width": 3}}),
        ["network 'unet'", "width", "channels"],
    ),
    "unknown sampling option": (
        edit("train.configurations.edm.noise_sampling", {"name": "log_normal", "options": {"mean": 0}}),
        ["noise sampling 'log_normal'", "p_mean"],
    ),
    "two EMA settings": (edit("train.configurations.edm.ema_half_life_images", 1000), ["exactly one of ema_decay or ema_half_life_images"]),
    "no configurations": (edit("train.configurations", {}), ["train.configurations", "at least 1"]),
    "unknown solver": (edit("evaluate.solvers.0.name", "dpm_solver_4"), ["evaluate.solvers", "dpm_solver_4", "did you mean"]),
    "unknown solver option": (edit("evaluate.solvers.1.options", {"eta": 1.0}), ["solver 'heun'", "eta", "s_churn"]),
    "unknown step schedule": (edit("evaluate.step_schedules.0.name", "cosine"), ["evaluate.step_schedules", "'cosine'", "karras"]),
    "unknown step-schedule option": (
        edit("evaluate.step_schedules.0.options", {"spacing": "trailing"}),
        ["step schedule 'karras'", "spacing", "rho"],
    ),
    "budget below a solver's minimum": (
        edit("evaluate.solvers.0.name", "midpoint").replace("nfe:\n  - 4", "nfe:\n  - 1"),
        ["NFE budget 1", "'midpoint'", "(2)"],
    ),
    "no solvers": (edit("evaluate.solvers", []), ["evaluate.solvers", "at least 1"]),
    "test fraction above 1": (edit("data.test_fraction", 1.5), ["data.test_fraction", "less than 1", "1.5"]),
    "unknown dataset": (edit("data.dataset", "imagenet"), ["data.dataset", "'digits'", "'imagenet'"]),
    "mnist without root": (edit("data.dataset", "mnist"), ["data", "needs data.root"]),
    "inception without weights": (edit("features.kind", "inception"), ["features", "weights_path"]),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_params_fail_fast_naming_the_problem(case, tmp_path):
    text, expected = MALFORMED[case]
    path = tmp_path / "params.yaml"
    path.write_text(text)
    start = time.perf_counter()
    with pytest.raises(ParamsError) as error:
        load_params(path)
    assert time.perf_counter() - start < 1.0
    message = str(error.value)
    assert message.startswith(str(path))
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_command_line_exits_non_zero_and_touches_nothing(tmp_path):
    (tmp_path / "params.yaml").write_text(MALFORMED["schedule typo"][0])
    before = sorted(p.name for p in tmp_path.iterdir())
    result = subprocess.run(
        [sys.executable, "-m", "flows.runtime.check", str(tmp_path / "params.yaml")], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "train.configurations.edm.noise_schedule" in result.stderr and "did you mean 'edm'" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ParamsError, match="no such params file"):
        load_params(tmp_path / "nope.yaml")


def test_defaults_fill_optional_sections(tmp_path):
    params = base()
    for section in ("data", "features", "mlflow"):
        del params[section]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    study = load_params(tmp_path / "params.yaml")
    assert study.data.dataset == "digits" and study.features.kind == "classifier"
    assert study.mlflow.experiment == "design-space"
