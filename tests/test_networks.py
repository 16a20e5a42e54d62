"""Tests of models/networks.py: shapes, initialization, gradient flow, use of the conditioning,
determinism, size and argument checking."""

import math
import re

import pytest
import torch
from pydantic import ValidationError

from models.choices import NetworkChoice
from models.networks import (
    EMBEDDINGS,
    MLP,
    NETWORKS,
    FourierEmbedding,
    PositionalEmbedding,
    UNet,
    parameter_count,
)

SMALL_UNET = dict(channels=8, channel_mult=(1, 2), groups=4)


def small_networks(embedding="positional"):
    """A small U-Net on [B, 1, 8, 8] and an MLP on [B, 2], with an input batch for each."""
    return [
        (UNet(embedding=embedding, **SMALL_UNET), torch.randn(6, 1, 8, 8)),
        (MLP(2, hidden=32, embedding=embedding, embedding_dim=16), torch.randn(6, 2)),
    ]


def perturb_output_layer(net):
    """Give the zero-initialized output layer nonzero weights, so that gradients reach every layer."""
    output_layer = net.conv_out if isinstance(net, UNet) else net.out
    with torch.no_grad():
        output_layer.weight.normal_(std=0.1)


def test_positional_embedding_matches_its_formula():
    dim, max_positions = 8, 10000
    c = torch.tensor([0.0, 1.5, 700.0])
    expected = torch.tensor(
        [
            [math.cos(ci * max_positions ** (-k / 4)) for k in range(4)] + [math.sin(ci * max_positions ** (-k / 4)) for k in range(4)]
            for ci in c.tolist()
        ]
    )
    torch.testing.assert_close(PositionalEmbedding(dim, max_positions)(c), expected)


def test_fourier_frequencies_are_a_saved_buffer_with_the_given_scale():
    torch.manual_seed(0)
    embedding = FourierEmbedding(4096, scale=16)
    assert list(embedding.parameters()) == []
    assert "freqs" in embedding.state_dict()
    assert embedding.freqs.std().item() == pytest.approx(16, rel=0.1)
    c = torch.tensor([0.25, -1.0])
    angles = 2 * math.pi * c[:, None] * embedding.freqs
    torch.testing.assert_close(embedding(c), torch.cat([angles.cos(), angles.sin()], dim=1))


@pytest.mark.parametrize("embedding", sorted(EMBEDDINGS))
@pytest.mark.parametrize(
    "kwargs, shape",
    [
        (dict(), (1, 1, 8, 8)),
        (dict(), (5, 1, 8, 8)),
        (dict(), (3, 1, 16, 16)),
        (dict(in_channels=3, channels=16, channel_mult=(1, 2, 2), num_blocks=2), (2, 3, 32, 32)),
        (dict(in_channels=3, attention=False), (2, 3, 16, 8)),
    ],
)
def test_unet_output_has_the_input_shape(embedding, kwargs, shape):
    net = UNet(embedding=embedding, **kwargs)
    perturb_output_layer(net)
    x = torch.randn(shape)
    assert net(x, torch.rand(shape[0]) * 1000).shape == x.shape


@pytest.mark.parametrize("embedding", sorted(EMBEDDINGS))
@pytest.mark.parametrize("batch", [1, 7])
def test_mlp_output_has_the_input_shape(embedding, batch):
    net = MLP(2, embedding=embedding)
    perturb_output_layer(net)
    x = torch.randn(batch, 2)
    assert net(x, torch.rand(batch)).shape == x.shape


@pytest.mark.parametrize("make, shape", [(lambda: UNet(), (4, 1, 8, 8)), (lambda: MLP(2), (4, 2))])
def test_output_is_zero_at_construction(make, shape):
    x = torch.randn(shape)
    assert torch.equal(make()(x, torch.tensor([0.0, 1.0, 10.0, 999.0])), torch.zeros_like(x))


@pytest.mark.parametrize("embedding", sorted(EMBEDDINGS))
def test_every_parameter_gets_a_nonzero_gradient(embedding):
    torch.manual_seed(0)
    for net, x in small_networks(embedding):
        perturb_output_layer(net)
        net(x, torch.rand(len(x))).square().sum().backward()
        for name, p in net.named_parameters():
            assert p.grad is not None, name
            assert torch.isfinite(p.grad).all(), name
            assert p.grad.abs().max() > 0, name


@pytest.mark.parametrize("embedding", sorted(EMBEDDINGS))
def test_networks_learn_a_target_that_depends_only_on_c(embedding):
    """x is noise independent of the target, so every predictor that ignores c has a loss of at
    least Var(target); the networks must get 20 times below that."""
    torch.manual_seed(0)
    c = torch.arange(4.0).repeat(8)
    value = torch.tensor([1.0, -1.0, 0.5, -0.5])[c.long()]
    for net, x in small_networks(embedding):
        x = torch.randn((len(c),) + x.shape[1:])
        target = value.view((-1,) + (1,) * (x.dim() - 1)).expand_as(x)
        optimizer = torch.optim.Adam(net.parameters(), lr=5e-3)
        for _ in range(100):
            loss = (net(x, c) - target).square().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        assert loss.item() < 0.05 * target.var().item(), type(net).__name__


@pytest.mark.parametrize(
    "name, kwargs, shape",
    [("unet", dict(embedding="fourier", dropout=0.1), (8, 1, 8, 8)), ("mlp", dict(dim=2, dropout=0.1), (8, 2))],
)
def test_construction_and_training_are_deterministic_under_a_seed(name, kwargs, shape):
    def train_and_evaluate(seed):
        torch.manual_seed(seed)
        net = NETWORKS[name](**kwargs)
        x = torch.randn(shape)
        c = torch.rand(shape[0])
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
        for _ in range(2):
            loss = (net(x, c) - x).square().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return net(x, c)

    assert torch.equal(train_and_evaluate(0), train_and_evaluate(0))
    assert not torch.equal(train_and_evaluate(0), train_and_evaluate(1))


def test_default_unet_parameter_count():
    assert 80_000 <= parameter_count(UNet()) <= 200_000


def test_parameter_count_counts_trainable_parameters_only():
    net = MLP(2, hidden=8, depth=1, embedding="fourier", embedding_dim=4)
    # cond: 2 x Linear(4, 4); layer: Linear(2, 8); bias: Linear(4, 8); out: Linear(8, 2).
    # The Fourier frequencies are a buffer, not counted.
    assert parameter_count(net) == 2 * (4 * 4 + 4) + (2 * 8 + 8) + (4 * 8 + 8) + (8 * 2 + 2)
    net.out.requires_grad_(False)
    assert parameter_count(net) == 2 * (4 * 4 + 4) + (2 * 8 + 8) + (4 * 8 + 8)


@pytest.mark.parametrize(
    "make, name, value",
    [
        (lambda: UNet(embedding="sine"), "embedding", "sine"),
        (lambda: UNet(groups=5), "groups", 5),
        (lambda: UNet(in_channels=-1), "in_channels", -1),
        (lambda: MLP(0), "dim", 0),
        (lambda: MLP(2, embedding="learned"), "embedding", "learned"),
        (lambda: PositionalEmbedding(7), "dim", 7),
        (lambda: PositionalEmbedding(8, max_positions=0), "max_positions", 0),
        (lambda: FourierEmbedding(8, scale=0), "scale", 0),
    ],
)
def test_invalid_arguments_raise_a_value_error_naming_them(make, name, value):
    with pytest.raises(ValueError, match=re.escape(f"{name}={value!r}") if name != "embedding" else re.escape(f"{value!r} is not a")):
        make()


@pytest.mark.parametrize(
    "network, options, key",
    [
        ("unet", {"channels": 0}, "channels"),
        ("unet", {"num_blocks": 0}, "num_blocks"),
        ("unet", {"channel_mult": []}, "channel_mult"),
        ("unet", {"channel_mult": [1, 0]}, "channel_mult"),
        ("unet", {"dropout": 1.0}, "dropout"),
        ("unet", {"embedding_dim": 7}, "embedding_dim"),
        ("unet", {"groups": 0}, "groups"),
        ("mlp", {"hidden": 0}, "hidden"),
        ("mlp", {"depth": -1}, "depth"),
    ],
)
def test_declared_options_are_checked_by_their_declaration_before_a_network_is_built(network, options, key):
    with pytest.raises(ValidationError, match=key):
        NetworkChoice(name=network, options=options)


def test_unet_rejects_images_it_cannot_downsample():
    with pytest.raises(ValueError, match=r"x\.shape.*divisible by 2"):
        UNet()(torch.randn(1, 1, 9, 8), torch.zeros(1))


@pytest.mark.parametrize("make, shape", [(lambda: UNet(), (2, 1, 8, 8)), (lambda: MLP(2), (2, 2))])
def test_networks_run_in_float64(make, shape):
    net = make().double()
    perturb_output_layer(net)
    assert net(torch.randn(shape, dtype=torch.float64), torch.rand(2, dtype=torch.float64)).dtype == torch.float64
