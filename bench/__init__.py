"""Benchmarks: `python -m bench` lists them; `python -m bench NAME` runs one.

See docs/benchmarks.md.
"""
