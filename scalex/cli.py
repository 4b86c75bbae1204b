"""Command-line interface (placeholder until the sweep layer lands)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    import scalex

    setup = scalex.Setup()
    ds = scalex.initial_overlaps(setup, 0)
    print(setup)
    print(f"eg(alpha=0) = {float(ds.eg[0]):.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
