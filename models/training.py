"""Training-loop pieces: EMA of weights, learning-rate warm-up, one optimisation step."""

import copy
import math
from contextlib import nullcontext

import torch


class EMA:
    """Exponential moving average of a model's weights: a fixed `decay`, or EDM's half-life in
    images (Karras et al. 2022, App. F.1: beta = 0.5^(batch / half_life), with the half-life ramped
    up to `rampup` x images seen so far)."""

    def __init__(self, model, decay=None, half_life_images=None, rampup=None):
        if (decay is None) == (half_life_images is None):
            raise ValueError("EMA: give exactly one of decay (e.g. 0.999) or half_life_images (e.g. 500_000)")
        if decay is not None and not 0 <= decay < 1:
            raise ValueError(f"EMA: decay={decay!r}; allowed: 0 <= decay < 1")
        self.decay, self.half_life_images, self.rampup = decay, half_life_images, rampup
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.parameters, self.buffers = list(self.model.parameters()), list(self.model.buffers())
        self.images = 0

    def beta(self, batch_size):
        if self.decay is not None:
            return self.decay
        half_life = self.half_life_images
        if self.rampup is not None:
            half_life = min(half_life, self.images * self.rampup)
        return 0.5 ** (batch_size / max(half_life, 1e-8))

    @torch.no_grad()
    def update(self, model, batch_size):
        """ema <- ema + (1 - beta) (current - ema), all tensors in one foreach call (one kernel
        launch per group on CUDA; the same per-tensor lerp on CPU); buffers are copied."""
        self.images += batch_size
        torch._foreach_lerp_(self.parameters, list(model.parameters()), 1 - self.beta(batch_size))
        if self.buffers:
            torch._foreach_copy_(self.buffers, list(model.buffers()))

    def state_dict(self):
        return {"model": self.model.state_dict(), "images": self.images}

    def load_state_dict(self, state):
        self.model.load_state_dict(state["model"])
        self.images = state["images"]


def warmup(step, warmup_steps):
    """Linear learning-rate warm-up factor (Goyal et al. 2017): step/warmup_steps, then 1."""
    return min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0


def autocast(device, enabled):
    """bf16 autocast on CUDA when enabled; full precision elsewhere."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if enabled and device.type == "cuda" else nullcontext()


def train_step(model, objective, optimizer, x0, *, generator=None, ema=None, lr=None, grad_clip=None, mixed_precision=False):
    """One step: the network descends E[loss]; a learned schedule descends Var[loss] = E[loss^2] - E[loss]^2
    (Kingma et al. 2021, App. I.2; the mean does not depend on its shape). Returns (loss, grad norm)."""
    if lr is not None:
        for group in optimizer.param_groups:
            group["lr"] = lr
    schedule_parameters = [p for p in model.noise_schedule.parameters() if p.requires_grad]
    with autocast(x0.device, mixed_precision):
        per_sample, _ = objective(model, x0, generator)
    per_sample = per_sample.float()
    loss = per_sample.mean()
    if not torch.isfinite(loss):
        raise FloatingPointError(f"loss is {loss.item()}")
    optimizer.zero_grad(set_to_none=True)
    if schedule_parameters:
        variance_grads = torch.autograd.grad((per_sample**2).mean(), schedule_parameters, retain_graph=True)
    loss.backward()
    if schedule_parameters:
        for p, g in zip(schedule_parameters, variance_grads):
            p.grad = g
    parameters = [p for p in model.parameters() if p.grad is not None]
    norm = torch.nn.utils.clip_grad_norm_(parameters, grad_clip if grad_clip else math.inf)
    optimizer.step()
    if ema is not None:
        ema.update(model, x0.shape[0])
    return loss.item(), norm.item()
