"""Benchmarks: ``python -m bench runtime`` (inference vs the usual stacks) and ``python -m bench http``."""
