"""Benchmarks and fault tests of the connector running as its real, separate processes."""
