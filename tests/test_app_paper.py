"""AppTest of pages/paper.py: the paper's tables beside ours, from the run store."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dfkd_core import dashboard
from dfkd_core.experiments import reproduce

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "paper.py")


def _page() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=300)


def test_paper_page_renders_on_an_empty_store():
    at = _page().run()
    assert not at.exception
    assert any("No stored runs of Table 3" in i.value for i in at.info)


@pytest.mark.parametrize("table", [3, 4, 5, 6])
def test_an_empty_store_still_shows_the_papers_own_numbers(table):
    at = _page().run()
    at.radio[0].set_value(table).run()
    assert not at.exception and not at.error
    frame = at.dataframe[0].value
    spec = reproduce.TABLES[table]
    assert list(frame.index) == list(spec.paper_datasets)
    assert list(frame.columns) == [m.label for m in spec.methods]
    dataset, method = spec.paper_datasets[0], spec.students[-1]
    mean, sd = reproduce.paper_cell(table, dataset, method.key)
    assert frame.loc[dataset, method.label] == f"{mean:.4f} ± {sd:.4f}"


def test_paper_page_shows_a_stored_quick_reproduction_beside_the_paper():
    rep = reproduce.reproduce(4, seeds=1, datasets=["toy2d"], epochs=2, quick=True)
    assert len(rep["run_ids"]) == 2
    at = _page().run()
    at.radio[0].set_value(4).run()
    assert not at.exception
    assert not at.error
    assert list(at.dataframe[0].value.index) == list(reproduce.TABLES[4].paper_datasets)  # the paper's, always
    frame = at.dataframe[1].value
    assert list(frame.index) == ["toy2d"]
    assert list(frame.columns) == [m.label for m in reproduce.TABLES[4].methods]
    claims = [m.value for m in at.markdown if "direct dec-α ≤ random" in m.value]
    assert claims and all(c.startswith(("**holds**", "**does not hold**", "**not decided yet")) for c in claims), claims
    # verdicts in words: an emoji draws as an empty box where the browser has no emoji font
    assert not any(ch in m.value for m in at.markdown for ch in "✅❌⏳")
    paired = at.dataframe[2].value  # the paired verdicts under the claims
    assert set(paired["claim"]) == {"direct_dec ≤ random", "direct_dec ≤ generator_dec"}
    assert set(paired["verdict"]) == {"undecided"} and list(paired["n"]) == [1, 1]


def test_start_button_launches_the_reproduce_command(monkeypatch):
    calls = []

    def fake_start(table, **kwargs):
        calls.append((table, kwargs))
        return 4242, Path("/tmp/fake.log")

    monkeypatch.setattr(reproduce, "start_reproduction", fake_start)
    at = _page().run()
    at.radio[0].set_value(6).run()
    at.checkbox[0].check()
    at.button[0].click().run()
    assert not at.exception
    assert calls == [(6, {"seeds": None, "datasets": None, "epochs": None, "quick": True, "resume": True})]
    assert any("4242" in s.value for s in at.success)
    at.checkbox[1].uncheck()  # train every comparison again rather than reuse the stored ones
    at.button[0].click().run()
    assert calls[-1] == (6, {"seeds": None, "datasets": None, "epochs": None, "quick": True, "resume": False})
    assert reproduce.reproduce_command(6, quick=True, resume=True)[-2:] == ["--resume", "--json"]


def test_store_errors_reach_the_page_as_one_message_not_a_traceback(monkeypatch):
    from dfkd_core.errors import DfkdError

    def broken(*args, **kwargs):
        raise DfkdError("The run store cannot be opened: disk full.")

    monkeypatch.setattr(reproduce, "stored_reproductions", broken)
    at = _page().run()
    assert not at.exception
    assert [e.value for e in at.error] == [dashboard.plain("The run store cannot be opened: disk full.")]
