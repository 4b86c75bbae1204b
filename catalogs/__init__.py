"""The experiment catalogs shipped with scalex, as package data of ``scalex.catalogs``.

This folder is installed as the package ``scalex.catalogs`` (pyproject.toml maps it), so
`scalex.experiments.catalog.default_catalog_path` finds paper.yaml with `importlib.resources`
in a wheel and in an editable install alike. The format is described in README.md here.
"""
