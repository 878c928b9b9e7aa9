"""The router's configuration: route tables (Envoy's ``source/common/router``).

- :class:`RouteTable`: a compiled, immutable ``RouteConfiguration``; built
  once on the main thread, shared read-only by the workers;
  :meth:`RouteTable.route` picks the virtual host and the route of a request.
- :class:`RouteEntry`: what a matched route says: the cluster, the timeout,
  rewrites, the redirect or direct response, and the header mutations
  (:meth:`RouteEntry.finalize_request_headers`,
  :meth:`RouteEntry.finalize_response_headers`).
- :class:`FormatterContext`: what the command operators of added header
  values (``%DOWNSTREAM_REMOTE_ADDRESS%`` ...) read.

The rules, verified against Envoy 1.40, are in
:mod:`pyevent_envoy.http.router.config_impl`.
"""

from pyevent_envoy.http.router.config_impl import FormatterContext as FormatterContext
from pyevent_envoy.http.router.config_impl import RouteEntry as RouteEntry
from pyevent_envoy.http.router.config_impl import RouteTable as RouteTable

__all__ = ["FormatterContext", "RouteEntry", "RouteTable"]
