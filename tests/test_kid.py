"""KID (models/kid.py): torchmetrics' estimate, unbiased where FID is not, and its bootstrap values
from the same resampling weights as FID's."""

import torch
from torchmetrics.image.kid import poly_mmd

from models.fid import resampling_weights
from models.kid import kid, kids, within


def gaussian(count, seed, shift=0.0, dim=8):
    return torch.randn(count, dim, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)) + shift


def test_kid_is_torchmetrics_polynomial_mmd():
    real, fake = gaussian(300, 0), gaussian(300, 1, shift=0.3)
    assert abs(kid(real, fake) - poly_mmd(real, fake).item()) < 1e-12


def test_kid_is_unbiased_where_the_squared_distance_of_means_is_not():
    """Samples of one distribution: KID averages 0 over many draws of 20 samples, while the plug-in squared
    distance of the sample means (FID's mean term) averages dim * (1/20 + 1/2000) > 0."""
    real = gaussian(2000, 0)
    draws, real_term = [gaussian(20, seed) for seed in range(1, 401)], within(real)
    values = torch.cat([kids(real, real_term, fake, torch.ones(1, 20)) for fake in draws])
    assert abs(values.mean()) < 3 * values.std() / len(values) ** 0.5
    biased = torch.tensor([(fake.mean(0) - real.mean(0)).pow(2).sum().item() for fake in draws])
    assert biased.mean() > 0.3 and biased.mean() > 10 * biased.std() / len(draws) ** 0.5


def test_bootstrap_weights_count_samples_and_leave_out_pairs_of_a_sample_with_itself():
    real, fake = gaussian(200, 0), gaussian(100, 1, shift=0.5)
    chosen = torch.zeros(1, 100, dtype=torch.float64)
    chosen[0, ::3] = 1  # a subset: its KID
    assert abs(kids(real, within(real), fake, chosen).item() - kid(real, fake[::3])) < 1e-12
    twice = torch.full((1, 100), 2.0, dtype=torch.float64)  # each sample twice: pairs of copies left out
    doubled = kids(real, within(real), fake, twice).item()
    generated = (torch.ones(100, 100) - torch.eye(100)).double()
    gram = (fake @ fake.t() / 8 + 1) ** 3
    expected = within(real) + (4 * (gram * generated).sum() / (200**2 - 400)).item() - 2 * ((real @ fake.t() / 8 + 1) ** 3).mean().item()
    assert abs(doubled - expected) < 1e-12
    spread = kids(real, within(real), fake, resampling_weights(100, 50, seed=0))
    assert spread.shape == (50,) and 0 < spread.std() < abs(kid(real, fake))
