"""The training core end to end: every configuration trains, the loss is right at the oracle, and a
short run on 2-D data learns the distribution with every parameterization."""

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from models.conditioning import CONDITIONINGS
from models.diffusion import DiffusionModel
from models.gaussian_mixture import GaussianMixture
from models.networks import MLP
from models.noise_schedules import EDM, NOISE_SCHEDULES
from models.objectives import NOISE_SAMPLING, WEIGHTINGS, Objective
from models.parameterizations import PARAMETERIZATIONS
from models.solvers import SOLVERS
from models.step_schedules import step_schedule
from models.training import EMA, train_step, warmup
from tests.conftest import noise_schedule
from tests.two_sample import mmd

MIXTURE = GaussianMixture.ring()


def test_every_combination_constructs_trains_and_samples(one_thread):
    """Schedule x parameterization x conditioning x noise sampling x weighting: each trains two
    steps to a finite loss and its model is a denoiser any solver accepts; the only refusals are
    the pairs that need a discrete schedule, and t uniform on EDM's schedule, with an error that says so."""
    x0 = MIXTURE.sample(32, torch.Generator().manual_seed(0))
    trained, refused = 0, 0
    for schedule, parameterization, conditioning, sampling, weighting in itertools.product(
        NOISE_SCHEDULES, PARAMETERIZATIONS, CONDITIONINGS, NOISE_SAMPLING, WEIGHTINGS
    ):
        needs_discrete = conditioning == "index" or sampling == "uniform_discrete"
        torch.manual_seed(0)
        try:
            model = DiffusionModel(MLP(2, hidden=16, depth=2, embedding_dim=16), noise_schedule(schedule), parameterization, conditioning)
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            for _ in range(2):
                loss, _ = train_step(model, Objective(sampling, weighting), optimizer, x0, generator=torch.Generator().manual_seed(1))
        except ValueError as error:
            discrete_refused = needs_discrete and schedule != "ddpm" and "discrete schedule" in str(error)
            assert discrete_refused or (sampling, schedule) == ("uniform", "edm") and "no paper's recipe" in str(error)
            refused += 1
            continue
        assert np.isfinite(loss)
        with torch.no_grad():
            out = SOLVERS["dpmpp_2m"](
                model, torch.randn(4, 2) * model.noise_schedule.sigma_max, step_schedule("karras", 3, model.noise_schedule)
            )
        assert out.shape == (4, 2) and torch.isfinite(out).all()
        trained += 1
    assert trained == 1380 and refused == 1140


class OracleNetwork(nn.Module):
    """Outputs the optimal F* = (D* - c_skip x)/c_out of the exact mixture denoiser, plus a per-sample offset."""

    def __init__(self, batch):
        super().__init__()
        self.offset = nn.Parameter(torch.zeros(batch, 1, dtype=torch.float64))
        self.model = None

    def forward(self, scaled_x, c):
        sigma = torch.exp(4 * c)  # c_noise conditioning
        c_skip, c_out, c_in = self.model.coefficients(sigma[:, None])
        x = scaled_x / c_in
        return (MIXTURE.denoiser(x, sigma) - c_skip * x) / c_out + self.offset


@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
@pytest.mark.parametrize("weighting", WEIGHTINGS)
def test_expected_gradient_vanishes_at_the_oracle(parameterization, weighting):
    """E[dL/dF] = 0 at F* (Monte Carlo, z-score), and is clearly non-zero 0.1 away from it."""
    batch = 20000
    x0 = MIXTURE.sample(batch, torch.Generator().manual_seed(2), torch.float64)
    network = OracleNetwork(batch)
    model = DiffusionModel(network, EDM(), parameterization, "c_noise")
    network.model = model

    def z_score(offset):
        with torch.no_grad():
            network.offset.fill_(offset)
        network.offset.grad = None
        loss, _ = Objective("log_normal", weighting)(model, x0, torch.Generator().manual_seed(3))
        loss.sum().backward()
        grads = network.offset.grad.flatten()
        return (grads.mean() / (grads.std() / batch**0.5)).item()

    assert abs(z_score(0.0)) < 4
    assert abs(z_score(0.1)) > 10


def test_ema_follows_its_formulas():
    model = nn.Linear(3, 3)
    ema = EMA(model, decay=0.9)
    before = ema.model.weight.clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model, batch_size=8)
    torch.testing.assert_close(ema.model.weight, 0.9 * before + 0.1 * model.weight)
    assert EMA(model, half_life_images=1000).beta(100) == pytest.approx(0.5**0.1)
    ramped = EMA(model, half_life_images=1000, rampup=0.05)
    ramped.images = 4000  # half-life min(1000, 0.05 * 4000) = 200
    assert ramped.beta(100) == pytest.approx(0.5**0.5)
    with pytest.raises(ValueError, match="exactly one"):
        EMA(model)
    with pytest.raises(ValueError, match="decay"):
        EMA(model, decay=1.5)


def test_warmup_and_gradient_clipping():
    assert [warmup(s, 4) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert warmup(0, 0) == 1.0
    torch.manual_seed(0)
    model = DiffusionModel(MLP(2, hidden=16, depth=2), EDM(), "x0", "c_noise")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    x0 = MIXTURE.sample(64, torch.Generator().manual_seed(4))
    _, norm = train_step(model, Objective("log_normal", "snr"), optimizer, x0, generator=torch.Generator().manual_seed(5), grad_clip=1e-3)
    clipped = torch.sqrt(sum((p.grad**2).sum() for p in model.parameters() if p.grad is not None))
    assert norm > 1e-3 and clipped <= 1e-3 * 1.0001


def train(parameterization, schedule, sampling, weighting, steps, seed=0, mixed_precision=False):
    torch.manual_seed(seed)
    model = DiffusionModel(MLP(2, hidden=128, depth=3), schedule, parameterization, "c_noise")
    ema = EMA(model, decay=0.99)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    objective, generator, losses = Objective(sampling, weighting), torch.Generator().manual_seed(seed), []
    for _ in range(steps):
        x0 = MIXTURE.sample(256, generator)
        losses.append(train_step(model, objective, optimizer, x0, generator=generator, ema=ema, mixed_precision=mixed_precision)[0])
    return model, ema, losses


def test_training_is_deterministic_given_a_seed(one_thread):
    runs = [train("edm", EDM(), "log_normal", "edm", steps=20)[0] for _ in range(2)]
    for a, b in zip(*(r.state_dict().values() for r in runs)):
        assert torch.equal(a, b)
    cpu_mixed = train("edm", EDM(), "log_normal", "edm", steps=20, mixed_precision=True)[0]  # bf16 only on CUDA
    for a, b in zip(runs[0].state_dict().values(), cpu_mixed.state_dict().values()):
        assert torch.equal(a, b)


CONFIGURATIONS = {
    "eps": (NOISE_SCHEDULES["vp_linear"], "uniform", "simple"),
    "x0": (NOISE_SCHEDULES["vp_cosine"], "uniform", "truncated_snr"),
    "v": (NOISE_SCHEDULES["vp_cosine"], "uniform", "simple"),
    "edm": (NOISE_SCHEDULES["edm"], "log_normal", "edm"),
    "flow": (NOISE_SCHEDULES["flow"], "logit_normal", "simple"),
}


@pytest.mark.parametrize("parameterization", CONFIGURATIONS)
def test_short_training_learns_the_mixture(parameterization, one_thread):
    """The loss on a fixed evaluation batch drops, and samples are far closer to held-out data
    than a Gaussian with the data's scale but no modes."""
    schedule, sampling, weighting = CONFIGURATIONS[parameterization]
    evaluation = MIXTURE.sample(8192, torch.Generator().manual_seed(5))

    def evaluation_loss(model):
        with torch.no_grad():
            return Objective(sampling, weighting)(model, evaluation, torch.Generator().manual_seed(6))[0].mean().item()

    torch.manual_seed(0)
    initial = evaluation_loss(DiffusionModel(MLP(2, hidden=128, depth=3), schedule(), parameterization, "c_noise"))
    _, ema, _ = train(parameterization, schedule(), sampling, weighting, steps=1500)
    assert evaluation_loss(ema.model) < 0.9 * initial
    held_out = MIXTURE.sample(2000, torch.Generator().manual_seed(6))
    grid = step_schedule("karras", 32, ema.model.noise_schedule)
    with torch.no_grad():
        samples = SOLVERS["heun"](ema.model, torch.randn(2000, 2, generator=torch.Generator().manual_seed(7)) * grid[0].item(), grid)
    blob = torch.randn(2000, 2, generator=torch.Generator().manual_seed(8)) * 0.75
    assert mmd(samples, held_out) < 0.5 * mmd(blob, held_out)


@pytest.mark.slow  # torch.compile: 20-30 s
def test_compiled_network_trains_like_eager():
    """torch.compile is optional: `network.compile()` keeps the state-dict keys and the numbers."""
    losses = []
    for compiled in (False, True):
        torch.manual_seed(0)
        model = DiffusionModel(MLP(2, hidden=32, depth=2), EDM(), "edm", "c_noise")
        if compiled:
            model.network.compile()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        x0 = MIXTURE.sample(64, torch.Generator().manual_seed(9))
        losses.append([train_step(model, Objective(), optimizer, x0, generator=torch.Generator().manual_seed(i))[0] for i in range(3)])
        keys = list(model.state_dict())
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-4)
    assert not any("_orig_mod" in k for k in keys)
