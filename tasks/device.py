"""The device a stage computes on: CUDA when present, else CPU; each stage decides for itself."""

import torch


def device():
    return "cuda" if torch.cuda.is_available() else "cpu"
