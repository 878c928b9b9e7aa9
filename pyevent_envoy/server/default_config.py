"""The built-in configuration ``pyevent-envoy`` runs without ``-c``.

A listener on 127.0.0.1:10000 with the HTTP connection manager and the
router, routing everything to one STATIC cluster: the demo upstream the
command starts itself (:mod:`pyevent_envoy.server.demo_upstream`).  It is
ordinary Envoy v3 YAML, as :func:`default_config_yaml` returns it.
"""

from __future__ import annotations

__all__ = ["DEFAULT_LISTEN_PORT", "default_config_yaml"]

DEFAULT_LISTEN_PORT = 10000

_TEMPLATE = """\
static_resources:
  listeners:
  - name: default
    address:
      socket_address: {{address: 127.0.0.1, port_value: {listen_port}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          route_config:
            name: default
            virtual_hosts:
            - name: demo
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                route: {{cluster: demo_upstream}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: demo_upstream
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: demo_upstream
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{address: 127.0.0.1, port_value: {upstream_port}}}
"""


def default_config_yaml(upstream_port: int, listen_port: int = DEFAULT_LISTEN_PORT) -> str:
    """The default bootstrap, pointing at a demo upstream on ``upstream_port``."""
    return _TEMPLATE.format(listen_port=listen_port, upstream_port=upstream_port)
