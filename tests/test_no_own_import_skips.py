"""No test may skip because one of scalex's own modules fails to import: that would turn an
import bug into a skip. Optional third-party tools (chromium, ...) may still skip."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).parent
OWN_SKIP = re.compile(r"importorskip\(\s*['\"]scalex")
GUARDED_OWN_IMPORT = re.compile(
    r"try:\s*\n\s*(?:from scalex[\w.]* import|import scalex)[^\n]*\n\s*except ImportError")


def test_no_skip_on_scalex_imports():
    offenders = []
    for path in sorted(TESTS.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        if OWN_SKIP.search(text) or GUARDED_OWN_IMPORT.search(text):
            offenders.append(path.name)
    assert offenders == [], f"tests skipping on scalex's own imports: {offenders}"
