"""Benchmarks: each prints our figure next to a peer measured in the same run, as a ratio."""
