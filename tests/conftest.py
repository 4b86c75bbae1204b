"""Shared test configuration.

``SCALEX_TEST_SCHEDULER=synchronous`` forces single-threaded dask (useful on small CI machines).
"""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "scalex", deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.load_profile("scalex")

if os.environ.get("SCALEX_TEST_SCHEDULER"):
    import dask

    dask.config.set(scheduler=os.environ["SCALEX_TEST_SCHEDULER"])


@pytest.fixture
def rng():
    return np.random.default_rng(20250101)
