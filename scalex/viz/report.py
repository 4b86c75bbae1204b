"""One self-contained HTML report of a catalog entry: plots, tables, parameters and cost.

`report` writes a single ``report.html`` that needs no network: the bokeh and panel JavaScript is
inlined (stylesheets and icons by `scalex.viz.export.inline_assets`), and the sliders of
HoloMaps are embedded as precomputed states. Below the plots come the given tables (e.g. the
seed-mean summary), the run attributes, the `Setup` and the cost of the run (`table_html`). It
is what ``scalex run ENTRY --report`` (`scalex.experiments.runner.run_entry`) writes next to
the results.
"""

from __future__ import annotations

import datetime as _dt
import html
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from scalex.common.atomic import atomic_path
from scalex.viz.export import inline_assets
from scalex.viz.style import load_backends, use_backend

__all__ = ["report", "table_html"]

#: attrs that tell what a run cost (seconds, steps, evaluations)
COST_KEYS = re.compile(r"(wall|cost|elapsed|cpu|runtime|n_steps|nfev|n_eval|duration)", re.I)
MAX_ROWS = 500

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; }
.scalex-report h1 { font-size: 1.6em; margin: 0.3em 0; }
.scalex-report h2 { font-size: 1.25em; margin: 1.2em 0 0.4em; border-bottom: 1px solid #ddd; }
.scalex-report p { max-width: 60em; line-height: 1.4; }
table.scalex { border-collapse: collapse; font-size: 0.9em; margin: 0.3em 0 1em; }
table.scalex th, table.scalex td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
table.scalex th { background: #f3f3f3; }
table.scalex td.text, table.scalex th.text { text-align: left; }
"""


def _format(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)):
        return "nan" if not np.isfinite(value) else f"{float(value):.5g}"
    if isinstance(value, np.ndarray):
        flat = value.ravel()
        shown = ", ".join(_format(v) for v in flat[:6])
        return f"[{shown}{', ...' if flat.size > 6 else ''}] ({flat.size})" if flat.size > 1 \
            else shown
    if isinstance(value, (list, tuple)):
        return _format(np.asarray(value))
    if isinstance(value, np.generic):
        return str(value.item())
    return str(value)


def _rows_html(header: Sequence[str], rows: Sequence[Sequence[Any]], text_cols: int = 0) -> str:
    def cell(tag: str, i: int, value: Any) -> str:
        cls = ' class="text"' if i < text_cols else ""
        return f"<{tag}{cls}>{html.escape(_format(value))}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>"
                   for row in rows)
    return f'<table class="scalex"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def table_html(data: Any, max_rows: int = MAX_ROWS) -> str:
    """An HTML table of a Dataset/DataArray (one row per coordinate point), a pandas
    DataFrame, or a mapping (one row of columns, or key/value pairs for scalars)."""
    import pandas as pd

    if isinstance(data, xr.DataArray):
        data = data.to_dataset(name=data.name or "value")
    if isinstance(data, xr.Dataset):
        data = data.drop_vars([v for v in data.data_vars if data[v].dtype == object
                               and data[v].ndim > 0])
        if not data.dims:
            return table_html({name: data[name].values[()] for name in data.data_vars},
                              max_rows)
        data = data.to_dataframe().reset_index()
    if isinstance(data, Mapping):
        return _rows_html(["parameter", "value"], list(data.items()), text_cols=1)
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"tables: cannot render a {type(data).__name__} as a table")
    if not isinstance(data.index, pd.RangeIndex):  # e.g. sweep coordinates as the index
        data = data.reset_index()
    note = ""
    if len(data) > max_rows:
        note = f"<p>first {max_rows} of {len(data)} rows</p>"
        data = data.iloc[:max_rows]
    text_cols = 0
    for column in data.columns:
        if data[column].dtype != object:
            break
        text_cols += 1
    rows = data.itertuples(index=False, name=None)
    return _rows_html([str(c) for c in data.columns], list(rows), text_cols) + note


def _setup_table(ds: xr.Dataset) -> dict[str, Any]:
    """The Setup rows; a sweep's swept fields read "swept over [...]", not the base value."""
    from scalex.schema import setup_rows

    return setup_rows(ds.attrs)


def _run_table(ds: xr.Dataset) -> dict[str, Any]:
    attrs = ds.attrs
    out: dict[str, Any] = {}
    for key in ("method", "title", "source", "history"):
        if key in attrs:
            out[key] = attrs[key]
    sweep = str(attrs.get("sweep_dims", "")).split()
    for dim in sweep:
        if dim in ds.coords:
            out[f"sweep {dim}"] = np.asarray(ds[dim].values)
    if "seed" in ds.dims:
        out["seeds"] = ds.sizes["seed"]
    if "alpha" in ds.coords and ds.sizes.get("alpha", 0):
        a = np.asarray(ds["alpha"].values, dtype=float)
        out["alpha range"] = f"{a[0]:.4g} … {a[-1]:.4g} ({a.size} points)"
    if "status" in ds.data_vars:
        values, counts = np.unique(np.asarray(ds["status"].values, dtype=str).ravel(),
                                   return_counts=True)
        out["status"] = ", ".join(f"{v}: {c}" for v, c in zip(values, counts))
    return out


def _cost_table(ds: xr.Dataset | None, cost: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if ds is not None:
        out.update({k: v for k, v in ds.attrs.items() if COST_KEYS.search(k)})
        for name in ds.data_vars:
            if COST_KEYS.search(str(name)):
                out[str(name)] = ds[name].values
    out.update(cost or {})
    return out


def report(
    entry_name: str,
    ds: xr.Dataset | None,
    plots: Mapping[str, Any] | Sequence[Any],
    tables: Mapping[str, Any] | None = None,
    path: str | os.PathLike[str] = "report.html",
    *,
    description: str | None = None,
    cost: Mapping[str, Any] | None = None,
) -> Path:
    """Write a single self-contained HTML report of one entry and return its path.

    Parameters
    ----------
    entry_name : the catalog entry (the page title).
    ds : the result Dataset; its run attributes, `Setup` and cost attributes (wall time,
        steps, ...) are tabulated. ``None`` leaves those sections out.
    plots : holoviews objects by heading (or a sequence, headed by their titles), drawn with
        the bokeh backend; HoloMap sliders are embedded and work offline.
    tables : tables by heading: Datasets such as `scalex.analysis.summary` output,
        DataArrays, pandas DataFrames or mappings.
    path : the file to write (folders are created); written atomically.
    description : a paragraph under the title (e.g. the paper's caption).
    cost : extra cost figures (e.g. ``{"wall time [s]": 12.3}``), shown with those in attrs.
    """
    import panel as pn
    from bokeh.resources import INLINE

    load_backends()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not isinstance(plots, Mapping):
        plots = {_plot_title(obj, i): obj for i, obj in enumerate(plots)}

    def section(heading: str, body: str = "") -> pn.pane.HTML:
        return pn.pane.HTML(f"<style>{CSS}</style><div class='scalex-report'>"
                            f"<h2>{html.escape(heading)}</h2>{body}</div>",
                            sizing_mode="stretch_width")

    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    head = (f"<style>{CSS}</style><div class='scalex-report'>"
            f"<h1>{html.escape(entry_name)}</h1>")
    if description:
        head += f"<p>{html.escape(description)}</p>"
    head += f"<p><small>report written {stamp}</small></p></div>"
    items: list[Any] = [pn.pane.HTML(head, sizing_mode="stretch_width")]
    with use_backend("bokeh"):
        for heading, obj in plots.items():
            items.append(section(heading))
            # pn.panel, not pn.pane.HoloViews: it adds the widgets of a HoloMap
            items.append(pn.panel(obj, backend="bokeh", widget_location="right_top"))
    for heading, data in (tables or {}).items():
        items.append(section(heading, table_html(data)))
    if ds is not None:
        run = _run_table(ds)
        if run:
            items.append(section("Run", table_html(run)))
        setup = _setup_table(ds)
        if setup:
            items.append(section("Setup", table_html(setup)))
    cost_rows = _cost_table(ds, cost)
    if cost_rows:
        items.append(section("Cost", table_html(cost_rows)))
    page = pn.Column(*items, sizing_mode="stretch_width")
    with atomic_path(path, suffix=".html") as tmp:
        with use_backend("bokeh"):
            page.save(str(tmp), resources=INLINE, embed=True, title=entry_name,
                      progress=False)
        tmp.write_text(inline_assets(tmp.read_text(encoding="utf-8")), encoding="utf-8")
    return path


def _plot_title(obj: Any, index: int) -> str:
    import holoviews as hv

    options = hv.Store.lookup_options("bokeh", obj, "plot").kwargs
    text = options.get("title") or getattr(obj, "label", "") or f"plot {index + 1}"
    return str(text).split(" — ")[0]
