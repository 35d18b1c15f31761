"""Finished spans as JSON lines, where no tracing backend runs; and `make trace`, which prints one trace as a tree.

Every process of a stage appends to one file (TRACE_FILE): each export is a single write() of whole
lines to a file opened with O_APPEND, so lines of two processes never interleave.

`python -m <stage>.shared.spans ID [--file PATH]`: ID is a trace id (32 hex digits) or a request id
(the X-Request-ID of a response). Exit codes: 0 printed, 1 not found.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .settings import DEFAULT_TRACE_FILE as DEFAULT_FILE

REQUEST_ID = "request.id"  # the attribute of the producer's server span that holds X-Request-ID


def record(span: ReadableSpan) -> dict[str, Any]:
    """One span as a flat JSON object: ids in hex, times in ns since the epoch."""
    context, parent = span.context, span.parent
    return {
        "trace_id": format(context.trace_id, "032x"), "span_id": format(context.span_id, "016x"),
        "parent_span_id": format(parent.span_id, "016x") if parent else None,
        "name": span.name, "kind": span.kind.name, "service": span.resource.attributes.get("service.name"),
        "start_ns": span.start_time, "end_ns": span.end_time, "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
        "links": [{"trace_id": format(link.context.trace_id, "032x"), "span_id": format(link.context.span_id, "016x")}
                  for link in span.links],
    }


class SpanFile(SpanExporter):
    """A span exporter that appends one JSON line per finished span to `path`."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._fd is None:
            return SpanExportResult.FAILURE
        lines = "".join(json.dumps(record(span), default=str) + "\n" for span in spans)
        os.write(self._fd, lines.encode("utf-8"))
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def read(path: Path) -> Iterator[dict[str, Any]]:
    """Every span of the file; a line cut short by a crash is skipped."""
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            try:
                yield json.loads(line)
            except ValueError:
                continue


def find_traces(spans: list[dict[str, Any]], wanted: str) -> list[str]:
    """The ids of the traces `wanted` names: a trace id, or a request id one of their spans holds."""
    found = [s["trace_id"] for s in sorted(spans, key=lambda s: s["start_ns"])
             if wanted in (s["trace_id"], s["attributes"].get(REQUEST_ID))]
    return list(dict.fromkeys(found))


def linked_to(spans: list[dict[str, Any]], trace_id: str) -> list[str]:
    """The other traces with a span that links into `trace_id`: the consumer's batches that landed its messages."""
    found = [s["trace_id"] for s in sorted(spans, key=lambda s: s["start_ns"])
             if s["trace_id"] != trace_id and any(link["trace_id"] == trace_id for link in s.get("links", []))]
    return list(dict.fromkeys(found))


def tree(spans: list[dict[str, Any]], indent: int = 0) -> list[str]:
    """The spans as an indented tree, each with its service and duration; children in start order."""
    ids = {s["span_id"] for s in spans}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in sorted(spans, key=lambda s: s["start_ns"]):
        # A parent not in the file (a client's own span, or one not yet written) makes the span a root here.
        children.setdefault(span["parent_span_id"] if span["parent_span_id"] in ids else None, []).append(span)
    first = min(s["start_ns"] for s in spans)
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for span in children.get(parent, []):
            offset_ms = (span["start_ns"] - first) / 1e6
            duration_ms = (span["end_ns"] - span["start_ns"]) / 1e6
            status = "" if span["status"] == "UNSET" else f"  [{span['status']}]"
            lines.append(f"{'  ' * (depth + indent)}{span['name']}  ({span['service']}, {span['kind'].lower()})  "
                         f"+{offset_ms:.1f} ms  {duration_ms:.1f} ms{status}")
            walk(span["span_id"], depth + 1)

    walk(None, 0)
    return lines


def main(argv: list[str] | None = None) -> int:
    tool = argparse.ArgumentParser(prog=f"python -m {__name__}", description=__doc__.splitlines()[0])
    tool.add_argument("id", help="a trace id (32 hex digits) or a request id (X-Request-ID)")
    tool.add_argument("--file", type=Path, default=Path(os.environ.get("TRACE_FILE") or DEFAULT_FILE),
                      help=f"the span file (default: TRACE_FILE, else {DEFAULT_FILE})")
    args = tool.parse_args(argv)
    if not args.file.is_file():
        print(f"error: no span file at {args.file}; start the stage (`make stage<N>`) and send a request",
              file=sys.stderr)
        return 1
    spans = list(read(args.file))
    wanted = args.id.strip().lower() if len(args.id.strip()) == 32 else args.id
    traces = find_traces(spans, wanted)
    if not traces:
        print(f"error: no trace {args.id} in {args.file} (not sampled, or not finished yet?)", file=sys.stderr)
        return 1
    for trace_id in traces:
        own = [s for s in spans if s["trace_id"] == trace_id]
        print(f"trace {trace_id}: {len(own)} spans")
        print("\n".join(tree(own)))
        for other in linked_to(spans, trace_id):  # one batch lands many traces' messages: its own trace, linked
            print(f"  linked: trace {other}, a consumer batch that landed a message of this one")
            print("\n".join(tree([s for s in spans if s["trace_id"] == other], indent=2)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
