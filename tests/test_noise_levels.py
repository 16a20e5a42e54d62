"""What noise levels training sees (`tasks.compute.noise_levels`): the histogram of log sigma that a
configuration's noise sampling draws from its model's schedule, as the report's figure draws it."""

import math

import pytest
import torch

from tasks.compute.noise_levels import training_noise_levels
from tasks.compute.train import build_model
from tests.conftest import tiny_configuration


@pytest.mark.parametrize(
    "changes, median",
    [
        ({}, -1.2),  # EDM's log-normal: log sigma ~ N(-1.2, 1.2^2)
        ({"noise_sampling": "logit_normal"}, 0.0),  # SD3: log sigma ~ N(0, 1)
        ({"noise_schedule": "flow", "noise_sampling": "uniform"}, 0.0),  # rectified flow's t uniform: median t = 1/2, sigma 1
        ({"noise_schedule": "learned", "noise_sampling": "uniform"}, (math.log(0.002) + math.log(80)) / 2),  # VDM, as initialised
    ],
)
def test_the_density_of_log_sigma_is_the_sampling_papers_and_leaves_the_model_as_it_was(changes, median):
    config = tiny_configuration(**changes)
    model = build_model(config, (1, 8, 8))
    before = {key: value.clone() for key, value in model.state_dict().items()}
    levels = training_noise_levels(model, config)
    edges, density = torch.tensor(levels["edges"]), torch.tensor(levels["density"])
    widths = edges[1:] - edges[:-1]
    assert (density * widths).sum().item() == pytest.approx(1.0, abs=1e-3)  # a density of log sigma
    crossing = int((torch.cumsum(density * widths, 0) < 0.5).sum())  # the bin that holds the median
    assert edges[crossing].item() - 0.05 <= median <= edges[crossing + 1].item() + 0.05
    schedule = model.noise_schedule
    assert (levels["sigma_min"], levels["sigma_max"]) == pytest.approx((schedule.sigma_min, schedule.sigma_max))
    assert all(torch.equal(before[key], value) for key, value in model.state_dict().items())
    assert all(value.dtype == before[key].dtype for key, value in model.state_dict().items())  # its schedule not made float64
    assert levels["edges"][0] == pytest.approx(math.log(1e-3)) and len(levels["density"]) == 120
