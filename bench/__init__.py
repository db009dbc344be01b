"""Benchmark scripts (run each as ``python bench/NAME.py``; see the README's Benchmarks section)."""
