"""The sampler playground's charts as Vega-Lite: one spec per chart that stays the same from frame
to frame, and one long table of the frame's data. Streamlit keys a Plotly chart by its whole figure,
so every new frame unmounted and redrew it (the canvases and the RMSE chart flickered while
playing); a Vega-Lite chart whose spec is unchanged gets its data replaced in place.

Every layer reads the one table (`canvas_data`, `curves_data`) through a filter on its `layer`
column: the spec never names data, so only the rows change between frames."""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from .figures import PLAYGROUND_REGION_COLOR, _rgba, sampler_color
from .live_curves import table_layer  # a layer of the one table; marks clipped (points that left the canvas)

CANVAS_SIZE = 330  # px, square (the plot area; the page draws it at its own size)
CURVES_HEIGHT = 220
COLUMNS = ["layer", "x", "y", "x2", "y2", "z", "angle", "url"]
CELL_PX = 5  # each grid cell's side in the heat map's image (61 cells: 305 px, about the canvas's size)


def canvas_spec(sampler: str, extent: float, zmax: float) -> dict:
    """The canvas of one sampler: |T − S| over the plane in greys (white: the student matches the
    teacher; the scale fixed at `zmax`), the real-data region dashed, the random x_p in grey, the
    start points, the moves as segments, and the x_g as arrow heads (direct, evolution) or dots."""
    color = sampler_color(sampler)
    x = {"field": "x", "type": "quantitative", "scale": {"domain": [-extent, extent], "nice": False}, "title": "x₁"}
    y = {"field": "y", "type": "quantitative", "scale": {"domain": [-extent, extent], "nice": False}, "title": "x₂"}
    layers = [
        # |T − S| as ONE image (heat_image), stretched over the grid's extent: a browser draws it in
        # a blink, where 3721 rect marks took most of its main thread at 4 frames per second
        table_layer("heat", {"type": "image", "aspect": False}, {
            "x": x, "x2": {"field": "x2"}, "y": y, "y2": {"field": "y2"}, "url": {"field": "url", "type": "nominal"}}),
        # the legend of the greys: two cells (0 and zmax) hidden under the image
        table_layer("scale", {"type": "rect", "opacity": 0}, {
            "x": x, "x2": {"field": "x2"}, "y": y, "y2": {"field": "y2"},
            "color": {"field": "z", "type": "quantitative", "title": "|T − S|",
                      "scale": {"domain": [0.0, zmax], "range": ["#ffffff", "#000000"], "clamp": True}}}),
        table_layer("region", {"type": "line", "color": PLAYGROUND_REGION_COLOR, "strokeDash": [6, 4], "strokeWidth": 2},
               {"x": x, "y": y, "order": {"field": "z", "type": "quantitative"}}),
        table_layer("random", {"type": "circle", "color": "rgba(150,150,150,0.9)", "size": 25}, {"x": x, "y": y}),
        table_layer("start", {"type": "circle", "color": _rgba(color, 0.5), "size": 25}, {"x": x, "y": y}),
        table_layer("move", {"type": "rule", "color": _rgba(color, 0.8), "strokeWidth": 1.5},
               {"x": x, "y": y, "x2": {"field": "x2"}, "y2": {"field": "y2"}}),
        table_layer("arrow", {"type": "point", "shape": "wedge", "filled": True, "color": color, "size": 120,
                         "stroke": "white", "strokeWidth": 0.5},
               {"x": x, "y": y, "angle": {"field": "angle", "type": "quantitative", "scale": None}}),
        table_layer("dot", {"type": "circle", "color": color, "size": 50, "stroke": "white", "strokeWidth": 1}, {"x": x, "y": y}),
    ]
    return {"width": CANVAS_SIZE, "height": CANVAS_SIZE, "layer": layers, "config": {"legend": {"orient": "right"}},
            "usermeta": {"embedOptions": {"renderer": "canvas"}},  # 3721 cells: a canvas redraws faster than SVG
            "description": f"{sampler}: the student's error |T − S| over the plane and the last batch"}


def heat_image(error: np.ndarray, zmax: float) -> bytes:
    """|T − S| on the grid (rows follow x₂ upward, columns x₁) as a grey PNG, white at 0 and black
    at `zmax` and above, row 0 of the image the top of the canvas, each cell CELL_PX pixels wide."""
    import io

    from PIL import Image

    z = np.clip(np.nan_to_num(np.asarray(error, float), nan=0.0) / max(float(zmax), 1e-12), 0.0, 1.0)
    grey = np.round(255.0 * (1.0 - z[::-1])).astype(np.uint8)  # the top row is the largest x₂
    grey = np.repeat(np.repeat(grey, CELL_PX, axis=0), CELL_PX, axis=1)
    out = io.BytesIO()
    Image.fromarray(grey, mode="L").save(out, format="PNG", optimize=False, compress_level=1)
    return out.getvalue()


def canvas_data(frame, axes: tuple[np.ndarray, np.ndarray], region: tuple[np.ndarray, np.ndarray],
                zmax: float) -> pd.DataFrame:
    """The rows a canvas draws for one playground.Frame: the heat map of |T − S| as one image over
    the grid's cells (heat_image, grey scale fixed at `zmax`), the two cells of its legend, the
    region's outline, and the frame's points (x_g as 'arrow' when they moved from a start, else 'dot')."""
    import base64

    ax, ay = np.asarray(axes[0], float), np.asarray(axes[1], float)
    hx, hy = 0.5 * (ax[1] - ax[0]), 0.5 * (ay[1] - ay[0])  # the cells' half sides: the image covers them all
    url = "data:image/png;base64," + base64.b64encode(heat_image(frame.error, zmax)).decode("ascii")
    parts = [pd.DataFrame({"layer": "heat", "x": [ax[0] - hx], "y": [ay[0] - hy], "x2": [ax[-1] + hx],
                           "y2": [ay[-1] + hy], "z": [np.nan], "angle": [0.0], "url": [url]}),
             pd.DataFrame({"layer": "scale", "x": ax[0], "y": ay[0], "x2": ax[0], "y2": ay[0], "z": [0.0, float(zmax)],
                           "angle": 0.0})]
    rx, ry = np.asarray(region[0], float), np.asarray(region[1], float)
    parts.append(pd.DataFrame({"layer": "region", "x": rx, "y": ry, "x2": np.nan, "y2": np.nan,
                               "z": np.arange(len(rx), dtype=float), "angle": 0.0}))
    if len(frame.random):
        parts.append(_points("random", frame.random))
    if frame.starts is not None and len(frame.starts):
        move = frame.points - frame.starts
        parts.append(_points("start", frame.starts))
        parts.append(pd.DataFrame({"layer": "move", "x": frame.starts[:, 0], "y": frame.starts[:, 1],
                                   "x2": frame.points[:, 0], "y2": frame.points[:, 1], "z": np.nan, "angle": 0.0}))
        # a wedge points up at angle 0; Vega's angles run clockwise from north, as the move's bearing
        parts.append(_points("arrow", frame.points, np.degrees(np.arctan2(move[:, 0], move[:, 1]))))
    elif len(frame.points):
        parts.append(_points("dot", frame.points))
    return pd.concat(parts, ignore_index=True)[COLUMNS]


def _points(layer: str, xy: np.ndarray, angle: np.ndarray | float = 0.0) -> pd.DataFrame:
    xy = np.asarray(xy, float).reshape(-1, 2)
    return pd.DataFrame({"layer": layer, "x": xy[:, 0], "y": xy[:, 1], "x2": np.nan, "y2": np.nan, "z": np.nan,
                         "angle": angle})


def curves_spec(samplers: list[str]) -> dict:
    """RMSE of each playground student on the real-data region per epoch, one colour per sampler,
    and a dotted rule at the epoch the canvases show."""
    colors = [sampler_color(s) for s in samplers]
    return {"height": CURVES_HEIGHT, "width": "container", "title": "Student RMSE on the real-data region", "layer": [
        table_layer("curve", {"type": "line"}, {
            "x": {"field": "x", "type": "quantitative", "title": "epoch"},
            "y": {"field": "y", "type": "quantitative", "title": "RMSE"},
            "color": {"field": "sampler", "type": "nominal", "title": "sampler",
                      "scale": {"domain": samplers, "range": colors}}}),
        table_layer("shown", {"type": "rule", "color": "gray", "strokeDash": [2, 3]}, {"x": {"field": "x", "type": "quantitative"}}),
    ]}


def curves_data(histories: Mapping[str, Mapping[str, np.ndarray]], epoch: int | None) -> pd.DataFrame:
    parts = [pd.DataFrame({"layer": "curve", "sampler": name, "x": np.asarray(h["epoch"], float),
                           "y": np.asarray(h["region_rmse"], float)}) for name, h in histories.items()]
    if epoch is not None:
        parts.append(pd.DataFrame({"layer": ["shown"], "sampler": [""], "x": [float(epoch)], "y": [np.nan]}))
    return pd.concat(parts, ignore_index=True)


def canvas(frame, axes, region, sampler: str, zmax: float, extent: float) -> tuple[pd.DataFrame, dict]:
    """One canvas as the page draws it: its rows and its spec (bench --playground times this)."""
    return canvas_data(frame, axes, region, zmax), canvas_spec(sampler, extent, zmax)


def frame(state, region, zmax: float) -> None:
    """Everything the page builds for one frame of Play, encoded as Streamlit sends it (Arrow):
    every lane's canvas and the RMSE chart (bench --playground's frame time)."""
    import pyarrow as pa

    from ..experiments.playground import PLANE

    tables = []
    for name, f in state.frames_at(state.epochs_run).items():
        rows, _ = canvas(f, state.axes(), region, name, zmax, PLANE)
        tables.append(rows)
    tables.append(curves_data({n: state.history(n) for n in state.lanes}, state.epochs_run))
    curves_spec(list(state.lanes))
    for table in tables:
        sink = pa.BufferOutputStream()
        encoded = pa.Table.from_pandas(table)
        with pa.ipc.new_stream(sink, encoded.schema) as writer:
            writer.write_table(encoded)
