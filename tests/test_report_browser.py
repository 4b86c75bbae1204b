"""The HTML report in a real browser: headless Chromium renders it with no JavaScript error,
every plot is drawn, and nothing is fetched from the network.

A copy of the page gets a probe: a first script records errors (``error`` and
``unhandledrejection`` events, ``console.error``), a last one waits until every bokeh view has
finished rendering, then writes what it finds (bokeh models, plot titles, painted canvases,
tables, requested resources) as JSON into the DOM, which ``--dump-dom`` prints. Bokeh draws
inside shadow roots, so the probe walks them. Chromium's own log (stderr) is searched for
"Uncaught" too.

Skipped where no Chromium is installed (set ``SCALEX_CHROMIUM`` to a browser binary to choose
one). On Debian: ``apt-get install chromium``.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from test_plot import _plateau, _plateau_summary, ode_like, sim_like, sweep_LK, sweep_of

from scalex.viz import overlaps as viz_overlaps
from scalex.viz import plots as plot

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _browser() -> str | None:
    chosen = os.environ.get("SCALEX_CHROMIUM")
    if chosen:
        return chosen if shutil.which(chosen) or Path(chosen).is_file() else None
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


BROWSER = _browser()
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="no Chromium found (apt-get install chromium, or set SCALEX_CHROMIUM)"
)

PROBE_HEAD = """
window.__scalexErrors = [];
window.addEventListener("error", function (e) {
  window.__scalexErrors.push("error: " + e.message); });
window.addEventListener("unhandledrejection", function (e) {
  window.__scalexErrors.push("unhandled rejection: " + e.reason); });
(function () {
  var original = console.error;
  console.error = function () {
    window.__scalexErrors.push("console.error: " +
      Array.prototype.map.call(arguments, String).join(" "));
    return original.apply(console, arguments);
  };
})();
"""

PROBE_TAIL = """
(function () {
  function walk(root, out) {
    var els = root.querySelectorAll("*");
    for (var i = 0; i < els.length; i++) {
      out.push(els[i]);
      if (els[i].shadowRoot) walk(els[i].shadowRoot, out);
    }
    return out;
  }
  function views() { return window.Bokeh ? Object.values(window.Bokeh.index) : []; }
  function finished() {
    // panel's State root is not drawn and never reports finished
    var vs = views().filter(function (v) { return v.model.type.indexOf("State") < 0; });
    return vs.length > 0 && vs.every(function (v) { return v.has_finished(); });
  }
  function report(state) {
    var all = walk(document, []);
    var canvases = all.filter(function (e) { return e.tagName === "CANVAS"; });
    var types = {}, titles = [];
    (window.Bokeh ? window.Bokeh.documents : []).forEach(function (doc) {
      doc.all_models.forEach(function (m) {
        types[m.type] = (types[m.type] || 0) + 1;
        if (m.type === "Title" && m.text) titles.push(m.text);
      });
    });
    var result = {
      state: state,
      errors: window.__scalexErrors,
      bokeh: window.Bokeh ? window.Bokeh.version : null,
      canvases: canvases.length,
      painted: canvases.filter(function (c) {
        return c.width > 0 && c.height > 0 && c.toDataURL().length > 3000; }).length,
      types: types,
      titles: titles,
      tables: all.filter(function (e) { return e.tagName === "TABLE"; }).map(
        function (t) { return t.textContent; }),
      headings: all.filter(function (e) { return /^H[12]$/.test(e.tagName); }).map(
        function (e) { return e.textContent; }),
      resources: performance.getEntriesByType("resource").map(function (r) { return r.name; }),
    };
    var pre = document.createElement("pre");
    pre.id = "scalex-probe";
    pre.textContent = JSON.stringify(result);
    document.body.appendChild(pre);
  }
  var start = Date.now();
  function poll() {
    if (finished()) { setTimeout(function () { report("ready"); }, 300); }
    else if (Date.now() - start > 20000) { report("timeout"); }
    else { setTimeout(poll, 100); }
  }
  window.addEventListener("load", function () { setTimeout(poll, 50); });
})();
"""


def render(page: Path, workdir: Path) -> tuple[dict, str]:
    """Open ``page`` (with the probe added) in headless Chromium; return (probe, browser log)."""
    text = page.read_text(encoding="utf-8")
    text = text.replace("<head>", f"<head><script>{PROBE_HEAD}</script>", 1)
    end = text.rfind("</body>")
    assert end > 0, "page has no </body>"
    probed = workdir / f"probed-{page.name}"
    probed.write_text(text[:end] + f"<script>{PROBE_TAIL}</script>" + text[end:],
                      encoding="utf-8")
    profile = workdir / "chromium-profile"
    cmd = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}",
           "--enable-logging=stderr", "--v=0", "--window-size=1400,1000",
           "--virtual-time-budget=30000", "--dump-dom", probed.as_uri()]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    match = re.search(r'<pre id="scalex-probe">(.*?)</pre>', out.stdout, re.S)
    assert match, f"the probe did not report; browser log:\n{out.stderr[-3000:]}"
    return json.loads(html.unescape(match.group(1))), out.stderr


def uncaught(log: str) -> list[str]:
    return [line for line in log.splitlines() if "Uncaught" in line]


def check_clean(probe: dict, log: str) -> None:
    """Rendered to the end, no JavaScript error, no request leaving the machine."""
    assert probe["state"] == "ready", probe
    assert probe["errors"] == []
    assert uncaught(log) == []
    remote = [r for r in probe["resources"] if not r.startswith(("file:", "data:", "blob:"))]
    assert remote == [], "the page fetched resources from the network"


@pytest.fixture(scope="module")
def report_page(tmp_path_factory) -> tuple[Path, dict, str]:
    """A report with a HoloMap, a plain overlay, a layout of heatmaps and two tables."""
    workdir = tmp_path_factory.mktemp("report")
    sim = sweep_of(lambda L: sim_like(L=L, seeds=2), "L", [1, 4])
    sim.attrs["wall_time"] = 12.5
    ode = sweep_of(ode_like, "L", [1, 4])
    plots = {
        "Learning curves": plot.learning_curves(sim, mark_plateau=True, plateau=_plateau(sim)),
        "ODE against SGD": plot.compare(sim, ode),
        "Sweep over L and β": plot.learning_curves(sweep_LK()),
        "Order parameters": plot.order_parameters(ode.sel(L=4), alpha=[1.0, 100.0]),
        # a log axis of less than two decades: fixed 1-2-5 ticks (scalex.viz.ticks)
        "Plateau length": plot.plateau_length(_plateau_summary().sel(L=[1, 2, 4])),
    }
    summary = xr.Dataset({"plateau_length": ("L", [40.0, 12.0]),
                          "exponent": ("L", [np.nan, 0.48])}, coords={"L": [1, 4]})
    path = plot.report("fig-test entry", sim, plots, {"Summary": summary,
                                                      "Notes": {"note": "synthetic"}},
                       workdir / "out" / "report.html", description="A test caption.",
                       cost={"wall time ODE [s]": 0.7})
    probe, log = render(path, workdir)
    return path, probe, log


def test_report_renders_without_errors_or_network(report_page):
    path, probe, log = report_page
    check_clean(probe, log)
    assert probe["bokeh"]
    assert path.stat().st_size < 30_000_000


def test_report_draws_every_plot(report_page):
    _, probe, _ = report_page
    figures = probe["types"].get("Figure", 0)
    # learning curves, comparison, sweep frame, plateau length + groups × (q, r) heatmaps
    n_heatmaps = 2 * len(viz_overlaps._pick_groups(sweep_of(ode_like, "L", [1, 4]).sel(L=4), None))
    assert figures == 4 + n_heatmaps
    assert probe["painted"] >= figures
    titles = " | ".join(probe["titles"])
    assert "SGD simulation" in titles and "ODE vs SGD simulation" in titles
    assert "q^τ, τ=1" in titles and "r^τ, τ=1" in titles
    # the HoloMaps came with their sliders
    assert probe["types"].get("Slider", 0) >= 2


def test_report_has_tables_and_parameters(report_page):
    _, probe, _ = report_page
    headings = probe["headings"]
    assert headings[0] == "fig-test entry"
    for heading in ("Learning curves", "ODE against SGD", "Order parameters", "Plateau length",
                    "Summary", "Notes", "Run", "Setup", "Cost"):
        assert heading in headings
    tables = " ".join(probe["tables"])
    assert "plateau_length" in tables and "0.48" in tables
    assert "sigma_J" in tables and "0.01" in tables  # Setup parameters
    assert "wall_time" in tables and "12.5" in tables and "wall time ODE [s]" in tables


def test_plot_save_html_renders(tmp_path):
    hmap = plot.learning_curves(
        sweep_of(ode_like, "eta", [0.05, 0.1]).expand_dims(K=[2, 3]).assign_attrs(
            sweep_dims="K eta"), over="eta")
    (path,) = plot.save(hmap, tmp_path / "curves", formats="html")
    probe, log = render(path, tmp_path)
    check_clean(probe, log)
    assert probe["types"].get("Figure") == 1 and probe["types"].get("Slider") == 1
    assert probe["painted"] >= 1


def test_probe_catches_errors_and_remote_requests(tmp_path):
    """The check can fail: a broken script and a remote stylesheet are both reported."""
    (path,) = plot.save(plot.learning_curves(ode_like()), tmp_path / "ok", formats="html")
    text = path.read_text(encoding="utf-8")
    broken = tmp_path / "broken.html"
    end = text.rfind("</body>")
    text = text[:end] + "<script>undefinedFunction();</script>" + text[end:]
    remote = '<link rel="stylesheet" href="http://127.0.0.1:9/x.css">'
    broken.write_text(text.replace("<head>", "<head>" + remote, 1), encoding="utf-8")
    probe, log = render(broken, tmp_path)
    with pytest.raises(AssertionError):
        check_clean(probe, log)
    assert any("undefinedFunction" in e for e in probe["errors"]) or uncaught(log)
    assert any(r.startswith("http://127.0.0.1:9") for r in probe["resources"])
