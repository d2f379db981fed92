"""runherald: run-state notifications on Kafka, MLRun-compatible on the wire."""

__version__ = "0.1.0"
