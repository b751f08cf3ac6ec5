"""Benchmarks that measure pbx-core side by side with its yardsticks, in one run (``pbx-core bench``)."""
