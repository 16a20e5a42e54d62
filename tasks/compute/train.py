"""Train one configuration, resumably: the I/O around `models.training`.

Checkpoints hold the model, EMA, optimizer, data-order generator state and step, so a rerun after
a kill resumes from the newest readable checkpoint and, on CPU with a fixed seed, ends with the
same weights as an uninterrupted run.
"""

import threading
from typing import NamedTuple

import torch

from models.diffusion import DiffusionModel
from models.networks import NETWORKS, parameter_count
from models.noise_schedules import NOISE_SCHEDULES
from models.objectives import Objective
from models.training import EMA, train_step, warmup

from .checkpoints import load_latest, save_checkpoint, set_aside

SEEDING = threading.Lock()


def build_model(config, sample_shape):
    """The DiffusionModel of a validated `schema.study.Configuration` for data of `sample_shape`."""
    size = {"in_channels": sample_shape[0]} if len(sample_shape) == 3 else {"dim": sample_shape[0]}
    network = NETWORKS[config.network.name](**size, **config.network.options)
    noise_schedule = NOISE_SCHEDULES[config.noise_schedule.name](**config.noise_schedule.options)
    return DiffusionModel(network, noise_schedule, config.parameterization.name, config.conditioning.name, config.sigma_data)


def objective_of(config):
    sampling, weighting = config.noise_sampling, config.weighting
    return Objective(sampling.name, weighting.name, sampling.options, weighting.options)


class Training(NamedTuple):
    """What a training updates, and all that a checkpoint holds to resume it."""

    model: DiffusionModel
    ema: EMA
    optimizer: torch.optim.Optimizer
    data_order: torch.Generator  # which images each batch takes
    noise: torch.Generator  # the training noise, on CPU: the same draws on every device

    def state(self, step, fingerprint):
        """What a checkpoint holds: all that a resumed run needs to go on as if uninterrupted."""
        parts = ("model", "ema", "optimizer")
        return {
            **{key: getattr(self, key).state_dict() for key in parts},
            **self.generator_states(),
            "step": step,
            "fingerprint": fingerprint,
        }

    def generator_states(self):
        return {"data_order": self.data_order.get_state(), "noise": self.noise.get_state()}

    def load(self, state):
        """Go on from the checkpoint `state`: its weights, EMA, optimizer and generators; its step comes back."""
        for key in ("model", "ema", "optimizer"):
            getattr(self, key).load_state_dict(state[key])
        self.data_order.set_state(state["data_order"])
        self.noise.set_state(state["noise"])
        return state["step"]


def start(config, sample_shape, device):
    """A fresh `Training` of `config`: its initial weights drawn from config.seed (one configuration
    at a time in this process: the global generator draws them), its generators seeded."""
    with SEEDING:
        torch.manual_seed(config.seed)
        model = build_model(config, sample_shape).to(device)
    if config.compile:
        model.network.compile()  # in place: the state-dict keys stay those of the eager network
    ema = EMA(model, decay=config.ema_decay, half_life_images=config.ema_half_life_images, rampup=config.ema_rampup)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    return Training(model, ema, optimizer, torch.Generator().manual_seed(config.seed), torch.Generator().manual_seed(config.seed + 1))


def resume(training, config, checkpoint_dir, fingerprint, log):
    """The step `training` goes on from: that of the newest readable checkpoint in `checkpoint_dir`
    if it carries `fingerprint` and has not gone beyond config.steps (loaded), else 0, the other
    checkpoints set aside (`set_aside`), never overwritten."""
    state = load_latest(checkpoint_dir, log=log)
    if state and (refused := not_resumable(state, config, fingerprint)):
        log(f"{config.name}: checkpoints in {checkpoint_dir} {refused}; moved to {set_aside(checkpoint_dir)}; training from scratch")
        return 0
    if state is None:
        return 0
    step = training.load(state)
    log(f"{config.name}: " + ("trained before by the same computation [reused]" if step == config.steps else f"resuming at step {step}"))
    return step


def train(config, images, checkpoint_dir, *, fingerprint=None, device="cpu", on_step=None, log=print):
    """Train `config` on `images` [N, ...] for config.steps, checkpointing every config.checkpoint_every,
    resumed where a checkpoint allows (`resume`). `on_step(step, loss)` is called after every step. A
    non-finite loss raises FloatingPointError naming the configuration and step; the last good
    checkpoint stays. Returns the EMA model."""
    device = torch.device(device)
    training = start(config, tuple(images.shape[1:]), device)
    step = resume(training, config, checkpoint_dir, fingerprint, log)
    log(f"{config.name}: {parameter_count(training.model.network):,} network parameters, {config.steps} steps at batch {config.batch_size}")
    objective, images = objective_of(config), images.to(device)
    while step < config.steps:
        batch = images[torch.randint(len(images), (config.batch_size,), generator=training.data_order).to(device)]
        try:
            loss, _ = train_step(
                training.model,
                objective,
                training.optimizer,
                batch,
                generator=training.noise,
                ema=training.ema,
                lr=config.lr * warmup(step, config.warmup_steps),
                grad_clip=config.grad_clip,
                mixed_precision=config.mixed_precision,
            )
        except FloatingPointError as error:
            raise FloatingPointError(f"configuration {config.name!r} diverged at step {step + 1}: {error}") from None
        step += 1
        if on_step is not None:
            on_step(step, loss)
        if step % config.checkpoint_every == 0 or step == config.steps:
            save_checkpoint(training.state(step, fingerprint), checkpoint_dir)
    return training.ema.model


def not_resumable(state, config, fingerprint):
    """Why the checkpoint `state` cannot be resumed by `config`'s training, or None if it can."""
    if state.get("fingerprint") != fingerprint:
        return f"hold other settings, data or code (fingerprint {state.get('fingerprint')}, now {fingerprint})"
    if state["step"] > config.steps:
        return f"are at step {state['step']}, beyond steps = {config.steps}"
    return None


def load_trained(config, checkpoint_dir, sample_shape, *, fingerprint=None, device="cpu", log=print):
    """The EMA model of the newest readable checkpoint in `checkpoint_dir`, in eval mode; with a
    `fingerprint`, only the end of that very training: a checkpoint trained with other settings, data
    or code, or not at config.steps (an interrupted or a longer training), is refused, so that no
    result of another model is taken for this configuration's."""
    state = load_latest(checkpoint_dir, log=log)
    if state is None:
        raise FileNotFoundError(f"configuration {config.name!r}: no readable checkpoint in {str(checkpoint_dir)!r}; train it first")
    if fingerprint is not None and (state.get("fingerprint"), state["step"]) != (fingerprint, config.steps):
        raise ValueError(
            f"configuration {config.name!r}: the checkpoint in {str(checkpoint_dir)!r} is of step {state['step']} of a training "
            f"with fingerprint {state.get('fingerprint')}; this configuration is step {config.steps} of {fingerprint}: train it first"
        )
    model = build_model(config, sample_shape)
    model.load_state_dict(state["ema"]["model"])
    log(f"{config.name}: EMA weights of step {state['step']} from {checkpoint_dir}")
    return model.to(device).eval()
