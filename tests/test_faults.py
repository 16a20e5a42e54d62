"""Faults during training: a training process SIGKILLed at several points resumes to the same
weights, bit for bit, as a run that was never interrupted; corrupt checkpoints are reported and the
previous one used; a diverging run names the configuration and step and leaves its last good
checkpoint loadable.

The killed runs are child processes (one thread each, all started at once); the uninterrupted run
and the resumed ones run here, also on one thread, so that every run computes the same bits."""

import json
import os
import random
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from schema.configurations import Configuration
from tasks.compute.checkpoints import load_latest
from tasks.compute.train import load_trained, train
from tests.conftest import tiny_configuration

PROJECT = Path(__file__).resolve().parents[1]
FIELDS = tiny_configuration(steps=60, checkpoint_every=10).model_dump(mode="json")
FINGERPRINT = "faults"
IMAGES = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1

# The killed run: trains FIELDS into a folder, prints "step N" after every step, and waits to be
# killed after step `pause_after`, or halfway through writing the checkpoint of step `pause_writing`
# (its temporary file half full, through the real atomic_open).
CHILD = r"""
import io, json, os, sys, time
import torch
torch.set_num_threads(1)
import tasks.compute.checkpoints as checkpoints
import tasks.files as files
from schema.configurations import Configuration
from tasks.compute.train import train

fields, images, folder, pause_after, pause_writing = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
save_atomic = checkpoints.save_atomic

def half_written(state, path):
    if state["step"] != pause_writing:
        return save_atomic(state, path)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with files.atomic_open(path) as file:
        file.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        file.flush()
        os.fsync(file.fileno())
        print("writing", flush=True)
        time.sleep(600)

def on_step(step, loss):
    print(f"step {step}", flush=True)
    if step == pause_after:
        time.sleep(600)

checkpoints.save_atomic = half_written
train(Configuration(**fields), torch.load(images), folder, fingerprint=sys.argv[6], on_step=on_step, log=lambda message: None)
print("done", flush=True)
"""

# The seeded random kill: the child does not wait; it is killed a seeded delay after it prints a
# seeded step well before the last, so it dies inside training (a step takes about 13 ms).
SEEDED = random.Random(6)
RANDOM_STEP = SEEDED.randint(1, 40)
RANDOM_DELAY = SEEDED.uniform(0.0, 0.05)  # seconds: a few steps at most

# name: (what the child waits at, the line after which it is killed, seconds later, the step training resumes from)
KILL_POINTS = {
    "right after the first checkpoint": (dict(pause_after=11), "step 11", 0.0, 10),
    "between checkpoints": (dict(pause_after=25), "step 25", 0.0, 20),
    "after a checkpoint's step, before its checkpoint": (dict(pause_after=30), "step 30", 0.0, 20),
    "while a checkpoint is being written": (dict(pause_writing=40), "writing", 0.0, 30),
    "at a seeded random time": (dict(), f"step {RANDOM_STEP}", RANDOM_DELAY, None),
}


def final_state(folder):
    """Model and EMA weights of the step-60 checkpoint."""
    state = torch.load(Path(folder) / "step-00000060.pt", weights_only=True)
    return state["model"], state["ema"]


def differences(found, expected, path=""):
    """Keys of two nested state dicts whose tensors (or plain values) are not equal bit for bit."""
    if isinstance(expected, dict):
        if found.keys() != expected.keys():
            return [f"{path}: keys {sorted(found)} != {sorted(expected)}"]
        return [d for key in expected for d in differences(found[key], expected[key], f"{path}.{key}")]
    same = torch.equal(found, expected) if isinstance(expected, torch.Tensor) else found == expected
    return [] if same else [path]


def assert_equal_weights(found, expected):
    assert not differences(dict(zip(("model", "ema"), found)), dict(zip(("model", "ema"), expected)))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, one_thread):
    folder = tmp_path_factory.mktemp("uninterrupted")
    train(Configuration(**FIELDS), IMAGES, folder, fingerprint=FINGERPRINT, log=lambda message: None)
    return final_state(folder)


def kill(child, trigger, seconds=0.0):
    """SIGKILL `child` once it prints the line `trigger`, `seconds` later; (its lines, its exit code)."""
    lines = []
    for line in child.stdout:
        lines.append(line.strip())
        if lines[-1] == trigger:
            break
    try:
        child.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.kill(child.pid, signal.SIGKILL)
    child.wait()
    return lines + [line.strip() for line in child.stdout], child.returncode


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """{kill point: (folder, the lines the child printed, exit code)}: every child started at once,
    each SIGKILLed at its point; the seeded random kill first, as the only one that depends on time."""
    root = tmp_path_factory.mktemp("killed")
    torch.save(IMAGES, root / "images.pt")
    folders = {name: root / f"point-{i}" for i, name in enumerate(KILL_POINTS)}
    children, outcome = {}, {}
    try:
        for name, (pause, _, _, _) in KILL_POINTS.items():
            arguments = [
                json.dumps(FIELDS),
                str(root / "images.pt"),
                str(folders[name]),
                str(pause.get("pause_after", 0)),
                str(pause.get("pause_writing", 0)),
                FINGERPRINT,
            ]
            with open(folders[name].with_suffix(".stderr"), "w") as stderr:
                children[name] = subprocess.Popen(
                    [sys.executable, "-c", CHILD, *arguments], cwd=PROJECT, text=True, stdout=subprocess.PIPE, stderr=stderr
                )
        for name in sorted(KILL_POINTS, key=lambda name: KILL_POINTS[name][3] is not None):
            _, trigger, seconds, _ = KILL_POINTS[name]
            lines, code = kill(children[name], trigger, seconds)
            assert trigger in lines, (name, lines[-3:], folders[name].with_suffix(".stderr").read_text())
            outcome[name] = (folders[name], lines, code)
    finally:
        for child in children.values():
            if child.poll() is None:
                os.kill(child.pid, signal.SIGKILL)
                child.wait()
    return outcome


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_killed_training_resumes_to_the_same_weights(point, killed, uninterrupted, one_thread):
    folder, lines, returncode = killed[point]
    _, trigger, _, resumes_at = KILL_POINTS[point]
    checkpoints = sorted(folder.glob("step-*.pt"))
    newest = int(checkpoints[-1].stem.removeprefix("step-")) if checkpoints else None
    assert returncode == -signal.SIGKILL and lines[-1] != "done", (point, returncode, lines[-3:])
    if resumes_at is not None:
        assert lines[-1] == trigger and newest == resumes_at, (point, lines[-3:], [p.name for p in checkpoints])
    else:  # killed inside training, with the checkpoints that its last printed step implies
        last_step = int(lines[-1].removeprefix("step "))
        assert last_step < FIELDS["steps"], lines[-3:]
        assert last_step - FIELDS["checkpoint_every"] <= (newest or 0) <= last_step, (lines[-3:], [p.name for p in checkpoints])
    if point == "while a checkpoint is being written":
        (half,) = folder.glob(".step-00000040.pt.*.tmp")
        assert half.stat().st_size > 0
    messages = []
    train(Configuration(**FIELDS), IMAGES, folder, fingerprint=FINGERPRINT, log=messages.append)
    resumed = [message for message in messages if "resuming" in message]
    assert resumed == ([f"tiny: resuming at step {newest}"] if newest else []), (point, lines[-1], messages)
    assert_equal_weights(final_state(folder), uninterrupted)
    assert not list(folder.glob(".step-*.tmp"))  # a killed writer's temporary file is gone


@pytest.mark.parametrize("damage", ["truncated", "zero bytes"])
def test_a_damaged_newest_checkpoint_is_reported_and_the_previous_one_used(damage, tmp_path, uninterrupted, one_thread):
    train(Configuration(**{**FIELDS, "steps": 30}), IMAGES, tmp_path, fingerprint=FINGERPRINT, log=lambda message: None)
    newest = tmp_path / "step-00000030.pt"
    newest.write_bytes(newest.read_bytes()[:1000] if damage == "truncated" else b"")
    messages = []
    train(Configuration(**FIELDS), IMAGES, tmp_path, fingerprint=FINGERPRINT, log=messages.append)
    assert "unreadable" in messages[0] and newest.name in messages[0], messages
    assert messages[1] == "tiny: resuming at step 20"
    assert_equal_weights(final_state(tmp_path), uninterrupted)


NAN_IMAGES = IMAGES.clone()
NAN_IMAGES[:, 0, 0, 0] = float("nan")  # one pixel of every image, so every batch holds NaN


@pytest.mark.parametrize(
    "cause, changes, images",
    [
        ("learning rate 1e9", dict(lr=1e9, grad_clip=None), IMAGES),
        ("NaN in the images", dict(), NAN_IMAGES),
    ],
)
def test_a_nan_loss_names_configuration_and_step_and_keeps_the_last_good_checkpoint(cause, changes, images, tmp_path, one_thread):
    train(Configuration(**{**FIELDS, "steps": 20}), IMAGES, tmp_path, fingerprint=FINGERPRINT, log=lambda message: None)
    before = {path.name: path.read_bytes() for path in tmp_path.glob("step-*.pt")}
    with pytest.raises(FloatingPointError, match=r"configuration 'tiny' diverged at step \d+: loss is (nan|inf)") as error:
        train(Configuration(**{**FIELDS, **changes}), images, tmp_path, fingerprint=FINGERPRINT, log=lambda message: None)
    step = int(re.search(r"at step (\d+)", str(error.value)).group(1))
    assert step > 20, cause
    if step <= 30:
        assert {path.name: path.read_bytes() for path in tmp_path.glob("step-*.pt")} == before
    state = load_latest(tmp_path, log=pytest.fail)
    assert state["step"] == 10 * ((step - 1) // 10)
    model = load_trained(Configuration(**FIELDS), tmp_path, (1, 8, 8), log=lambda message: None)
    assert all(torch.isfinite(value).all() for value in model.state_dict().values())
