"""Physics-free numerics: arrowhead linear algebra, the secular equation, BLAS threads."""
