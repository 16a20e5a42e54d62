"""The study as an ablation (EDM's Table 2): the shipped studies cover the design space one axis at a
time; a configuration with a parent inherits from it and differs in exactly what it declares; where
a configuration sits in the design is not what it computes."""

from pathlib import Path

import pytest
import torch
import yaml

from models import axes
from schema.configurations import AXES
from schema.params_file import load_params
from schema.study import Study
from tasks.compute.provenance import training_identity
from tasks.record.tracking import configuration_key

from .test_params import create_files_it_reads

ROOT = Path(__file__).resolve().parents[1]
PAIRED = {"noise_schedule", "conditioning", "noise_sampling"}  # DDPM's discrete schedule, its index, its timesteps
UNIFORM = {"noise_schedule", "noise_sampling"}  # t uniform, and a schedule whose paper draws it so


def settings(config):
    """Every field that shapes the model, read straight from the configuration (not through its own methods)."""
    return {key: getattr(config, key) for key in type(config).model_fields if key not in ("name", "parent", "varies", "grid")}


@pytest.mark.parametrize("name", ["params.yaml", "profiles/cifar10.yaml"])
def test_a_shipped_study_covers_every_schedule_and_parameterization_one_axis_at_a_time(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    create_files_it_reads(yaml.safe_load((ROOT / name).read_text()))
    configurations = load_params(ROOT / name).train.configurations

    def used(axis):
        return {getattr(config, axis).name for config in configurations.values()}

    assert used("noise_schedule") == set(axes.NOISE_SCHEDULE_ENTRIES)
    assert used("parameterization") == set(axes.PARAMETERIZATION_ENTRIES)
    assert used("conditioning") == set(axes.CONDITIONING_ENTRIES)
    assert len(used("noise_sampling")) >= 3 and len(used("weighting")) >= 3
    assert [config.name for config in configurations.values() if config.parent is None] == ["edm"]  # one baseline
    for config in configurations.values():
        if config.parent is not None:
            parent = settings(configurations[config.parent])
            differs = {key for key, value in settings(config).items() if value != parent[key]}
            assert differs == set(config.varies), config.name
            together = (set(config.varies) == PAIRED and config.noise_schedule.entry.discrete) or (
                set(config.varies) == UNIFORM
                and config.noise_sampling.entry.needs_uniform_time
                and not configurations[config.parent].noise_schedule.entry.uniform_time
            )
            assert len(config.varies) == 1 or together, config.name


@pytest.mark.parametrize("name", ["params.yaml", "profiles/cifar10.yaml"])
def test_a_shipped_study_trains_every_noise_sampling_by_its_papers_recipe(name, tmp_path, monkeypatch):
    """t uniform only on a schedule whose paper draws it so (never sigma uniform on EDM's [0.002, 80]),
    and the noise-schedule ablation's parent one of them."""
    monkeypatch.chdir(tmp_path)
    create_files_it_reads(yaml.safe_load((ROOT / name).read_text()))
    configurations = load_params(ROOT / name).train.configurations
    for config in configurations.values():
        if config.noise_sampling.name == "uniform":
            assert config.noise_schedule.entry.uniform_time, config.name
    (parent,) = {config.parent for config in configurations.values() if config.varies == ["noise_schedule"]}
    assert configurations[parent].noise_sampling.name == "uniform" and configurations[parent].noise_schedule.name != "edm"


def study(configurations):
    return Study.model_validate(
        {"train": {"configurations": configurations}, "evaluate": {"solvers": ["euler"], "step_schedules": ["karras"], "nfe": [4]}}
    )


BASE = {"noise_schedule": "edm", "steps": 30, "lr": 0.001, "network": {"name": "unet", "options": {"channels": 8}}}


def test_a_configuration_takes_what_it_does_not_give_from_its_parent_and_grandparent():
    configurations = study(
        {
            "edm": BASE,
            "eps": {"parent": "edm", "varies": "parameterization", "parameterization": "eps"},
            "eps-time": {"parent": "eps", "varies": ["conditioning"], "conditioning": "time"},
        }
    ).train.configurations
    child, grandchild = configurations["eps"], configurations["eps-time"]
    assert (child.steps, child.lr, child.network.options, child.parameterization.name) == (30, 0.001, {"channels": 8}, "eps")
    assert (grandchild.parameterization.name, grandchild.conditioning.name, grandchild.lr) == ("eps", "time", 0.001)
    assert (grandchild.parent, grandchild.varies) == ("eps", ["conditioning"])
    assert study({"edm": BASE, "eps": {**BASE, "parent": "edm", "varies": "parameterization", "parameterization": "eps"}})


def test_ablations_group_each_parent_with_the_configurations_that_vary_one_axis_from_it():
    train = study(
        {
            "edm": BASE,
            "eps": {"parent": "edm", "varies": "parameterization", "parameterization": "eps"},
            "time": {"parent": "edm", "varies": "conditioning", "conditioning": "time"},
            "v": {"parent": "edm", "varies": "parameterization", "parameterization": "v"},
        }
    ).train
    assert train.ablations() == {("edm", ("parameterization",)): ["edm", "eps", "v"], ("edm", ("conditioning",)): ["edm", "time"]}


def test_the_place_in_the_design_is_not_part_of_what_a_configuration_computes():
    """Naming a parent, what it varies or a grid leaves the training identity and the MLflow run key
    as they are: the same settings are the same computation, reused."""
    alone = study({"v": {**BASE, "parameterization": "v"}})
    placed = study({"edm": BASE, "v": {"parent": "edm", "varies": "parameterization", "parameterization": "v", "grid": None}})
    a, b = alone.train.configurations["v"], placed.train.configurations["v"]
    assert set(AXES) <= set(a.settings()) and "parent" not in a.settings()
    assert training_identity(a, torch.zeros(2, 1, 8, 8)) == training_identity(b, torch.zeros(2, 1, 8, 8))
    assert configuration_key(alone, a, "identity") == configuration_key(placed, b, "identity")
