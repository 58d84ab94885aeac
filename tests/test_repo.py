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
