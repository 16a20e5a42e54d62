"""Denoising networks: a small U-Net for images and an MLP for vectors.

Each network maps a noisy input `x` and a per-sample conditioning scalar `c` (shape [B]: a timestep
index, a scaled time or EDM's `c_noise = log(sigma) / 4`; the caller decides) to a tensor shaped
like `x`. The scalar is embedded (sinusoidal or random Fourier features) and mapped by a small MLP
to a conditioning vector that every block adds as a per-channel bias (Ho et al. 2020, App. B;
Karras et al. 2022, App. F.2).

The options params.yaml gives a network are checked against their declaration (`models.axes`:
`UNetOptions`, `MLPOptions`) before any network is built; the networks check what the data decides
(in_channels, dim, the input's size) and the rule between options (groups dividing every width).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from .tables import choose


def _require(ok, name, value, allowed):
    """Raise a ValueError naming the argument, its value and what is allowed."""
    if not ok:
        raise ValueError(f"{name}={value!r} is invalid; allowed: {allowed}")


def _require_positive(**sizes):
    for name, value in sizes.items():
        _require(isinstance(value, int) and value > 0, name, value, "a positive integer")


def _require_positive_even(name, value):
    _require(isinstance(value, int) and value > 0 and value % 2 == 0, name, value, "a positive even integer")


def _zero_initialized(layer):
    """`layer` with zero weight and bias, so that a network ending in it initially outputs 0
    (Song et al. 2021; Karras et al. 2022)."""
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class PositionalEmbedding(nn.Module):
    """Sinusoidal embedding (Vaswani et al. 2017; DDPM, Ho et al. 2020): [cos(c f_k), sin(c f_k)]
    with f_k = (1 / max_positions) ** (k / (dim / 2)), k = 0 .. dim/2 - 1."""

    def __init__(self, dim, max_positions=10000):
        super().__init__()
        _require_positive_even("dim", dim)
        _require(max_positions > 0, "max_positions", max_positions, "a positive number")
        half = dim // 2
        freqs = (1 / max_positions) ** (torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, c):
        angles = c[:, None] * self.freqs
        return torch.cat([angles.cos(), angles.sin()], dim=1)


class FourierEmbedding(nn.Module):
    """Random Fourier features (Tancik et al. 2020; NCSN++, Song et al. 2021):
    [cos(2 pi f c), sin(2 pi f c)] with f ~ N(0, scale^2) drawn once and stored as a buffer."""

    def __init__(self, dim, scale=16):
        super().__init__()
        _require_positive_even("dim", dim)
        _require(scale > 0, "scale", scale, "a positive number")
        self.register_buffer("freqs", torch.randn(dim // 2) * scale)

    def forward(self, c):
        angles = c[:, None] * (2 * math.pi * self.freqs)
        return torch.cat([angles.cos(), angles.sin()], dim=1)


EMBEDDINGS = {"positional": PositionalEmbedding, "fourier": FourierEmbedding}


def conditioning_network(embedding, dim):
    """Embedding of c -> Linear -> SiLU -> Linear -> SiLU, giving the conditioning vector [B, dim]
    that each block projects to its own bias (DDPM's temb; EDM's map_layer0/1)."""
    return nn.Sequential(choose(EMBEDDINGS, "embedding", embedding)(dim), nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim), nn.SiLU())


class ResidualBlock(nn.Module):
    """DDPM residual block (Ho et al. 2020, App. B): GroupNorm -> SiLU -> Conv3x3, plus a
    per-channel bias from the conditioning vector, GroupNorm -> SiLU -> Dropout -> Conv3x3,
    and a 1x1 convolution on the skip path when the channel count changes."""

    def __init__(self, in_channels, out_channels, cond_dim, groups, dropout):
        super().__init__()
        self.norm0 = nn.GroupNorm(groups, in_channels)
        self.conv0 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.cond_bias = nn.Linear(cond_dim, out_channels)
        self.norm1 = nn.GroupNorm(groups, out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv1 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x, cond):
        h = self.conv0(F.silu(self.norm0(x)))
        h = h + self.cond_bias(cond)[:, :, None, None]
        h = self.conv1(self.dropout(F.silu(self.norm1(h))))
        return h + self.skip(x)


class SelfAttention(nn.Module):
    """Single-head self-attention over pixels with a residual connection (Ho et al. 2020, App. B).
    The query/key/value projection has no bias: a key bias cancels in the softmax and a value bias
    is the output projection's bias."""

    def __init__(self, channels, groups):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1, bias=False)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        batch, channels, height, width = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(batch, 3, channels, height * width).transpose(2, 3).unbind(1)
        h = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(h.transpose(1, 2).reshape(batch, channels, height, width))


class Upsample(nn.Module):
    """Nearest-neighbour 2x upsampling followed by a 3x3 convolution (Ho et al. 2020) that also
    changes the channel count to the finer level's (the up-convolution of Ronneberger et al. 2015)."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class UNet(nn.Module):
    """Small U-Net for images [B, C, H, W] after DDPM++ / EDM's SongUNet (Song et al. 2021;
    Karras et al. 2022), kept lean: `num_blocks` residual blocks per resolution, average-pool
    downsampling, self-attention at the lowest resolution, one skip connection per resolution
    concatenated on the way up (Ronneberger et al. 2015), and a zero-initialized output convolution
    so the untrained network returns 0. H and W must be divisible by 2 ** (len(channel_mult) - 1).
    The defaults (about 100k parameters) suit 8x8 single-channel digits: 16 channels at 8x8 and
    64 at 4x4, where most of the parameters sit at little cost; `embedding_dim` defaults to
    4 * channels as in DDPM."""

    def __init__(
        self,
        in_channels=1,
        channels=16,
        channel_mult=(1, 4),
        num_blocks=1,
        attention=True,
        dropout=0.0,
        groups=8,
        embedding="positional",
        embedding_dim=None,
    ):
        super().__init__()
        embedding_dim = 4 * channels if embedding_dim is None else embedding_dim
        _require_positive(in_channels=in_channels)
        widths = [channels * m for m in channel_mult]
        _require(all(w % groups == 0 for w in widths), "groups", groups, f"a divisor of every resolution's channel count {widths}")
        self.downsampling = 2 ** (len(widths) - 1)

        def blocks(in_channels, out_channels):
            return nn.ModuleList(
                ResidualBlock(in_channels if i == 0 else out_channels, out_channels, embedding_dim, groups, dropout)
                for i in range(num_blocks)
            )

        self.cond = conditioning_network(embedding, embedding_dim)
        self.conv_in = nn.Conv2d(in_channels, widths[0], 3, padding=1)
        self.down = nn.ModuleList(blocks(w_in, w) for w_in, w in zip([widths[0]] + widths[:-1], widths))
        self.attention = SelfAttention(widths[-1], groups) if attention else nn.Identity()
        coarse_to_fine = widths[::-1]
        self.upsample = nn.ModuleList(Upsample(w_in, w) for w_in, w in zip(coarse_to_fine[:-1], coarse_to_fine[1:]))
        self.up = nn.ModuleList(blocks(2 * w, w) for w in coarse_to_fine[1:])
        self.norm_out = nn.GroupNorm(groups, widths[0])
        self.conv_out = _zero_initialized(nn.Conv2d(widths[0], in_channels, 3, padding=1))

    def forward(self, x, c):
        height, width = x.shape[-2:]
        _require(
            height % self.downsampling == 0 and width % self.downsampling == 0,
            "x.shape",
            tuple(x.shape),
            f"H and W divisible by {self.downsampling}",
        )
        cond = self.cond(c)
        h = self.conv_in(x)
        skips = []
        for level, blocks in enumerate(self.down):
            if level > 0:  # Keep the finer resolution's features for the skip connection, then downsample.
                skips.append(h)
                h = F.avg_pool2d(h, 2)
            for block in blocks:
                h = block(h, cond)
        h = self.attention(h)
        for upsample, blocks in zip(self.upsample, self.up):
            h = torch.cat([upsample(h), skips.pop()], dim=1)
            for block in blocks:
                h = block(h, cond)
        return self.conv_out(F.silu(self.norm_out(h)))


class MLP(nn.Module):
    """MLP denoiser for vectors [B, dim] such as 2-D toy data: `depth` hidden layers of width
    `hidden`, each adding its own projection of the conditioning vector before SiLU and dropout,
    and a zero-initialized output layer so the untrained network returns 0."""

    def __init__(self, dim, hidden=128, depth=3, embedding="positional", embedding_dim=64, dropout=0.0):
        super().__init__()
        _require_positive(dim=dim)
        self.cond = conditioning_network(embedding, embedding_dim)
        self.layers = nn.ModuleList(nn.Linear(dim if i == 0 else hidden, hidden) for i in range(depth))
        self.cond_biases = nn.ModuleList(nn.Linear(embedding_dim, hidden) for _ in range(depth))
        self.dropout = nn.Dropout(dropout)
        self.out = _zero_initialized(nn.Linear(hidden, dim))

    def forward(self, x, c):
        cond = self.cond(c)
        h = x
        for layer, cond_bias in zip(self.layers, self.cond_biases):
            h = self.dropout(F.silu(layer(h) + cond_bias(cond)))
        return self.out(h)


def parameter_count(module):
    """Number of trainable parameters of `module`."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


NETWORKS = {"unet": UNet, "mlp": MLP}
