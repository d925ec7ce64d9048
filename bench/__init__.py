"""Benchmarks of issue 5: `python -m bench [--quick] [--only N,...]`."""
