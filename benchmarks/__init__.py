"""Benchmarks, installed as ``runherald.benchmarks``: ``runherald bench`` runs ``pipeline`` (imported lazily).

``python -m runherald.benchmarks.conditions`` times condition evaluation. Neither is imported by the
runtime; they use only runtime dependencies and the loopback peers of ``runherald.testing``.
"""
