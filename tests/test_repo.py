"""The set-up promises: README's two commands, .ci/run running the README's test command,
the torch pin, and the package map in dfkd_core's docstring."""
from __future__ import annotations

import re

from conftest import REPO


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("## Start")
    section = text[start:text.index("\n## ", start + 1)]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_readme_holds_exactly_two_commands_one_for_the_dashboard_one_for_the_tests():
    commands = readme_commands()
    assert len(commands) == 2
    assert "streamlit run app.py" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert readme_commands()[1] in ci.splitlines()


def test_torch_is_pinned_so_pip_never_pulls_a_cuda_build():
    assert "torch==2.13.0" in (REPO / "requirements.txt").read_text().splitlines()


WALL_CLOCK = re.compile(r"\b(perf_counter|monotonic|time\.time)\(\)")


def test_no_test_asserts_on_wall_clock_time():
    """Speed is measured by `python -m dfkd_core bench`; a test that asserts a duration fails a busy CI."""
    offenders = []
    for path in sorted((REPO / "tests").glob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.lstrip().startswith("assert") and WALL_CLOCK.search(line):
                offenders.append(f"{path.name}:{number}: {line.strip()}")
    assert offenders == []


# the keyword that names a browser executable; written as a pattern so that this file does not name it
EXECUTABLE = re.compile(r"executable[_]path")


def test_the_tests_launch_chromium_only_in_conftest_and_the_bench_only_in_experiments_browser():
    """In tests/, only conftest's `browser` fixture names a browser executable (Debian's chromium);
    in the product, only experiments.browser.launch_chromium (bench --dashboard) does."""
    def naming(files) -> list[str]:
        return [str(path.relative_to(REPO)) for path in sorted(files) if EXECUTABLE.search(path.read_text(encoding="utf-8"))]

    assert naming((REPO / "tests").glob("*.py")) == ["tests/conftest.py"]
    assert naming((REPO / "dfkd_core").rglob("*.py")) == ["dfkd_core/experiments/browser.py"]
    for path in (REPO / "tests" / "conftest.py", REPO / "dfkd_core" / "experiments" / "browser.py"):
        assert len(EXECUTABLE.findall(path.read_text(encoding="utf-8"))) == 1, path.name  # one launch each


def test_pytest_prints_the_slowest_tests():
    assert re.search(r"^addopts = .*--durations=\d+", (REPO / "pytest.ini").read_text(encoding="utf-8"), re.M)
