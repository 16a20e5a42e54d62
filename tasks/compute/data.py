"""Datasets as tensors: the bundled 8x8 digits, MNIST and CIFAR-10 from their published files, and
a stratified split, each a loader of `DATASETS` (`loader(data) -> TrainTest`, declared in
`schema.datasets`); one `.pt` file per prepared dataset, written atomically.

Images are float32 [N, C, H, W] in [-1, 1]; labels are int64 [N].
"""

import gzip
import pickle
import shutil
import tarfile
import urllib.request
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from tasks.files import atomic_open

from .checkpoints import save_atomic

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
MNIST_URL = "http://yann.lecun.com/exdb/mnist/"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILE = "test_batch"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


class TrainTest(NamedTuple):
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor


def load_digits_images():
    """scikit-learn's 1,797 8x8 digits: images [N, 1, 8, 8] mapped from 0..16 onto [-1, 1], labels [N]."""
    from sklearn.datasets import load_digits  # imported here: scikit-learn costs every stage 2.5 s otherwise

    digits = load_digits()
    images = torch.from_numpy(digits.images).to(torch.float32).unsqueeze(1) / 8 - 1
    return images, torch.from_numpy(digits.target).to(torch.int64)


def bytes_to_unit_range(pixels):
    """uint8 pixels 0..255 as float32 in [-1, 1] (0 -> -1, 255 -> 1 exactly)."""
    return torch.from_numpy(np.array(pixels, dtype=np.float32)) / 127.5 - 1


def split(images, labels, test_fraction, seed):
    """Stratified train/test split: in each class a seeded random round(test_fraction * count)
    examples go to test; both parts keep the original order."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"split: test_fraction={test_fraction!r}; allowed: 0 < test_fraction < 1")
    if len(images) != len(labels):
        raise ValueError(f"split: {len(images)} images but {len(labels)} labels; allowed: equal counts")
    generator = torch.Generator().manual_seed(seed)
    is_test = torch.zeros(len(labels), dtype=torch.bool)
    for label in torch.unique(labels):  # sorted, so the draws do not depend on the data's order
        members = torch.nonzero(labels == label).flatten()
        chosen = torch.randperm(len(members), generator=generator)[: round(test_fraction * len(members))]
        is_test[members[chosen]] = True
    return TrainTest(images[~is_test], labels[~is_test], images[is_test], labels[is_test])


def save_dataset(path, images, labels):
    """Write images and labels to one `.pt` file, atomically (temporary file, fsync, rename)."""
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"save_dataset: {images.shape[0]} images but {labels.shape[0]} labels; allowed: equal counts")
    save_atomic({"images": images.detach().cpu().clone(), "labels": labels.detach().cpu().clone()}, path)


def training_images(workspace):
    """The prepared training images of a `tasks.workspace.Workspace`, as its training sees them."""
    return load_dataset(workspace.data / "train.pt")[0]


def load_dataset(path):
    """(images, labels) from a file written by `save_dataset`; tensors only (weights_only=True)."""
    data = torch.load(path, map_location="cpu", weights_only=True)
    return data["images"], data["labels"]


def fetch(url, path):
    """Download `url` into `path`, atomically."""
    with urllib.request.urlopen(url, timeout=60) as response, atomic_open(path) as file:
        shutil.copyfileobj(response, file)


def existing(folder, name):
    """`folder/name` or `folder/name.gz`, whichever exists, else None."""
    for candidate in (Path(folder) / name, Path(folder) / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_idx(path, ndim):
    """An IDX array of unsigned bytes (magic 0x000008NN with NN = ndim; LeCun's MNIST format) as uint8."""
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as file:
        data = file.read()
    magic = int.from_bytes(data[:4], "big")
    if magic != 0x0800 + ndim:
        allowed = f"{0x0800 + ndim:#010x} (unsigned bytes, {ndim} dimensions)"
        raise ValueError(f"{path}: magic number {magic:#010x}; allowed: {allowed}")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    pixels = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if pixels.size != np.prod(shape):
        raise ValueError(f"{path}: header says shape {shape} but holds {pixels.size} values")
    return pixels.reshape(shape)


def read_mnist_part(folder, images_name, labels_name):
    """Images [N, 1, 28, 28] in [-1, 1] and int64 labels from one pair of MNIST IDX files."""
    images = read_idx(existing(folder, images_name), ndim=3)
    labels = read_idx(existing(folder, labels_name), ndim=1)
    if len(images) != len(labels):
        raise ValueError(f"MNIST: {images_name} holds {len(images)} images but {labels_name} {len(labels)} labels")
    return bytes_to_unit_range(images[:, None]), torch.from_numpy(labels.astype(np.int64))


def load_mnist(folder, download=False, url=MNIST_URL):
    """MNIST's 60,000 train and 10,000 test images [N, 1, 28, 28] in [-1, 1] with labels, from the
    four IDX files (each plain or .gz) in `folder`; with download=True, missing files are first
    fetched, gzipped, from `url` (MNIST's; another dataset in its format has its own)."""
    if download:
        for name in MNIST_FILES:
            if existing(folder, name) is None:
                fetch(f"{url}{name}.gz", Path(folder) / f"{name}.gz")
    missing = [name for name in MNIST_FILES if existing(folder, name) is None]
    if missing:
        raise FileNotFoundError(
            f"MNIST: folder {str(folder)!r} lacks {missing}; expected files: {list(MNIST_FILES)} (each may be "
            f"gzipped as NAME.gz). Download them from {url} or call load_mnist(folder, download=True)."
        )
    return TrainTest(*read_mnist_part(folder, *MNIST_FILES[:2]), *read_mnist_part(folder, *MNIST_FILES[2:]))


def read_cifar_batch(path):
    """One CIFAR-10 python batch: uint8 images [N, 3, 32, 32] (rows of 1024 red, green, blue values)
    and int64 labels. The file is a pickle: read only files from the official archive."""
    with open(path, "rb") as file:
        batch = pickle.load(file, encoding="bytes")
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{path}: b'data' has shape {data.shape}; allowed: [N, 3072]")
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if len(labels) != len(data):
        raise ValueError(f"{path}: {len(data)} images but {len(labels)} labels")
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar10(folder, download=False):
    """CIFAR-10's 50,000 train and 10,000 test images [N, 3, 32, 32] in [-1, 1] with labels, from
    `folder/cifar-10-batches-py/`; with download=True, missing batches are taken from the
    official archive (downloaded to `folder` first)."""
    batches = Path(folder) / CIFAR10_FOLDER
    expected = (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE)
    if download and any(not (batches / name).is_file() for name in expected):
        archive = Path(folder) / Path(CIFAR10_URL).name
        if not archive.is_file():
            fetch(CIFAR10_URL, archive)
        with tarfile.open(archive) as tar:
            for name in expected:
                with tar.extractfile(f"{CIFAR10_FOLDER}/{name}") as source, atomic_open(batches / name) as target:
                    shutil.copyfileobj(source, target)
    missing = [name for name in expected if not (batches / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"CIFAR-10: folder {str(batches)!r} lacks {missing}; expected files: {list(expected)}. Download and "
            f"unpack {CIFAR10_URL} into {str(folder)!r} or call load_cifar10(folder, download=True)."
        )
    train = [read_cifar_batch(batches / name) for name in CIFAR10_TRAIN_FILES]
    test_images, test_labels = read_cifar_batch(batches / CIFAR10_TEST_FILE)
    return TrainTest(
        bytes_to_unit_range(np.concatenate([images for images, _ in train])),
        torch.from_numpy(np.concatenate([labels for _, labels in train])),
        bytes_to_unit_range(test_images),
        torch.from_numpy(test_labels),
    )


def digits(data):
    """The digits, split by data.test_fraction and data.seed."""
    return split(*load_digits_images(), data.test_fraction, data.seed)


def mnist(data):
    return load_mnist(data.root, download=data.download)


def cifar10(data):
    return load_cifar10(data.root, download=data.download)


DATASETS = {"digits": digits, "mnist": mnist, "cifar10": cifar10}  # declared in `schema.datasets.DATASET_ENTRIES`


def prepare(data):
    """The train/test split of a validated `schema.study.Data` section, by its dataset's loader."""
    return DATASETS[data.dataset](data)


def prepare_saved(data, folder):
    """`prepare` the data and save the split as folder/train.pt and folder/test.pt; the split comes back."""
    split_data = prepare(data)
    save_dataset(folder / "train.pt", split_data.train_images, split_data.train_labels)
    save_dataset(folder / "test.pt", split_data.test_images, split_data.test_labels)
    return split_data
