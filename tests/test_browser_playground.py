"""The playground in a real browser (the issue's acceptance): direct and generator side by side,
Play, and both canvases animate — titles and what the charts draw change from frame to frame."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.browser

# Each playground canvas: the title above it and a fingerprint of what its Vega-Lite chart draws
# (the canvases are Vega-Lite charts whose data change in place from frame to frame).
CANVASES_JS = """() => {
    const titles = Array.from(document.querySelectorAll('p strong')).map(e => e.textContent)
        .filter(t => / — epoch \\d+/.test(t));
    const charts = Array.from(document.querySelectorAll('[data-testid="stVegaLiteChart"]'));
    const print = el => { if (!el) return null;
        const text = el.tagName === 'CANVAS' ? el.toDataURL() : el.innerHTML; let h = 0;
        for (let i = 0; i < text.length; i++) h = (h * 31 + text.charCodeAt(i)) | 0;
        return String(h); };
    return titles.slice(0, 2).map((title, i) => ({title: title,
        heat: charts[i] ? print(charts[i].querySelector('canvas, svg')) : null}));
}"""


def test_play_animates_direct_and_generator_side_by_side(server, page):
    from playwright.sync_api import expect

    page.set_viewport_size({"width": 1400, "height": 1800})
    page.goto(f"{server}/playground")
    expect(page.get_by_role("button", name="Play")).to_be_visible()
    page.wait_for_function("() => document.querySelectorAll('[data-testid=stVegaLiteChart]').length >= 3")
    page.get_by_role("button", name="Play").click()
    seen: list = []

    def distinct(lane: int, what: str) -> int:
        return len({frame[lane][what] for frame in seen if frame[lane]["title"].startswith(("direct", "generator")[lane])})

    previous = ""  # each wait ends on a frame that differs from the last one seen (a title or a canvas)
    # a canvas may be redrawn a moment after its title changes (Vega-Lite updates in place): wait for
    # three different drawings of each lane, not only three titles
    while min(distinct(0, "title"), distinct(1, "title"), distinct(0, "heat"), distinct(1, "heat")) < 3 and len(seen) < 60:
        page.wait_for_function(f"prev => {{ const c = ({CANVASES_JS})(); "
                               "return c.length === 2 && JSON.stringify(c) !== prev; }", arg=previous)
        canvases = page.evaluate(CANVASES_JS)
        if len(canvases) == 2:
            seen.append(canvases)
            previous = json.dumps(canvases, separators=(",", ":"), ensure_ascii=False)
    page.get_by_role("button", name="Pause").click()
    directs = [frame[0] for frame in seen if frame[0]["title"].startswith("direct")]
    generators = [frame[1] for frame in seen if frame[1]["title"].startswith("generator")]
    assert len({d["title"] for d in directs}) >= 3 and len({g["title"] for g in generators}) >= 3
    assert len({d["heat"] for d in directs}) >= 3 and len({g["heat"] for g in generators}) >= 3
