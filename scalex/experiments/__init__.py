"""Parameter sweeps, the resumable result store, and declarative experiment catalogs."""
