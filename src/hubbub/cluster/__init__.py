"""Scale-out: nodes (one per worker process) joined over Redis, sources relayed origin → edge.

Above control in the layering: control defines the `Coordinator` hooks, this package
implements them; `hubbub serve --redis URL` and `--workers N` wire it in.
"""

from hubbub.cluster.config import ClusterConfig
from hubbub.cluster.coordinator import ClusterCoordinator

__all__ = ["ClusterConfig", "ClusterCoordinator"]
