"""Train one configuration, resumably: the I/O around `models.training`.

Checkpoints hold the model, EMA, optimizer, data-order generator state and step, so a rerun after
a kill resumes from the newest readable checkpoint and, on CPU with a fixed seed, ends with the
same weights as an uninterrupted run.
"""

import threading

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


def train(config, images, checkpoint_dir, *, fingerprint=None, device="cpu", on_step=None, log=print):
    """Train `config` on `images` [N, ...] for config.steps, checkpointing every config.checkpoint_every.

    Resumes from the newest readable checkpoint in `checkpoint_dir` if it carries `fingerprint` and
    has not gone beyond config.steps; other checkpoints are set aside (`set_aside`), never
    overwritten, and training starts over. `on_step(step,
    loss)` is called after every step. A non-finite loss raises FloatingPointError naming the
    configuration and step; the last good checkpoint stays. Returns the EMA model.
    """
    device = torch.device(device)
    with SEEDING:  # the global generator draws the initial weights: one configuration at a time in this process
        torch.manual_seed(config.seed)
        model = build_model(config, tuple(images.shape[1:])).to(device)
    if config.compile:
        model.network.compile()  # in place: the state-dict keys stay those of the eager network
    ema = EMA(model, decay=config.ema_decay, half_life_images=config.ema_half_life_images, rampup=config.ema_rampup)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    data_order = torch.Generator().manual_seed(config.seed)
    noise = torch.Generator().manual_seed(config.seed + 1)  # on CPU: the same draws on every device
    step = 0
    state = load_latest(checkpoint_dir, log=log)
    refused = state and not_resumable(state, config, fingerprint)
    if refused:
        log(f"{config.name}: checkpoints in {checkpoint_dir} {refused}; moved to {set_aside(checkpoint_dir)}; training from scratch")
        state = None
    if state is not None:
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        data_order.set_state(state["data_order"])
        noise.set_state(state["noise"])
        step = state["step"]
        log(
            f"{config.name}: " + ("trained before by the same computation [reused]" if step == config.steps else f"resuming at step {step}")
        )
    log(f"{config.name}: {parameter_count(model.network):,} network parameters, {config.steps} steps at batch {config.batch_size}")
    objective, images = objective_of(config), images.to(device)
    while step < config.steps:
        batch = images[torch.randint(len(images), (config.batch_size,), generator=data_order).to(device)]
        try:
            loss, _ = train_step(
                model,
                objective,
                optimizer,
                batch,
                generator=noise,
                ema=ema,
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
            save_checkpoint(training_state(model, ema, optimizer, data_order, noise, step, fingerprint), checkpoint_dir)
    return ema.model


def not_resumable(state, config, fingerprint):
    """Why the checkpoint `state` cannot be resumed by `config`'s training, or None if it can."""
    if state.get("fingerprint") != fingerprint:
        return f"hold other settings, data or code (fingerprint {state.get('fingerprint')}, now {fingerprint})"
    if state["step"] > config.steps:
        return f"are at step {state['step']}, beyond steps = {config.steps}"
    return None


def training_state(model, ema, optimizer, data_order, noise, step, fingerprint):
    """What a checkpoint holds: all that a resumed run needs to go on as if uninterrupted."""
    return {
        "model": model.state_dict(),
        "ema": ema.state_dict(),
        "optimizer": optimizer.state_dict(),
        "data_order": data_order.get_state(),
        "noise": noise.get_state(),
        "step": step,
        "fingerprint": fingerprint,
    }


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
