"""The package namespace: functions that share a name with their module stay functions."""

import subprocess
import sys


def test_function_names_survive_submodule_imports():
    # In a fresh interpreter: import the submodules first, then use the package attributes.
    code = (
        "import scalex.experiments.sweep, scalex.engines.simulate, scalex.experiments.store\n"
        "from scalex.experiments.store import open_store\n"
        "import scalex\n"
        "assert callable(scalex.sweep) and scalex.sweep.__module__ == 'scalex.experiments.sweep'\n"
        "assert callable(scalex.simulate)\n"
        "assert scalex.simulate.__module__ == 'scalex.engines.simulate'\n"
        "f = scalex.sweep\n"
        "assert scalex.sweep is f  # a second access does not turn into the module\n"
        "assert scalex.open_store is open_store\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
