"""The standard pictures of scaling-law results, with holoviews, and their export.

Every plot function takes a scalex result Dataset (schema in `scalex.schema`) and returns a
holoviews object that renders with both the bokeh backend (interactive HTML) and the
matplotlib backend (static PNG); `save` writes both. Axis labels come from the ``long_name`` and
``units`` attributes of the variables, titles from the `Setup` recorded in the attributes.

Dimensions of a result are read as follows: ``alpha`` is the time axis, ``seed`` is averaged
(mean with a band), one sweep dimension (``over``) is overlaid with a colour map, and every other
sweep dimension becomes a slider of a `holoviews.HoloMap` (static, so it exports to HTML).

This module gathers the public names of `scalex.viz`:

* `learning_curves`, `compare` (`scalex.viz.curves`): ε_g(α), and theory over simulation;
  given a comparison `xarray.DataTree` (`scalex.compare`), every route of it overlaid
  (`scalex.viz.routes`);
* `local_exponent`, `plateau_length`, `predicted_exponent` (`scalex.viz.scaling`): the local
  exponent against β/(1+β), and measured against predicted plateau lengths;
* `order_parameters` (`scalex.viz.overlaps`): heatmaps of q^τ and r^τ, or linear mode errors;
* `overlap_curves` (`scalex.viz.overlap_curves`): student–teacher overlaps against α, the
  plateau and the specialisation;
* `escape_scaling`, `plateau_vs_split` (`scalex.viz.plateau_scaling`): measured escape times
  against M²/L with the fitted exponents of M and L, and the plateau length of split
  (near-degenerate) eigenvalues against the splitting ε;
* `save`, `inline_assets` (`scalex.viz.export`) and `report` (`scalex.viz.report`);
* `dimension`, `title` (`scalex.viz.style`) and `extend`, `sweep_dims` (`scalex.viz.series`),
  for building further plots.

Also reached as ``ds.scalex.plot.<name>(...)`` through the accessor, and
``tree.scalex.plot.compare()`` for a comparison tree.
"""


from scalex.viz.curves import compare, learning_curves
from scalex.viz.export import inline_assets, save
from scalex.viz.overlap_curves import overlap_curves
from scalex.viz.overlaps import order_parameters
from scalex.viz.plateau_scaling import escape_scaling, plateau_vs_split
from scalex.viz.report import report
from scalex.viz.scaling import local_exponent, plateau_length, predicted_exponent
from scalex.viz.series import extend, sweep_dims
from scalex.viz.style import dimension, title

__all__ = [
    "compare",
    "dimension",
    "escape_scaling",
    "extend",
    "inline_assets",
    "learning_curves",
    "local_exponent",
    "order_parameters",
    "overlap_curves",
    "plateau_length",
    "plateau_vs_split",
    "predicted_exponent",
    "report",
    "save",
    "sweep_dims",
    "title",
]
