"""Serving a stage's Prometheus registry on /metrics (ingest, each replay worker, score)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, start_http_server

__all__ = ["serve_metrics"]


def serve_metrics(registry: CollectorRegistry, port: int, host: str = "127.0.0.1") -> None:
    """Serve `registry` on http://`host`:`port`/metrics from a daemon thread (0.0.0.0 in a container)."""
    start_http_server(port, addr=host, registry=registry)
