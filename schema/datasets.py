"""The datasets a study can train on, declared: each entry's source, the shape of its images, whether
it is read from files (in data.root, fetched there first with data.download) and how its test split
is made. The loaders are `tasks.compute.data.DATASETS` (one signature: `loader(data) -> TrainTest`);
tests/test_data.py holds the two tables to the same names and each loader to its declared shape."""

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, kw_only=True)
class DatasetEntry:
    source: str
    shape: tuple[int, int, int]  # (C, H, W) of its images
    files: bool = False  # read from data.root (fetched there with data.download: true)
    split: Literal["test_fraction", "published"]  # split here by data.test_fraction and data.seed, or its own test set


DATASET_ENTRIES = {
    "digits": DatasetEntry(
        source="scikit-learn's bundled 8x8 handwritten digits (UCI, Alpaydin & Kaynak 1998)", shape=(1, 8, 8), split="test_fraction"
    ),
    "mnist": DatasetEntry(source="LeCun et al. 1998", shape=(1, 28, 28), files=True, split="published"),
    "cifar10": DatasetEntry(source="Krizhevsky 2009", shape=(3, 32, 32), files=True, split="published"),
}
