"""Serving a stage's Prometheus registry on /metrics (ingest, each replay worker, score)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, start_http_server

from shadowlab.errors import ConfigError

__all__ = ["serve_metrics"]


def serve_metrics(registry: CollectorRegistry, port: int, host: str = "127.0.0.1") -> None:
    """Serve `registry` on http://`host`:`port`/metrics from a daemon thread (0.0.0.0 in a container).

    A port out of range, in use, or a host that is not this machine's is one `ConfigError` (exit 2)."""
    if not 0 < port < 65536:
        raise ConfigError(f"--metrics-port: expected a port from 1 to 65535, found {port}")
    try:
        start_http_server(port, addr=host, registry=registry)
    except (OSError, OverflowError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(f"--metrics-port {port}: cannot listen on {host}:{port}: {reason}") from None
