"""A trained configuration of a study workspace, as the evaluate stage loads it: the benchmarks that
measure on a model the study trained (fid_spread, schedules_vs_k_diffusion) start here."""

from typing import NamedTuple

import torch

from schema.params_file import load_params
from tasks.compute.data import training_images
from tasks.compute.feature_space import load_statistics
from tasks.compute.provenance import training_identity
from tasks.compute.train import load_trained
from tasks.workspace import Workspace


class Trained(NamedTuple):
    study: object  # the workspace's params (`schema.study.Study`)
    config: object  # the configuration
    model: torch.nn.Module  # its EMA weights, as the evaluate stage samples them
    real: object  # the real-data statistics of the FID features
    sample_shape: tuple


def trained(root, configuration):
    """The `Trained` configuration `configuration` of the workspace `root` (its params.yaml, checkpoints
    and feature statistics); a checkpoint of another training is refused. Gradients off."""
    workspace = Workspace(root)
    study = load_params(workspace.root / "params.yaml")
    config = study.configuration(configuration)
    real, sample_shape = load_statistics(study.features, workspace.features / "statistics.pt")
    fingerprint = training_identity(config, training_images(workspace))
    model = load_trained(config, workspace.checkpoints(config.name), sample_shape, fingerprint=fingerprint, log=lambda message: None)
    torch.set_grad_enabled(False)
    return Trained(study, config, model, real, tuple(sample_shape))
