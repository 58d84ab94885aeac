"""The playground in a real browser (the issue's acceptance): direct and generator side by side,
Play, and both canvases animate — titles, heatmaps and arrows change from frame to frame."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

# Each playground canvas as plotly holds it: its title, its heatmap (base64) and its arrows' x.
CANVASES_JS = """() => Array.from(document.querySelectorAll('.js-plotly-plot'))
    .filter(el => el.layout && el.layout.title && / — epoch \\d+/.test(el.layout.title.text || ''))
    .map(el => {
        const title = el.layout.title.text.replace(/<[^>]+>/g, '');  // Streamlit wraps titles in <b>
        const z = el.data[0].z, arrows = el.data.find(t => t.name === 'its move');
        const zKey = z && z.bdata ? z.bdata : JSON.stringify(Array.from(z, row => Array.from(row)));
        return {title: title, heat: zKey,
                arrows: arrows ? JSON.stringify(arrows.x) : null};
    })"""


def test_play_animates_direct_and_generator_side_by_side(server, page):
    from playwright.sync_api import expect

    page.set_viewport_size({"width": 1400, "height": 1800})
    page.goto(f"{server}/playground")
    expect(page.get_by_role("button", name="Play")).to_be_visible()
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 2")
    page.get_by_role("button", name="Play").click()
    seen: list = []
    titles: set = set()

    previous = ""  # each wait ends on a frame whose titles differ from the last one seen
    while len({t for t in titles if t.startswith("direct")}) < 3 or len({t for t in titles if t.startswith("generator")}) < 3:
        page.wait_for_function(f"prev => {{ const c = ({CANVASES_JS})(); "
                               "return c.length === 2 && c.map(x => x.title).join(' | ') !== prev; }", arg=previous)
        canvases = page.evaluate(CANVASES_JS)
        if len(canvases) == 2:
            seen.append(canvases)
            previous = " | ".join(c["title"] for c in canvases)
            titles |= {c["title"] for c in canvases}
    page.get_by_role("button", name="Pause").click()
    directs = [frame[0] for frame in seen if frame[0]["title"].startswith("direct")]
    generators = [frame[1] for frame in seen if frame[1]["title"].startswith("generator")]
    assert len({d["title"] for d in directs}) >= 3 and len({g["title"] for g in generators}) >= 3
    assert len({d["heat"] for d in directs}) >= 3 and len({g["heat"] for g in generators}) >= 3
    assert len({d["arrows"] for d in directs if d["arrows"]}) >= 2  # direct's arrows move with every step
    assert all(g["arrows"] is None for g in generators)  # the generator's points have no start
