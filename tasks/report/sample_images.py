"""Sample grids as images: a set of samples as one uint8 array, and as a captioned PNG, upscaled by
nearest neighbour so that every pixel is a visible square."""

import math

import torch
from matplotlib.figure import Figure

from tasks.files import atomic_open

SEPARATOR = 255  # white 1-pixel lines between the images of a grid, and white empty slots
WIDTH, DPI, CAPTION_LINE = 512, 100, 22  # a samples PNG: its least width and its caption's line height, in pixels


def tiled_samples(images, columns=None):
    """Images [N, C, H, W] in [-1, 1] (C = 1 gray or 3 RGB; clipped, NaN drawn mid-gray) as one uint8
    [rows * (H + 1) - 1, columns * (W + 1) - 1, 3] grid, row-major, 1-pixel white separation;
    `columns` defaults to ceil(sqrt(N)). Pixel -1 is 0 (black), 1 is 255 (white)."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images have shape {tuple(images.shape)}; allowed: [N, 1, H, W] or [N, 3, H, W]")
    count, _, height, width = images.shape
    columns = columns or math.ceil(math.sqrt(count))
    if columns < 1:
        raise ValueError(f"columns is {columns}; allowed: a positive integer or None")
    rows = math.ceil(count / columns)
    pixels = ((images.detach().cpu().float().nan_to_num(0.0).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    pixels = pixels.expand(-1, 3, -1, -1).permute(0, 2, 3, 1)
    tiled = torch.full((rows * (height + 1) - 1, columns * (width + 1) - 1, 3), SEPARATOR, dtype=torch.uint8)
    for index, image in enumerate(pixels):
        top, left = (index // columns) * (height + 1), (index % columns) * (width + 1)
        tiled[top : top + height, left : left + width] = image
    return tiled.numpy()


def save_samples_png(images, path, columns=None, caption=None):
    """Write `tiled_samples(images, columns)` to `path` as one PNG, atomically: upscaled by the
    smallest whole factor that makes it at least `WIDTH` pixels wide (nearest neighbour: every
    pixel a square block), with `caption` above it."""
    tiled = tiled_samples(images, columns)
    scale = math.ceil(WIDTH / tiled.shape[1])
    tiled = tiled.repeat(scale, axis=0).repeat(scale, axis=1)
    lines = caption.count("\n") + 1 if caption else 0
    top = CAPTION_LINE * lines + CAPTION_LINE // 2 * bool(lines)
    figure = Figure(figsize=(tiled.shape[1] / DPI, (tiled.shape[0] + top) / DPI), dpi=DPI, facecolor="white")
    figure.figimage(tiled, xo=0, yo=0, origin="upper")
    if caption:
        figure.text(0.5, 1 - CAPTION_LINE / 4 / (tiled.shape[0] + top), caption, ha="center", va="top", fontsize=CAPTION_LINE * 0.55)
    with atomic_open(path) as file:
        figure.savefig(file, format="png", dpi=DPI)
