"""Command-line entry points: sweep.py (grids of runs) and paper.py (the paper's experiments)."""
