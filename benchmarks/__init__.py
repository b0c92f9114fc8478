"""Benchmarks and their synthetic data; run as modules: python -m benchmarks.segments."""
