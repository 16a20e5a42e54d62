"""Datasets (`tasks.compute.data`): the digits' shape and range, a deterministic stratified split, atomic
save/load and downloads, the MNIST and CIFAR-10 readers on small files written in their published
formats (CIFAR-10 also from its archive), the errors for missing files, and reproducible mixture
data. Nothing here uses the network: downloads are tested on file:// URLs."""

import gzip
import math
import pickle
import tarfile

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from models.gaussian_mixture import GaussianMixture
from schema.datasets import DATASET_ENTRIES
from schema.study import Data
from tasks.compute.data import (
    CIFAR10_FOLDER,
    CIFAR10_TEST_FILE,
    CIFAR10_TRAIN_FILES,
    CIFAR10_URL,
    DATASETS,
    MNIST_FILES,
    MNIST_URL,
    fetch,
    load_cifar10,
    load_dataset,
    load_digits_images,
    load_mnist,
    prepare,
    save_dataset,
    split,
)
from tasks.files import atomic_open


def test_digits_are_1797_images_in_minus_one_to_one():
    images, labels = load_digits_images()
    assert images.shape == (1797, 1, 8, 8) and images.dtype == torch.float32
    assert labels.shape == (1797,) and labels.dtype == torch.int64
    assert images.min().item() == -1 and images.max().item() == 1
    levels = (images + 1) * 8  # the original intensities 0..16
    assert torch.equal(levels, levels.round()) and set(labels.tolist()) == set(range(10))


def test_split_is_deterministic_stratified_and_disjoint():
    _, labels = load_digits_images()
    index = torch.arange(len(labels))  # split indices as "images" to see where each example went
    parts = split(index, labels, test_fraction=0.2, seed=3)
    train, test = parts.train_images, parts.test_images
    assert torch.equal(labels[train], parts.train_labels) and torch.equal(labels[test], parts.test_labels)
    assert torch.equal(torch.sort(torch.cat([train, test])).values, index), "the parts must partition the data"
    assert torch.equal(train, train.sort().values) and torch.equal(test, test.sort().values)
    for label in range(10):
        count = (labels == label).sum().item()
        assert (parts.test_labels == label).sum().item() == round(0.2 * count)
    again = split(index, labels, test_fraction=0.2, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(parts, again))
    assert not torch.equal(split(index, labels, test_fraction=0.2, seed=4).test_images, test)


def test_split_rejects_a_fraction_outside_zero_one():
    images, labels = load_digits_images()
    with pytest.raises(ValueError, match=r"test_fraction=1\.0"):
        split(images, labels, test_fraction=1.0, seed=0)


def test_saved_dataset_loads_back_bit_identical(tmp_path):
    images, labels = load_digits_images()
    images = images + torch.randn(images.shape, generator=torch.Generator().manual_seed(0)) * 1e-3
    path = tmp_path / "data" / "digits.pt"
    save_dataset(path, images[::2], labels[::2])
    loaded_images, loaded_labels = load_dataset(path)
    assert loaded_images.dtype == images.dtype and loaded_labels.dtype == labels.dtype
    assert torch.equal(loaded_images, images[::2]) and torch.equal(loaded_labels, labels[::2])


class Unserializable(torch.Tensor):
    """A tensor whose serialization fails part-way through a save, as a full disk would."""

    def __reduce_ex__(self, protocol):
        raise OSError("no space left on device")


def test_a_failed_save_leaves_the_previous_file_intact(tmp_path):
    images, labels = load_digits_images()
    path = tmp_path / "digits.pt"
    save_dataset(path, images, labels)
    before = path.read_bytes()
    with pytest.raises(OSError, match="no space left"):
        save_dataset(path, images[:10], labels[:10].as_subclass(Unserializable))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["digits.pt"], "the temporary file must be removed"
    assert torch.equal(load_dataset(path)[0], images)


def write_idx(path, array, compress):
    """`array` (uint8) in LeCun's IDX format: magic 0x000008NN, big-endian sizes, then the bytes."""
    header = (0x0800 + array.ndim).to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in array.shape)
    with (gzip.open if compress else open)(path, "wb") as file:
        file.write(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_reader_on_idx_files(tmp_path, compress):
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (6, 5, 4)),  # non-square, to catch a transpose
        "train-labels-idx1-ubyte": rng.integers(0, 10, 6),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (3, 5, 4)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, 3),
    }
    arrays["train-images-idx3-ubyte"][0, 0, :2] = [0, 255]
    for name, array in arrays.items():
        write_idx(tmp_path / (f"{name}.gz" if compress else name), array, compress)
    data = load_mnist(tmp_path)
    assert data.train_images.shape == (6, 1, 5, 4) and data.test_images.shape == (3, 1, 5, 4)
    assert data.train_images.dtype == torch.float32 and data.train_labels.dtype == torch.int64
    for images, name in ((data.train_images, "train-images-idx3-ubyte"), (data.test_images, "t10k-images-idx3-ubyte")):
        expected = torch.from_numpy(arrays[name][:, None].astype(np.float32)) / 127.5 - 1
        torch.testing.assert_close(images, expected, rtol=0, atol=1e-6)
    assert data.train_images[0, 0, 0, :2].tolist() == [-1.0, 1.0]
    assert data.train_labels.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert data.test_labels.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()


def test_mnist_reader_rejects_a_wrong_magic_number(tmp_path):
    for name in MNIST_FILES:
        write_idx(tmp_path / name, np.zeros((2, 3, 3) if "images" in name else (2,)), compress=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes((0x0803).to_bytes(4, "big") + bytes(4))
    with pytest.raises(ValueError, match="0x00000801"):
        load_mnist(tmp_path)


def write_cifar_batches(folder):
    """Small CIFAR-10 python batches (b'data' uint8 [N, 3072], b'labels') in `folder`; returns their contents."""
    rng = np.random.default_rng(0)
    sizes = dict(zip((*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE), (2, 3, 1, 2, 2, 4)))
    batches = {name: (rng.integers(0, 256, (n, 3072), dtype=np.uint8), rng.integers(0, 10, n).tolist()) for name, n in sizes.items()}
    batches["data_batch_1"][0][0, :2] = [0, 255]
    folder.mkdir(parents=True)
    for name, (data, labels) in batches.items():
        (folder / name).write_bytes(pickle.dumps({b"data": data, b"labels": labels, b"batch_label": name.encode()}))
    return batches


def check_cifar(data, batches):
    assert data.train_images.shape == (10, 3, 32, 32) and data.test_images.shape == (4, 3, 32, 32)
    assert data.train_images.dtype == torch.float32 and data.train_labels.dtype == torch.int64
    assert data.train_labels.tolist() == sum((batches[name][1] for name in CIFAR10_TRAIN_FILES), [])
    assert data.test_labels.tolist() == batches[CIFAR10_TEST_FILE][1]
    # Each row holds 1024 red, then green, then blue values, each 32 rows of 32 pixels.
    pixels = batches["data_batch_2"][0]
    for channel, row, column in ((0, 0, 0), (1, 5, 31), (2, 31, 7)):
        value = pixels[1, channel * 1024 + row * 32 + column]
        assert data.train_images[3, channel, row, column].item() == pytest.approx(value / 127.5 - 1, abs=1e-6)
    assert data.train_images[0, 0, 0, :2].tolist() == [-1.0, 1.0]
    assert data.test_images.min() >= -1 and data.test_images.max() <= 1


def test_cifar10_reader_on_pickled_batches(tmp_path):
    batches = write_cifar_batches(tmp_path / CIFAR10_FOLDER)
    check_cifar(load_cifar10(tmp_path), batches)


def test_cifar10_batches_are_unpacked_from_an_archive_already_in_the_folder(tmp_path):
    batches = write_cifar_batches(tmp_path / "source" / CIFAR10_FOLDER)
    with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "source" / CIFAR10_FOLDER, arcname=CIFAR10_FOLDER)
    check_cifar(load_cifar10(tmp_path, download=True), batches)


def test_fetch_copies_a_url_into_a_new_folder(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(bytes(range(256)) * 1000)
    fetch(source.as_uri(), tmp_path / "downloads" / "target.bin")
    assert (tmp_path / "downloads" / "target.bin").read_bytes() == source.read_bytes()


def test_an_interrupted_stream_leaves_the_previous_file_intact(tmp_path):
    path = tmp_path / "batch"
    path.write_bytes(b"complete")
    with pytest.raises(ConnectionResetError):
        with atomic_open(path) as file:
            file.write(b"partial")
            raise ConnectionResetError("connection reset by peer")
    assert path.read_bytes() == b"complete" and [p.name for p in tmp_path.iterdir()] == ["batch"]


def test_missing_mnist_files_are_named_with_the_folder_and_where_to_get_them(tmp_path):
    write_idx(tmp_path / MNIST_FILES[0], np.zeros((1, 2, 2)), compress=False)
    with pytest.raises(FileNotFoundError) as error:
        load_mnist(tmp_path)
    message = str(error.value)
    assert str(tmp_path) in message and MNIST_URL in message
    assert all(name in message for name in MNIST_FILES)


def test_missing_cifar10_files_are_named_with_the_folder_and_where_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        load_cifar10(tmp_path)
    message = str(error.value)
    assert str(tmp_path / CIFAR10_FOLDER) in message and CIFAR10_URL in message
    assert all(name in message for name in (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE))


def test_mixture_data_is_reproducible_and_follows_the_ring():
    ring = GaussianMixture.ring()
    points, components = ring.sample_with_components(20000, torch.Generator().manual_seed(0))
    assert points.shape == (20000, 2) and points.dtype == torch.float32 and components.dtype == torch.int64
    again = ring.sample_with_components(20000, torch.Generator().manual_seed(0))
    assert torch.equal(points, again[0]) and torch.equal(components, again[1])
    assert not torch.equal(points, ring.sample_with_components(20000, torch.Generator().manual_seed(1))[0])
    frequencies = torch.bincount(components, minlength=len(ring.weights)) / len(components)
    # Each frequency within 5 binomial standard deviations of its weight.
    tolerance = 5 * torch.sqrt(ring.weights * (1 - ring.weights) / len(components))
    assert ((frequencies.double() - ring.weights).abs() < tolerance).all()
    # Offsets from the drawn component's mean: squared norm / std^2 is chi-square with 2 degrees of freedom.
    offsets = points.double() - ring.means[components]
    scaled = (offsets**2).sum(1) / ring.stds[components] ** 2
    assert scaled.mean().item() == pytest.approx(2, abs=5 * 2 / math.sqrt(len(points)))


def test_the_prepare_stage_splits_the_digits_as_declared():
    data = prepare(Data(test_fraction=0.25, seed=4))
    assert (len(data.train_images), len(data.test_images)) == (1797 - 450, 450)
    again = split(*load_digits_images(), 0.25, seed=4)
    assert all(torch.equal(a, b) for a, b in zip(data, again))


def test_the_prepare_stage_reads_mnist_from_its_root_and_names_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        prepare(Data(dataset="mnist", root=str(tmp_path)))


def test_every_declared_dataset_has_a_loader_and_no_loader_is_undeclared():
    assert set(DATASETS) == set(DATASET_ENTRIES)


def test_each_loader_gives_its_declared_shape_and_split(tmp_path):
    write_cifar_batches(tmp_path / "cifar" / CIFAR10_FOLDER)
    (tmp_path / "mnist").mkdir()
    for name in MNIST_FILES:
        write_idx(tmp_path / "mnist" / name, np.zeros((2, 28, 28) if "images" in name else (2,)), compress=False)
    for name, entry in ((name, DATASET_ENTRIES[name]) for name in ("digits", "mnist", "cifar10")):  # the shipped ones
        data = prepare(Data(dataset=name, root=str(tmp_path / name.removesuffix("10")) if entry.files else None))
        assert tuple(data.train_images.shape[1:]) == tuple(data.test_images.shape[1:]) == entry.shape, name


def test_an_unknown_dataset_is_refused_naming_those_there_are():
    with pytest.raises(ValidationError, match=r"'digit' is not a dataset; allowed: \[.*'digits'.*\]; did you mean 'digits'"):
        Data(dataset="digit")
