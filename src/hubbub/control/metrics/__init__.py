"""Prometheus metrics of a node (issue 18): `NodeMetrics` (registry, histograms, lag task),
`NodeCollector` (counters read at scrape time), `metrics_router` (GET /metrics)."""

from hubbub.control.metrics.collector import NodeCollector
from hubbub.control.metrics.node_metrics import NodeMetrics

__all__ = ["NodeCollector", "NodeMetrics"]
