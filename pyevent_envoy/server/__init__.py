"""The server layer: workers now; listeners, the connection handler and the CLI build on them."""

from pyevent_envoy.server.worker import Worker as Worker
from pyevent_envoy.server.worker_impl import WorkerImpl as WorkerImpl

__all__ = ["Worker", "WorkerImpl"]
