"""The paper's split protocol: sizes, seeded permutations, standardization, and the prior
built for tables, images and compositions."""
from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from dfkd_core.data import DATASETS, Split, load_dataset, load_split
from dfkd_core.data.catalog import MNIST_OFFLINE_NOTE
from dfkd_core.data.protocol import split_sizes, standardize, train_size
from dfkd_core.errors import RegistryError


@pytest.fixture
def compactiv(shared_data) -> Split:
    return load_split("compactiv", seed=0)


def test_tabular_split_is_5000_train_then_10_and_90_percent(compactiv):
    # 8192 rows: 5000 train; of the 3192 left floor(10 %) = 319 validate, 2873 test
    assert (len(compactiv.y_train), len(compactiv.y_val), len(compactiv.y_test)) == (5000, 319, 2873)
    assert compactiv.x_train.shape == (5000, 21)


def test_split_tensors_are_float32_on_the_cpu(compactiv):
    for t in (compactiv.x_train, compactiv.y_train, compactiv.x_val, compactiv.y_val, compactiv.x_test, compactiv.y_test):
        assert t.dtype == torch.float32 and t.device.type == "cpu"


def test_same_seed_gives_the_same_split(shared_data, compactiv):
    again = load_split("compactiv", seed=0)
    assert torch.equal(again.x_train, compactiv.x_train) and torch.equal(again.y_test, compactiv.y_test)


def test_different_seeds_give_different_splits(shared_data, compactiv):
    other = load_split("compactiv", seed=1)
    assert not torch.equal(other.y_train, compactiv.y_train)


def test_train_val_test_partition_the_whole_set(shared_data, compactiv):
    y = torch.cat([compactiv.y_train, compactiv.y_val, compactiv.y_test]).double() * compactiv.y_std + compactiv.y_mean
    raw = load_dataset("compactiv").y
    np.testing.assert_allclose(np.sort(y.numpy()), np.sort(raw), atol=1e-4)


def test_tabular_x_and_y_are_standardized_on_the_whole_set(shared_data, compactiv):
    X = torch.cat([compactiv.x_train, compactiv.x_val, compactiv.x_test]).double()
    y = torch.cat([compactiv.y_train, compactiv.y_val, compactiv.y_test]).double()
    torch.testing.assert_close(X.mean(0), torch.zeros(21, dtype=torch.float64), atol=1e-5, rtol=0)
    torch.testing.assert_close(X.std(0, unbiased=False), torch.ones(21, dtype=torch.float64), atol=1e-4, rtol=0)
    raw = load_dataset("compactiv")
    assert compactiv.y_mean == pytest.approx(raw.y.mean()) and compactiv.y_std == pytest.approx(raw.y.std())
    torch.testing.assert_close(y.mean(), torch.tensor(0.0, dtype=torch.float64), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.std(unbiased=False), torch.tensor(1.0, dtype=torch.float64), atol=1e-5, rtol=0)


def test_constant_feature_keeps_std_one():
    a = np.array([[1.0, 5.0], [3.0, 5.0]])
    z, mean, std = standardize(a)
    np.testing.assert_array_equal(std, [1.0, 1.0])
    np.testing.assert_array_equal(z, [[-1.0, 0.0], [1.0, 0.0]])


def test_tabular_prior_is_standard_normal_bounded_by_the_train_set(compactiv):
    prior = compactiv.prior
    assert prior.kind == "gaussian" and prior.shape == (21,)
    assert torch.equal(prior.mean, torch.zeros(21)) and torch.equal(prior.std, torch.ones(21))
    torch.testing.assert_close(prior.lower, compactiv.x_train.min(0).values)
    torch.testing.assert_close(prior.upper, compactiv.x_train.max(0).values)


def test_protein_split_is_2500_train_unscaled_with_a_simplex_prior(shared_data):
    split = load_split("protein", seed=3)
    assert (len(split.y_train), len(split.y_val), len(split.y_test)) == (2500, 64, 584)
    torch.testing.assert_close(split.x_train.sum(1), torch.ones(2500), atol=1e-5, rtol=0)
    assert split.y_mean == 0.0 and split.y_std == 1.0 and 0 <= split.y_train.min() and split.y_train.max() <= 1
    assert split.prior.kind == "simplex"
    torch.testing.assert_close(split.prior.mean, split.x_train.mean(0), atol=1e-6, rtol=0)


def test_protein_prior_samples_lie_on_the_simplex(shared_data):
    prior = load_split("protein").prior
    x = prior.sample(1000, generator=torch.Generator().manual_seed(0))
    assert x.shape == (1000, 20)
    torch.testing.assert_close(x.sum(1), torch.ones(1000), atol=1e-5, rtol=0)
    assert x.min() >= 0 and x.max() <= 1


def test_mnist_offline_splits_the_test_images_8000_2000_and_says_so(shared_data, monkeypatch):
    monkeypatch.setenv("DFKD_OFFLINE", "1")
    split = load_split("mnist")
    assert (len(split.y_train), len(split.y_val), len(split.y_test)) == (8000, 200, 1800)
    assert split.x_train.shape == (8000, 1, 28, 28)
    assert split.note == MNIST_OFFLINE_NOTE
    assert split.note.startswith("Offline: MNIST's 10 000 test images split 8000 train / 2000 held out")


def test_mnist_keeps_pixels_in_unit_range_and_digit_targets(shared_data, monkeypatch):
    monkeypatch.setenv("DFKD_OFFLINE", "1")
    split = load_split("mnist")
    assert split.x_train.min() == 0 and split.x_train.max() == 1
    assert set(split.y_train.unique().tolist()) == set(range(10)) and split.y_std == 1.0
    prior = split.prior
    assert prior.kind == "clipped_gaussian" and prior.shape == (1, 28, 28)
    assert torch.equal(prior.lower, torch.zeros(1, 28, 28)) and torch.equal(prior.upper, torch.ones(1, 28, 28))
    everything = torch.cat([split.x_train, split.x_val, split.x_test])
    torch.testing.assert_close(prior.mean, everything.mean(0), atol=1e-5, rtol=0)


def _idx_gz(dims, payload: bytes) -> bytes:
    return gzip.compress(bytes([0, 0, 0x08, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + payload)


def test_mnist_with_training_images_trains_on_all_of_them_and_splits_the_test_set(tmp_path, monkeypatch):
    monkeypatch.setenv("DFKD_ACCEPT_CHECKSUM_MISMATCH", "1")  # small stand-ins, not the published files
    rng = np.random.default_rng(0)
    folder = tmp_path / "mnist"
    folder.mkdir()
    for prefix, n in (("train", 120), ("t10k", 50)):
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(_idx_gz((n, 28, 28), rng.integers(0, 256, n * 784, dtype=np.uint8).tobytes()))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(_idx_gz((n,), rng.integers(0, 10, n, dtype=np.uint8).tobytes()))
    split = load_split("mnist", data_dir=tmp_path)
    assert (len(split.y_train), len(split.y_val), len(split.y_test)) == (120, 5, 45)
    assert split.note == ""


def test_digits_are_8x8_images_in_unit_range():
    split = load_split("digits")
    assert split.kind == "image" and split.input_shape == (1, 8, 8)
    assert split.x_train.min() >= 0 and split.x_train.max() <= 1
    assert len(split.y_train) == int(1797 * 0.6)


def test_small_builtin_trains_on_60_percent():
    split = load_split("diabetes")
    assert (len(split.y_train), len(split.y_val), len(split.y_test)) == (265, 17, 160)


@pytest.mark.parametrize("name", ["friedman1", "toy2d"])
def test_builtin_tables_load_with_the_specs_shape(name):
    split = load_split(name)
    spec = DATASETS.get(name)
    assert split.input_shape == spec.input_shape
    assert len(split.y_train) + len(split.y_val) + len(split.y_test) == spec.rows


def test_split_sizes_round_the_validation_share_down():
    assert split_sizes(8192, 5000) == (5000, 319, 2873)
    assert train_size(442, None) == 265 and train_size(40768, 5000) == 5000


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"name": "nope"}, RegistryError, r"No dataset 'nope' registered \(have: compactiv"),
        ({"name": "toy2d", "seed": "1"}, TypeError, r"The 'seed' parameter of load_split must be an int\. Got '1' instead\."),
    ],
    ids=["unknown-dataset", "seed-not-an-int"],
)
def test_load_split_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        load_split(**kwargs)
