"""Training one configuration: resumable after an interruption, same weights as without one;
corrupt checkpoints detected; divergence named."""

import pytest
import torch

from tasks.compute.checkpoints import load_latest, save_checkpoint
from tasks.compute.train import build_model, load_trained, train
from tests.conftest import tiny_configuration

IMAGES = torch.rand(64, 1, 8, 8) * 2 - 1


configuration = tiny_configuration


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_resume_after_interruption_gives_the_same_weights(tmp_path):
    straight = weights(train(configuration(), IMAGES, tmp_path / "straight", log=lambda m: None))
    train(configuration(steps=8), IMAGES, tmp_path / "resumed", log=lambda m: None)  # "killed" after step 8
    messages = []
    resumed = weights(train(configuration(), IMAGES, tmp_path / "resumed", log=messages.append))
    assert any("resuming at step 8" in m for m in messages)
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key


def test_truncated_checkpoint_is_reported_and_the_previous_one_used(tmp_path):
    train(configuration(steps=8), IMAGES, tmp_path, log=lambda m: None)
    newest = sorted(tmp_path.glob("step-*.pt"))[-1]
    newest.write_bytes(newest.read_bytes()[:100])
    messages = []
    state = load_latest(tmp_path, log=messages.append)
    assert state["step"] == 4 and "unreadable" in messages[0] and newest.name in messages[0]


def test_only_the_newest_checkpoints_are_kept(tmp_path):
    for step in range(1, 6):
        save_checkpoint({"step": step}, tmp_path, keep=2)
    assert [p.name for p in sorted(tmp_path.glob("*"))] == ["step-00000004.pt", "step-00000005.pt"]


def test_divergence_names_configuration_and_step(tmp_path):
    with pytest.raises(FloatingPointError, match=r"configuration 'tiny' diverged at step 1"):
        train(
            configuration(lr=1e30, grad_clip=None, weighting="snr", parameterization="x0"),
            IMAGES * float("inf"),
            tmp_path,
            log=lambda m: None,
        )
    assert not list(tmp_path.glob("step-*.pt"))


def test_every_network_gets_its_input_size():
    assert build_model(configuration(), (1, 8, 8)).network(torch.zeros(2, 1, 8, 8), torch.zeros(2)).shape == (2, 1, 8, 8)
    vector = configuration(network={"name": "mlp", "options": {"hidden": 16}})
    assert build_model(vector, (2,)).network(torch.zeros(3, 2), torch.zeros(3)).shape == (3, 2)


def test_checkpoints_of_other_settings_are_set_aside_not_resumed(tmp_path):
    folder = tmp_path / "checkpoints" / "tiny"
    train(configuration(steps=8), IMAGES, folder, fingerprint="old", log=lambda m: None)
    old = {p.name: p.read_bytes() for p in folder.glob("step-*.pt")}
    messages = []
    changed = weights(train(configuration(lr=1e-3), IMAGES, folder, fingerprint="new", log=messages.append))
    fresh = weights(train(configuration(lr=1e-3), IMAGES, tmp_path / "fresh", fingerprint="new", log=lambda m: None))
    assert any("other settings" in m for m in messages) and not any("resuming" in m for m in messages)
    assert all(torch.equal(changed[k], fresh[k]) for k in fresh)
    (aside,) = (tmp_path / "checkpoints" / ".superseded").iterdir()
    assert {p.name: p.read_bytes() for p in aside.glob("step-*.pt")} == old


def test_more_steps_with_the_same_settings_continue_the_training(tmp_path):
    train(configuration(steps=8), IMAGES, tmp_path / "a", fingerprint="same", log=lambda m: None)
    messages = []
    continued = weights(train(configuration(steps=12), IMAGES, tmp_path / "a", fingerprint="same", log=messages.append))
    straight = weights(train(configuration(steps=12), IMAGES, tmp_path / "b", fingerprint="same", log=lambda m: None))
    assert any("resuming at step 8" in m for m in messages)
    assert all(torch.equal(continued[k], straight[k]) for k in straight)


def test_the_trained_ema_model_loads_for_evaluation(tmp_path):
    model = train(configuration(), IMAGES, tmp_path, log=lambda m: None)
    loaded = load_trained(configuration(), tmp_path, (1, 8, 8))
    assert not loaded.training and all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    with pytest.raises(FileNotFoundError, match="'tiny': no readable checkpoint"):
        load_trained(configuration(), tmp_path / "none", (1, 8, 8))


def test_evaluation_takes_only_the_end_of_this_very_training(tmp_path):
    """With a fingerprint, `load_trained` refuses an interrupted training (a checkpoint before
    config.steps), a longer one, and one of other settings, data or code."""
    train(configuration(steps=8), IMAGES, tmp_path, fingerprint="this", log=lambda m: None)
    assert not load_trained(configuration(steps=8), tmp_path, (1, 8, 8), fingerprint="this").training
    for steps, fingerprint in ((12, "this"), (4, "this"), (8, "other")):
        with pytest.raises(ValueError, match=r"'tiny': the checkpoint in .* is of step 8 of a training with fingerprint this"):
            load_trained(configuration(steps=steps), tmp_path, (1, 8, 8), fingerprint=fingerprint)


def test_edms_ema_ramp_up_reaches_the_averaged_weights_and_resumes_exactly(tmp_path):
    """ema_rampup (EDM's half-life capped at a share of the images seen) is what the EMA averages
    with: the same training without it averages otherwise; interrupted and resumed, it ends the same."""
    ramped = dict(ema_decay=None, ema_half_life_images=10_000, ema_rampup=0.05)
    straight = weights(train(configuration(**ramped), IMAGES, tmp_path / "straight", log=lambda m: None))
    fixed = weights(train(configuration(**{**ramped, "ema_rampup": None}), IMAGES, tmp_path / "fixed", log=lambda m: None))
    assert any(not torch.equal(straight[key], fixed[key]) for key in straight)
    train(configuration(**ramped, steps=8), IMAGES, tmp_path / "resumed", log=lambda m: None)
    resumed = weights(train(configuration(**ramped), IMAGES, tmp_path / "resumed", log=lambda m: None))
    assert all(torch.equal(straight[key], resumed[key]) for key in straight)
