"""The standard pictures of scaling-law results, with holoviews, and their export.

Every function takes a scalex result Dataset (schema in `scalex.schema`) and returns a
holoviews object that renders with both the bokeh backend (interactive HTML) and the
matplotlib backend (static PNG); `save` writes both. Axis labels come from the ``long_name`` and
``units`` attributes of the variables, titles from the `Setup` recorded in the attributes.

Dimensions of a result are read as follows: ``alpha`` is the time axis, ``seed`` is averaged
(mean with a band), one sweep dimension (``over``) is overlaid with a colour map, and every other
sweep dimension becomes a slider of a `holoviews.HoloMap` (static, so it exports to HTML).

Also reached as ``ds.scalex.plot.<name>(...)`` through the accessor.
"""


from scalex.viz.curves import compare, learning_curves
from scalex.viz.export import inline_assets, save
from scalex.viz.overlaps import order_parameters
from scalex.viz.report import report
from scalex.viz.scaling import local_exponent, plateau_length, predicted_exponent
from scalex.viz.series import extend, sweep_dims
from scalex.viz.style import dimension, title

__all__ = [
    "compare",
    "dimension",
    "extend",
    "inline_assets",
    "learning_curves",
    "local_exponent",
    "order_parameters",
    "plateau_length",
    "predicted_exponent",
    "report",
    "save",
    "sweep_dims",
    "title",
]
