"""The experiment description: `Setup`, eigenvalue spectra, Gaussian integrals, weights, data."""
