"""Export of plots: HTML that works offline, and static PNG or SVG.

`save` writes ``<stem>.html`` with the bokeh backend and all resources inline, and
``<stem>.png``/``.svg`` with the matplotlib backend (no browser needed; a PNG at print
size, at least `MIN_PNG_WIDTH` pixels wide), each atomically. In a static format a HoloMap
becomes a grid of its frames (up to six, one shared legend) or its last frame.
`inline_assets` replaces the panel stylesheet and icon URLs that a saved page still loads from
the CDN by data: URLs of the installed files, so that the page needs no network; the HTML
report uses it too.
"""

from __future__ import annotations

import base64
import contextlib
import math
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import holoviews as hv

from scalex.common.atomic import atomic_path
from scalex.viz.style import key_label, load_backends, use_backend

FORMATS = ("html", "png", "svg")

#: resolution of PNG figures: a single plot with its legend comes out about 1600 px wide
PNG_DPI = 220
#: no PNG is narrower (pixels): print size; a narrower figure is drawn at a higher resolution
MIN_PNG_WIDTH = 1200


# ----------------------------------------------------------------------------- export
def _static(obj: Any, max_frames: int = 6) -> Any:
    """A matplotlib-friendly view: a HoloMap becomes a grid of its frames (if few) or its last
    frame; HoloMaps inside a Layout become their last frame."""
    if isinstance(obj, hv.HoloMap):
        if len(obj) <= max_frames and isinstance(obj.last, hv.Overlay):
            return _frames_grid(obj)
        return obj.last
    if isinstance(obj, hv.Layout):
        items = [item.last if isinstance(item, hv.HoloMap) else item for item in obj]
        # room between panels for their titles and outside legends, no "A", "B" labels,
        # panels of different quantities keep their own ranges
        options = {"vspace": 0.35, "hspace": 0.6, "fig_size": 180, "shared_axes": False,
                   **hv.Store.lookup_options("matplotlib", obj, "plot").kwargs,
                   "sublabel_format": ""}
        return hv.Layout(items).cols(obj._max_cols).opts(backend="matplotlib", **options)
    return obj


_PANEL_CDN = re.compile(r"https://cdn\.holoviz\.org/panel/[^/\"']+/dist/([A-Za-z0-9_./-]+)"
                        r"(?:\?v=[A-Za-z0-9._-]*)?")


_CSS_URL = re.compile(r"url\((['\"]?)([^)'\"]+)\1\)")


_MIME = {".css": "text/css", ".svg": "image/svg+xml", ".png": "image/png",
         ".ico": "image/x-icon", ".woff2": "font/woff2", ".woff": "font/woff"}


def _data_url(path: Path) -> str | None:
    """``path`` as a base64 data: URL (CSS with its own relative url(...) inlined too)."""
    mime = _MIME.get(path.suffix)
    if mime is None or not path.is_file():
        return None
    if path.suffix == ".css":
        def local(match: re.Match[str]) -> str:
            target = match.group(2)
            if target.startswith(("data:", "http:", "https:", "#")):
                return match.group(0)
            inner = _data_url((path.parent / target).resolve())
            return f"url('{inner}')" if inner else match.group(0)

        payload = _CSS_URL.sub(local, path.read_text(encoding="utf-8")).encode()
    else:
        payload = path.read_bytes()
    return f"data:{mime};base64,{base64.b64encode(payload).decode()}"


def inline_assets(text: str) -> str:
    """Replace the panel stylesheet and icon URLs that a saved page still points at on the CDN
    (panel links them even with inline resources) by data: URLs of the installed files, so
    the page needs no network."""
    import panel

    dist = Path(panel.__file__).parent / "dist"
    cache: dict[str, str | None] = {}

    def replace(match: re.Match[str]) -> str:
        rel = match.group(1)
        if rel not in cache:
            cache[rel] = _data_url(dist / rel)
        return cache[rel] or match.group(0)

    return _PANEL_CDN.sub(replace, text)


def _grid_columns(n: int) -> int:
    """Columns of a grid of ``n`` panels: one row up to three, 2 × 2 for four."""
    return n if n <= 3 else 2 if n == 4 else 3


def _frames_grid(hmap: hv.HoloMap) -> hv.Layout:
    """The frames of a HoloMap of overlays side by side: the shared part of the frame titles
    goes to the top, each panel keeps its key. The frames share their legend (one entry per
    member of the overlay dim), so it is drawn once, right of the last panel of the first
    row, outside the data."""
    panels, heads = [], set()
    cols = _grid_columns(len(hmap))
    for index, (key, frame) in enumerate(hmap.data.items()):
        full = hv.Store.lookup_options("matplotlib", frame, "plot").kwargs.get("title", "")
        head, _, tail = str(full).partition(" — ")
        heads.add(head)
        label = tail or key_label([d.name for d in hmap.kdims], key)
        panels.append(frame.opts(backend="matplotlib", clone=True, title=label,
                                 show_legend=index == cols - 1, legend_position="right",
                                 fig_size=110))
    layout = hv.Layout(panels).cols(cols)
    return layout.opts(backend="matplotlib", sublabel_format="",
                       title=heads.pop() if len(heads) == 1 else "")


def save(obj: Any, path_stem: str | os.PathLike[str],
         formats: Sequence[str] = ("html", "png"), *, title_text: str | None = None,
         dpi: int = PNG_DPI) -> list[Path]:
    """Write ``obj`` as ``<path_stem>.html`` (bokeh, resources inline: works offline) and/or
    ``<path_stem>.png``/``.svg`` (matplotlib, no browser needed). Returns the written paths.

    A HoloMap keeps its sliders in HTML; in a static format it becomes a grid of its frames
    (up to six) or its last frame. The current holoviews backend is left as it was.
    """
    from bokeh.resources import INLINE

    formats = (formats,) if isinstance(formats, str) else tuple(formats)
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ValueError(f"formats: must be a non-empty selection of {FORMATS}, got {formats!r}")
    load_backends()
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        path = stem.parent / f"{stem.name}.{fmt}"
        with atomic_path(path, suffix=f".{fmt}") as tmp:
            if fmt == "html":
                with use_backend("bokeh"), _quiet_progress():
                    hv.save(obj, tmp, backend="bokeh", resources=INLINE,
                            title=title_text or stem.name)
                tmp.write_text(inline_assets(tmp.read_text(encoding="utf-8")),
                               encoding="utf-8")
            else:
                with use_backend("matplotlib"):
                    _save_static(obj, tmp, fmt, dpi)
                    _close_figures()
        written.append(path)
    return written


def _save_static(obj: Any, tmp: Path, fmt: str, dpi: int) -> None:
    """Draw ``obj`` with matplotlib into ``tmp``; a PNG narrower than `MIN_PNG_WIDTH` (a plot
    without legend, a small layout) is drawn again at the resolution that makes it so wide."""
    renderer = hv.renderer("matplotlib")
    plot = renderer.get_plot(_static(obj))
    base = str(tmp.with_suffix(""))
    renderer.instance(dpi=dpi, fig=fmt).save(plot, base, fmt=fmt)
    if fmt == "png":
        width = _png_width(tmp)
        if 0 < width < MIN_PNG_WIDTH:
            sharper = math.ceil(dpi * MIN_PNG_WIDTH / width)
            renderer.instance(dpi=sharper, fig=fmt).save(plot, base, fmt=fmt)


def _png_width(path: Path) -> int:
    head = path.read_bytes()[:24]
    return int.from_bytes(head[16:20], "big") if head[:8] == b"\x89PNG\r\n\x1a\n" else 0


@contextlib.contextmanager
def _quiet_progress() -> Iterator[None]:
    """Silence the progress bar that panel prints while it embeds the frames of a HoloMap.

    holoviews saves through panel with ``embed=True`` and no way to pass ``progress=False``;
    panel then writes a tqdm bar to ``sys.stdout`` (where it would mix with the output of
    ``scalex run``), so stdout is silenced as well as stderr.
    """
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), \
            contextlib.redirect_stderr(sink):
        yield


def _close_figures() -> None:
    """Free the matplotlib figures the renderer leaves open (a sweep exports many)."""
    import matplotlib.pyplot as plt

    plt.close("all")
