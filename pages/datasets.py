"""Datasets page: the catalogue of registered datasets and which are available here."""
import streamlit as st

from dfkd_core import dashboard
from dfkd_core.dashboard import ui

MAX_SOURCE_PX = 300  # the source URL is long: cut, whole on hover

ui.ensure_routed()
st.title("Datasets")
st.caption(f"Built-in datasets are always available; file datasets are read from {dashboard.plain(dashboard.data_dir())} "
           "(set DFKD_DATA_DIR) and can be fetched with `python -m dfkd_core datasets --download NAME`.")
try:
    table = dashboard.catalog_table()
except dashboard.DfkdError as exc:
    st.error(dashboard.plain(exc))
else:
    ui.table(table, hide_index=True, column_config={"available": st.column_config.CheckboxColumn("available"),
                                                    "source": st.column_config.TextColumn("source", width=MAX_SOURCE_PX)})
    st.caption(f"{int(table['available'].sum())} of {len(table)} datasets available.")
