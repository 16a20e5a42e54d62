"""The train flow (`flows.train.train_one`) against a real Prefect API and MLflow store: raising
`steps` continues a training from its checkpoints, and changing any other setting (here `lr`) sets
the old checkpoints aside and trains from scratch, each ending bit for bit where one uninterrupted
run with the final settings ends."""

import logging
import re

import pytest
import torch
import yaml

from flows.train import train_one
from tasks.compute.data import save_dataset
from tasks.workspace import Workspace
from tests.conftest import TINY
from tests.test_faults import IMAGES, differences

pytestmark = pytest.mark.slow  # runs flows, servers or DVC: out of the quick tier

STEPS = "train.configurations.tiny.steps"
LR = "train.configurations.tiny.lr"


@pytest.fixture
def train_in(tmp_path, monkeypatch, prefect_api, one_thread):
    """train_in(root, overrides): the train flow of TINY's `tiny` (20 steps, a checkpoint every 10)
    under tmp_path/root, on the same training images in every root; its checkpoint folder comes back."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump({**TINY, "train": {"configurations": {"tiny": {**TINY["train"]["configurations"]["tiny"], "steps": 20}}}})
    )

    def train(root, overrides=None):
        workspace = Workspace(tmp_path / root)
        if not (workspace.data / "train.pt").exists():
            save_dataset(workspace.data / "train.pt", IMAGES, torch.zeros(len(IMAGES), dtype=torch.int64))
        train_one(configuration="tiny", params=str(params), root=str(workspace.root), overrides=overrides)
        return workspace.checkpoints("tiny")

    return train


def checkpoint_files(folder):
    """{name: bytes} of the checkpoints in `folder`."""
    return {path.name: path.read_bytes() for path in sorted(folder.glob("step-*.pt"))}


def assert_same_state(folder, expected_folder, step):
    """The checkpoints of `step` in both folders hold equal weights, EMA, optimizer and generator states, bit for bit."""
    found, expected = (torch.load(f / f"step-{step:08d}.pt", weights_only=True) for f in (folder, expected_folder))
    unequal = differences(found, expected)
    assert not unequal, f"{len(unequal)} entries differ, e.g. {unequal[:3]}"


def training_messages(caplog):
    return [record.getMessage() for record in caplog.records if record.getMessage().startswith("tiny: ")]


def test_raising_steps_continues_the_training_from_its_checkpoints(train_in, caplog):
    caplog.set_level(logging.INFO)
    folder = train_in("resumed")
    assert sorted(checkpoint_files(folder)) == ["step-00000010.pt", "step-00000020.pt"]
    caplog.clear()
    train_in("resumed", overrides={STEPS: 40})
    assert "tiny: resuming at step 20" in training_messages(caplog), training_messages(caplog)
    assert not (folder.parent / ".superseded").exists()
    assert sorted(checkpoint_files(folder)) == ["step-00000030.pt", "step-00000040.pt"]
    assert_same_state(folder, train_in("uninterrupted", overrides={STEPS: 40}), 40)


def test_changing_lr_sets_the_old_checkpoints_aside_and_trains_from_scratch(train_in, caplog):
    caplog.set_level(logging.INFO)
    folder = train_in("changed")
    before = checkpoint_files(folder)
    caplog.clear()
    train_in("changed", overrides={LR: 1e-3})
    messages = training_messages(caplog)
    assert not [message for message in messages if "resuming" in message], messages
    (aside,) = (folder.parent / ".superseded").iterdir()
    assert re.fullmatch(r"tiny-\d{8}-\d{6}", aside.name) and f"moved to {aside}; training from scratch" in " ".join(messages)
    assert checkpoint_files(aside) == before
    assert_same_state(folder, train_in("fresh", overrides={LR: 1e-3}), 20)


def test_lowering_steps_sets_the_longer_training_aside_and_trains_to_the_new_end(train_in, caplog):
    caplog.set_level(logging.INFO)
    folder = train_in("shortened")
    longer = checkpoint_files(folder)
    caplog.clear()
    train_in("shortened", overrides={STEPS: 10})
    assert any("are at step 20, beyond steps = 10" in message for message in training_messages(caplog)), training_messages(caplog)
    (aside,) = (folder.parent / ".superseded").iterdir()
    assert checkpoint_files(aside) == longer and sorted(checkpoint_files(folder)) == ["step-00000010.pt"]
    assert_same_state(folder, train_in("ten", overrides={STEPS: 10}), 10)
