"""Benchmarks: ``python -m bench runtime`` (inference vs the usual stacks), ``python -m bench http``,
``python -m bench routing`` (decision quality on the policy suite) and ``python -m bench suite``
(builds that suite from the public train data)."""
