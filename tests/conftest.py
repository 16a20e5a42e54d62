"""Every test starts from the same global random state, so a failure reproduces."""

import pytest
import torch


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)
