"""runherald: run-state notifications on Kafka, MLRun-compatible on the wire.

`runherald.Client` is the Python SDK (runherald.client), imported on first use: importing runherald
imports neither it nor Kafka nor faust.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runherald.client import Client

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "Client":
        from runherald.client import Client

        return Client
    raise AttributeError(f"module 'runherald' has no attribute {name!r}")


__all__ = ["Client", "__version__"]
