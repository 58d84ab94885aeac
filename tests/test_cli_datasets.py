"""`python -m dfkd_core datasets` run as a user runs it (subprocess): the catalogue, --check,
and one-line errors for bad files."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, SHARED_DATA, needs_shared_data

pytestmark = needs_shared_data


def _run(*args: str, data_dir=SHARED_DATA, **env) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "DFKD_DATA_DIR": str(data_dir), "DFKD_OFFLINE": "1", **env}
    full_env.pop("DFKD_DATA_MIRROR", None)
    return subprocess.run([sys.executable, "-m", "dfkd_core", "datasets", *args], cwd=REPO, env=full_env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def catalog() -> dict[str, dict]:
    result = _run("--json")
    assert result.returncode == 0, result.stderr
    return {row["name"]: row for row in json.loads(result.stdout)}


EXPECTED = [
    ("compactiv", 8192, 21, "usr", True),
    ("cpusmall", 8192, 12, "first column", True),
    ("mv", 40768, 10, "Y", True),
    ("pole", 14998, 26, "Output", True),
    ("puma32h", 8192, 32, "thetadd6", True),
    ("indoorloc", 19937, 520, "LONGITUDE", True),
    ("ctscan", 53500, 384, "reference", False),
    ("mnist", 10000, 784, "digit value", True),
    ("protein", 3148, 20, "solubility", True),
    ("diabetes", 442, 10, "disease progression", True),
    ("digits", 1797, 64, "digit value", True),
    ("friedman1", 10000, 10, "y", True),
    ("toy2d", 6000, 2, "y", True),
]


@pytest.mark.parametrize("name, rows, features, target, available", EXPECTED, ids=[e[0] for e in EXPECTED])
def test_json_lists_each_dataset_with_rows_features_target_and_availability(catalog, name, rows, features, target, available):
    row = catalog[name]
    assert (row["rows"], row["features"], row["target"], row["available"]) == (rows, features, target, available)
    assert {"name", "paper_name", "kind", "source", "files"} <= set(row)


def test_json_mnist_with_test_images_only_carries_a_note(catalog):
    assert catalog["mnist"]["note"].startswith("Offline: MNIST's 10 000 test images")


def test_json_ctscan_points_at_its_download(catalog):
    assert "archive.ics.uci.edu" in catalog["ctscan"]["note"]
    assert catalog["ctscan"]["files"][0]["present"] is False


def test_table_lists_every_dataset_with_yes_or_no():
    result = _run()
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["name", "paper", "name"]
    ctscan = next(line for line in lines if line.startswith("ctscan "))
    assert " no " in ctscan


def test_check_verifies_every_present_file():
    result = _run("--check")
    assert result.returncode == 0, result.stderr
    assert "ok         compactiv" in result.stdout
    assert "0 mismatches" in result.stdout


def test_check_fails_on_a_modified_file(tmp_path):
    shutil.copytree(SHARED_DATA / "protein", tmp_path / "protein")
    target = tmp_path / "protein" / "esol_aa_composition.csv"
    target.chmod(0o644)
    target.write_text(target.read_text().replace("0.34\n", "0.35\n", 1))
    result = _run("--check", data_dir=tmp_path)
    assert result.returncode == 1
    assert "mismatch   protein" in result.stdout
    assert "Traceback" not in result.stderr


def test_malformed_file_gives_one_line_on_stderr_and_no_traceback(tmp_path):
    (tmp_path / "keel").mkdir()
    (tmp_path / "keel" / "pole.dat").write_text("@relation pole\n@attribute a real\n@attribute Output real\n@inputs a\n@output Output\n@data\n1,2\n3\n")
    result = _run("--load", "pole", data_dir=tmp_path, DFKD_ACCEPT_CHECKSUM_MISMATCH="1")  # not the published file
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    warning, error = result.stderr.strip().splitlines()
    assert "differs from the published file" in warning and "DFKD_ACCEPT_CHECKSUM_MISMATCH is set" in warning
    assert error == f"error: {tmp_path / 'keel' / 'pole.dat'}, line 8: 1 columns, expected 2"


def test_a_file_that_differs_from_its_published_checksum_is_refused_in_one_line(tmp_path):
    (tmp_path / "libsvm").mkdir()
    lines = (SHARED_DATA / "libsvm" / "cpusmall").read_text().splitlines(keepends=True)
    (tmp_path / "libsvm" / "cpusmall").write_text("".join(lines[:3513]))  # cut to 3,513 of 8,192 rows
    result = _run("--load", "cpusmall", data_dir=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: The data file {tmp_path / 'libsvm' / 'cpusmall'} is not the published libsvm/cpusmall")
    assert "expected sha256 2b58ea931ae37dfede75e45e15b8f797eee01f229f2c8c66b70f820a55a65eab, got " in line
    assert "set DFKD_ACCEPT_CHECKSUM_MISMATCH=1 to use it anyway" in line
    accepted = _run("--load", "cpusmall", "--json", data_dir=tmp_path, DFKD_ACCEPT_CHECKSUM_MISMATCH="1")
    assert accepted.returncode == 0, accepted.stderr
    assert json.loads(accepted.stdout)["train"] + json.loads(accepted.stdout)["val"] + json.loads(accepted.stdout)["test"] == 3513
    assert "differs from the published file" in accepted.stderr


def test_missing_file_offline_gives_one_line_naming_where_to_put_it():
    result = _run("--load", "ctscan")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ctscan/slice_localization_data.csv is missing")
    assert str(SHARED_DATA / "ctscan" / "slice_localization_data.csv") in line
