"""Run sources: the topics producers already write (``run_topics``, ``run_topic_pattern``), whose records
runherald adapts (runherald.adapters) and re-publishes to its own runs topic keyed ``"{project}/{uid}"``.

The pure part: which topics a source consumer subscribes to, what one source record becomes (the runs
topic's records, sealed as a publisher seals them, hops stamped), and what of a refused record may go
to the dead-letter topic. The consumer itself is streams.sources.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from runherald.adapters import HeadersIn, adapt, headers_of, hops_from, stamp_hops
from runherald.delivery import run_key
from runherald.events import NOT_JSON, TOO_LARGE, InvalidEvent
from runherald.sealing import seal_run
from runherald.secrets import REDACTED

__all__ = ["redacted_record", "source_records", "subscription_pattern"]


def subscription_pattern(names: Iterable[str], pattern: str, own_prefix: str) -> str | None:
    """One regular expression for the source topics: the names, and whole names matching `pattern`;
    never runherald's own topics (`own_prefix`: a runs topic read as a source would loop) nor Kafka's
    internal ones. None when there is no source."""
    alternatives = [re.escape(name) for name in names]
    if pattern:
        alternatives.append(f"(?:{pattern})")
    if not alternatives:
        return None
    exclude = "".join(f"(?!{re.escape(prefix)})" for prefix in (own_prefix, "__") if prefix)
    return f"^{exclude}(?:{'|'.join(alternatives)})$"


def source_records(
    raw: bytes | None, headers: HeadersIn, *, max_event_bytes: int, max_hops: int
) -> tuple[str, list[tuple[str, bytes]]]:
    """The adapter that recognised one source record, and the runs topic's (key, value) for each of its
    runs, in order: keyed ``"{project}/{uid}"``, secret_params sealed, ``runherald.hops`` from the
    record's X-Runherald-Hops header. InvalidEvent (Unrecognised: each adapter's reason; TooManyHops)
    when the record cannot be a run."""
    if raw is None:
        raise InvalidEvent("empty record (no value)", NOT_JSON)
    if len(raw) > max_event_bytes:
        raise InvalidEvent(f"record is {len(raw)} bytes, over the limit of {max_event_bytes}", TOO_LARGE)
    found = headers_of(headers)
    adapted = adapt(raw, found)
    runs = stamp_hops(adapted.runs, hops_from(found), max_hops)
    return adapted.adapter, [
        (run_key(run["metadata"]["project"], run["metadata"]["uid"]), orjson.dumps(seal_run(run)))
        for run in runs
    ]


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: (
                dict.fromkeys(item, REDACTED)
                if key == "secret_params" and isinstance(item, Mapping)
                else _redact(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redact(item) for item in value]
    return value


def redacted_record(raw: bytes | None) -> Any:
    """What of a refused source record the dead-letter topic may carry: its JSON with every
    ``secret_params`` value redacted, wherever it is nested (an MLRun webhook body's runs, a
    CloudEvent's data), or only its size and digest when it is not JSON."""
    if raw is None:
        return None
    try:
        return _redact(orjson.loads(raw))
    except orjson.JSONDecodeError:
        return {"bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
