"""Parsers: the real files in ../shared/data parse to the published shapes, and bad input
gives one DatasetError naming the file and the line."""
from __future__ import annotations

import gzip
import io
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from dfkd_core.data import parsers
from dfkd_core.data.parsers import (
    parse_ctscan,
    parse_esol,
    parse_idx,
    parse_indoorloc,
    parse_keel,
    parse_libsvm,
    parse_mnist,
)
from dfkd_core.errors import DatasetError


# ---------------------------------------------------------------- the real files

REAL = [
    ("keel/compactiv.dat", lambda p: parse_keel(p, target="usr"), (8192, 21), [95.0, 97.0, 87.0]),
    ("keel/mv.dat", lambda p: parse_keel(p, target="Y"), (40768, 10), [-2.40458, -26.2577]),
    ("keel/pole.dat", lambda p: parse_keel(p, target="Output"), (14998, 26), [0.0, 0.0, 10.0]),
    ("keel/puma32h.dat", lambda p: parse_keel(p, target="thetadd6"), (8192, 32), [0.052627, 0.001308]),
    ("libsvm/cpusmall", lambda p: parse_libsvm(p, n_features=12), (8192, 12), [90.0, 88.0, 85.0]),
    ("protein/esol_aa_composition.csv", parse_esol, (3148, 20), [0.34, 0.07, 0.08]),
]


@pytest.mark.parametrize("relpath, parse, shape, first_y", REAL, ids=[r[0] for r in REAL])
def test_real_file_parses_to_the_published_shape_and_targets(shared_data, relpath, parse, shape, first_y):
    X, y = parse(shared_data / relpath)
    assert X.shape == shape and y.shape == (shape[0],)
    assert X.dtype == np.float64 and y.dtype == np.float64
    np.testing.assert_allclose(y[: len(first_y)], first_y, rtol=1e-6)
    assert np.isfinite(X).all() and np.isfinite(y).all()


def test_keel_features_follow_the_inputs_line(shared_data):
    X, _ = parse_keel(shared_data / "keel/compactiv.dat")
    np.testing.assert_allclose(X[0, :4], [1.0, 0.0, 2147.0, 79.0])


def test_libsvm_places_values_at_their_one_based_index(shared_data):
    X, _ = parse_libsvm(shared_data / "libsvm/cpusmall", n_features=12)
    np.testing.assert_allclose(X[0, [0, 1, 11]], [6.0, 2.0, 1851864.0])


@pytest.fixture(scope="module")
def indoorloc():
    from conftest import SHARED_DATA, shared_data_available

    if not shared_data_available():
        pytest.skip("../shared/data is not beside the repo")
    return parse_indoorloc(SHARED_DATA / "indoorloc/trainingData.csv.gz")  # parsed once: the largest file


def test_indoorloc_parses_520_wap_columns_and_the_longitude(indoorloc):
    X, y = indoorloc
    assert X.shape == (19937, 520) and y.shape == (19937,)
    np.testing.assert_allclose(y[:2], [-7541.2643, -7536.6212])
    assert np.isfinite(X).all() and np.isfinite(y).all()


def test_indoorloc_maps_no_signal_100_to_minus_105(indoorloc):
    X, _ = indoorloc
    assert not (X == 100).any()
    assert X.min() == parsers.INDOORLOC_NO_SIGNAL and X.max() <= 0


def test_esol_compositions_sum_to_one(shared_data):
    X, y = parse_esol(shared_data / "protein/esol_aa_composition.csv")
    np.testing.assert_allclose(X.sum(axis=1), 1.0, atol=1e-6)
    assert 0 <= y.min() and y.max() <= 1


def test_mnist_test_images_are_28x28_in_unit_range_with_digit_labels(shared_data):
    X, y = parse_mnist(shared_data / "mnist/t10k-images-idx3-ubyte.gz", shared_data / "mnist/t10k-labels-idx1-ubyte.gz")
    assert X.shape == (10000, 1, 28, 28)
    assert X.min() == 0.0 and X.max() == 1.0
    np.testing.assert_array_equal(y[:5], [7, 2, 1, 0, 4])


def test_idx_reads_the_training_labels(shared_data):
    labels = parse_idx(shared_data / "mnist/train-labels-idx1-ubyte.gz", ndim=1)
    assert labels.shape == (60000,) and set(np.unique(labels)) == set(range(10))


# ---------------------------------------------------------------- small files in the sources' formats


def _keel_text(rows: list[str], output: str = "@output y") -> str:
    head = ["@relation t", "@attribute a real[0.0,9.0]", "@attribute b real [0.0, 9.0]", "@attribute y real[0.0,9.0]",
            "@inputs a, b", output, "@data"]
    return "\n".join(head + rows) + "\n"


def _csv(header: list[str], rows: list[list]) -> str:
    return "\n".join([",".join(header)] + [",".join(str(v) for v in r) for r in rows]) + "\n"


INDOOR_HEADER = list(parsers.INDOORLOC_WAPS) + ["LONGITUDE", "LATITUDE", "FLOOR", "BUILDINGID", "SPACEID",
                                                 "RELATIVEPOSITION", "USERID", "PHONEID", "TIMESTAMP"]
CT_HEADER = ["patientId"] + list(parsers.CTSCAN_FEATURES) + ["reference"]
ESOL_HEADER = list(parsers.ESOL_AMINO_ACIDS) + ["solubility"]


def _indoor_row(i: int) -> list:
    return [100] * 519 + [-80 + i] + [-7500.5 - i, 4864900.25, 1, 0, 100, 2, 1, 3, 1371713733]


def _ct_row(i: int) -> list:
    return [i // 2] + [round(0.01 * (i + j), 4) for j in range(384)] + [10.0 * i]


def _esol_row(i: int) -> list:
    return [0.05] * 20 + [0.1 * i]


def test_ctscan_small_file_in_uci_format_drops_patient_id(tmp_path):
    path = tmp_path / "slice_localization_data.csv"
    path.write_text(_csv(CT_HEADER, [_ct_row(i) for i in range(5)]))
    X, y = parse_ctscan(path)
    assert X.shape == (5, 384)
    np.testing.assert_allclose(y, [0, 10, 20, 30, 40])
    np.testing.assert_allclose(X[1, :2], [0.01, 0.02])


def test_ctscan_reads_the_csv_inside_the_uci_zip(tmp_path):
    path = tmp_path / "ct.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("slice_localization_data.csv", _csv(CT_HEADER, [_ct_row(i) for i in range(3)]))
    X, y = parse_ctscan(path)
    assert X.shape == (3, 384) and y.tolist() == [0.0, 10.0, 20.0]


def test_indoorloc_reads_plain_csv_and_keeps_real_signals(tmp_path):
    path = tmp_path / "trainingData.csv"
    path.write_text(_csv(INDOOR_HEADER, [_indoor_row(i) for i in range(3)]))
    X, y = parse_indoorloc(path)
    assert X.shape == (3, 520)
    assert X[0, 0] == -105.0 and X[2, 519] == -78.0
    np.testing.assert_allclose(y, [-7500.5, -7501.5, -7502.5])


def _gz_truncated(text: str) -> bytes:
    data = gzip.compress(text.encode())
    return data[: len(data) // 2]


def _idx(dims: tuple[int, ...], payload: bytes, magic_ndim: int | None = None) -> bytes:
    head = bytes([0, 0, 0x08, magic_ndim if magic_ndim is not None else len(dims)])
    return head + struct.pack(f">{len(dims)}I", *dims) + payload


KEEL_OK = ["1,2,3", "4,5,6"]
BAD = [
    # (file name, content (str or bytes), parse, match)
    ("bad.dat", _keel_text(KEEL_OK + ["7,8"]), parse_keel, r"bad\.dat, line 10: 2 columns, expected 3"),
    ("bad.dat", _keel_text(KEEL_OK + ["7,x,9"]), parse_keel, r"bad\.dat, line 10: column 'b' holds 'x', not a number"),
    ("bad.dat", _keel_text(["1,2,3", "4,NaN,6"]), parse_keel, r"bad\.dat, line 9: column 'b' holds 'NaN', not a finite"),
    ("bad.dat", _keel_text(["1,2,inf"]), parse_keel, r"bad\.dat, line 8: column 'y' holds 'inf', not a finite"),
    ("bad.dat", "", parse_keel, r"bad\.dat, line 1: the file is empty"),
    ("bad.dat", _keel_text([]), parse_keel, r"bad\.dat, line 8: no data rows"),
    ("bad.dat", _keel_text(KEEL_OK, output="@comment"), parse_keel, r"bad\.dat, line 7: missing target column"),
    ("bad.dat", _keel_text(KEEL_OK, output="@output z"), parse_keel, r"bad\.dat, line 6: missing target column 'z'"),
    ("bad.dat", "@relation t\n@attribute a real\n", parse_keel, r"bad\.dat, line 2: no @data line"),
    ("bad.dat.gz", _gz_truncated(_keel_text(KEEL_OK * 500)), parse_keel, r"bad\.dat\.gz, line \d+: truncated or corrupt gzip"),
    ("cpu", "1 1:2\n2 3:4 13:1\n", lambda p: parse_libsvm(p, 12), r"cpu, line 2: feature index 13 is outside 1\.\.12"),
    ("cpu", "1 1:2\nabc 3:4\n", lambda p: parse_libsvm(p, 12), r"cpu, line 2: the target 'abc' is not a number"),
    ("cpu", "1 1:2\n\n2 3:x\n", lambda p: parse_libsvm(p, 12), r"cpu, line 3: '3:x' is not index:value"),
    ("cpu", "1 1:nan\n", lambda p: parse_libsvm(p, 12), r"cpu, line 1: feature 1 holds 'nan', not a finite"),
    ("cpu", "\n\n", lambda p: parse_libsvm(p, 12), r"cpu, line 1: the file is empty"),
    ("t.csv", _csv(INDOOR_HEADER, [_indoor_row(0), _indoor_row(1)[:-3]]), parse_indoorloc, r"t\.csv, line 3: 526 columns, expected 529"),
    ("t.csv", _csv(INDOOR_HEADER, [_indoor_row(0), ["x"] + _indoor_row(1)[1:]]), parse_indoorloc, r"t\.csv, line 3: column 'WAP001' holds 'x'"),
    ("t.csv", _csv(INDOOR_HEADER, [_indoor_row(0)[:520] + ["nan"] + _indoor_row(0)[521:]]), parse_indoorloc, r"t\.csv, line 2: column 'LONGITUDE' holds 'nan'"),
    ("t.csv", _csv(INDOOR_HEADER[:520] + ["LAT"], [_indoor_row(0)[:521]]), parse_indoorloc, r"t\.csv, line 1: missing target column LONGITUDE"),
    ("t.csv.gz", _gz_truncated(_csv(INDOOR_HEADER, [_indoor_row(i) for i in range(40)])), parse_indoorloc, r"t\.csv\.gz, line \d+: truncated or corrupt gzip"),
    ("t.csv", "", parse_indoorloc, r"t\.csv, line 1: the file is empty"),
    ("ct.csv", _csv(CT_HEADER, [_ct_row(0), _ct_row(1)[:-1]]), parse_ctscan, r"ct\.csv, line 3: 385 columns, expected 386"),
    ("ct.csv", _csv(CT_HEADER, [_ct_row(0)[:-1] + ["inf"]]), parse_ctscan, r"ct\.csv, line 2: column 'reference' holds 'inf'"),
    ("ct.csv", _csv(CT_HEADER[:-1], [_ct_row(0)[:-1]]), parse_ctscan, r"ct\.csv, line 1: missing target column reference"),
    ("ct.zip", b"PK\x03\x04 not really a zip", parse_ctscan, r"ct\.zip: not a readable zip archive"),
    ("e.csv", _csv(ESOL_HEADER, [_esol_row(1), ["A"] + _esol_row(2)[1:]]), parse_esol, r"e\.csv, line 3: column 'A' holds 'A', not a number"),
    ("e.csv", _csv(ESOL_HEADER, [_esol_row(1), _esol_row(2) + [1]]), parse_esol, r"e\.csv, line 3: 22 columns, expected 21"),
    ("e.csv", _csv(ESOL_HEADER[:-1], [_esol_row(1)[:-1]]), parse_esol, r"e\.csv, line 1: missing target column solubility"),
    ("e.csv", "A,R\n", parse_esol, r"e\.csv, line 1: missing target column"),
    ("i.gz", gzip.compress(_idx((3, 2, 2), bytes(8))), lambda p: parse_idx(p, 3), r"i\.gz, byte 16: the header promises \(3, 2, 2\) = 12 bytes"),
    ("i.gz", gzip.compress(b"\x12\x34\x08\x03" + bytes(20)), lambda p: parse_idx(p, 3), r"i\.gz, byte 0: magic number 0x12340803 is not an IDX file"),
    ("i.gz", gzip.compress(_idx((4,), bytes(4))), lambda p: parse_idx(p, 3), r"i\.gz, byte 0: .* not an IDX file of images \(0x00000803\)"),
    ("i.gz", _gz_truncated("\n".join(str(i) for i in range(5000))), lambda p: parse_idx(p, 1), r"i\.gz, line \d+: truncated or corrupt gzip"),
    ("i.gz", b"", lambda p: parse_idx(p, 1), r"i\.gz, line 1: the file is empty"),
]


@pytest.mark.parametrize(
    "name, content, parse, match",
    BAD,
    ids=[
        "keel-wrong-column-count", "keel-non-numeric-cell", "keel-nan", "keel-inf", "keel-empty-file", "keel-no-rows",
        "keel-no-output-line", "keel-output-not-an-attribute", "keel-no-data-line", "keel-truncated-gzip",
        "libsvm-index-out-of-range", "libsvm-non-numeric-target", "libsvm-non-numeric-value", "libsvm-nan", "libsvm-empty-file",
        "indoorloc-wrong-column-count", "indoorloc-non-numeric-cell", "indoorloc-nan-target", "indoorloc-missing-target",
        "indoorloc-truncated-gzip", "indoorloc-empty-file",
        "ctscan-wrong-column-count", "ctscan-inf-target", "ctscan-missing-target", "ctscan-bad-zip",
        "esol-non-numeric-cell", "esol-wrong-column-count", "esol-missing-target", "esol-header-only",
        "idx-short-data", "idx-bad-magic", "idx-labels-given-as-images", "idx-truncated-gzip", "idx-empty-file",
    ],
)
def test_bad_input_raises_one_dataset_error_naming_file_and_line(tmp_path, name, content, parse, match):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DatasetError, match=match):
        parse(path)


def test_mnist_pair_with_different_counts_is_rejected(tmp_path):
    images, labels = tmp_path / "img.gz", tmp_path / "lab.gz"
    images.write_bytes(gzip.compress(_idx((3, 28, 28), bytes(3 * 784))))
    labels.write_bytes(gzip.compress(_idx((2,), bytes(2))))
    with pytest.raises(DatasetError, match=r"lab\.gz: 2 labels for the 3 images"):
        parse_mnist(images, labels)


def test_keel_target_must_match_the_output_line(tmp_path):
    path = tmp_path / "t.dat"
    path.write_text(_keel_text(KEEL_OK))
    with pytest.raises(DatasetError, match=r"t\.dat, line 6: the @output is 'y', expected 'usr'"):
        parse_keel(path, target="usr")
