"""Command lines: sweep.py (grids of runs), paper.py (the paper's experiments),
benchmark.py (speed of one setup) and cli.py (their shared absl harness).

Library code lives in `pdns_jax` (`pdns_jax.experiments`); these stay thin.
"""
