"""The admin's ``/config_dump``: the loaded configuration in Envoy's ``ConfigDump`` shape.

Envoy answers with one ``envoy.admin.v3.*ConfigDump`` message per config
tracker, in this order, and so does pyevent-envoy::

    {"configs": [
      {"@type": ".../envoy.admin.v3.BootstrapConfigDump", "bootstrap": {...}, "last_updated": ...},
      {"@type": ".../envoy.admin.v3.ClustersConfigDump", "static_clusters": [{"cluster": {...}, "last_updated": ...}]},
      {"@type": ".../envoy.admin.v3.ListenersConfigDump", "static_listeners": [{"listener": {...}, "last_updated": ...}]},
      {"@type": ".../envoy.admin.v3.ScopedRoutesConfigDump"},
      {"@type": ".../envoy.admin.v3.RoutesConfigDump", "static_route_configs": [{"route_config": {...}, ...}]},
      {"@type": ".../envoy.admin.v3.SecretsConfigDump"}]}

What differs from Envoy: Envoy prints each resource as its proto message in
canonical JSON (durations normalized, ``0.25s`` as ``"0.250s"``; 64-bit
integers as strings; camelCase keys as snake_case; defaults dropped), and
fills ``bootstrap.node`` with its build and extension list.  Without the
proto schemas, pyevent-envoy prints the tree as the configuration wrote it
(the parsed YAML), with ``@type`` added where Envoy wraps a resource in an
``Any``, and ``node.user_agent_name`` / ``user_agent_build_version`` set to
its own.  For configurations written in canonical form, the two agree.

``?resource=<field>`` is supported as Envoy supports it (every element of
that repeated field, each with its element ``@type``); ``?mask=``,
``?name_regex=`` and ``?include_eds`` are refused with 400 (a FieldMask is
only right with the schemas).
"""

from __future__ import annotations

import base64
import copy
import datetime
from typing import Any, Mapping, Optional

from pyevent_envoy import __version__

__all__ = ["ConfigDumpError", "build_config_dump", "select_resource", "timestamp"]

_TYPE_PREFIX = "type.googleapis.com/"
_ADMIN = _TYPE_PREFIX + "envoy.admin.v3."
BOOTSTRAP_DUMP = _ADMIN + "BootstrapConfigDump"
CLUSTERS_DUMP = _ADMIN + "ClustersConfigDump"
LISTENERS_DUMP = _ADMIN + "ListenersConfigDump"
SCOPED_ROUTES_DUMP = _ADMIN + "ScopedRoutesConfigDump"
ROUTES_DUMP = _ADMIN + "RoutesConfigDump"
SECRETS_DUMP = _ADMIN + "SecretsConfigDump"

_CLUSTER = _TYPE_PREFIX + "envoy.config.cluster.v3.Cluster"
_LISTENER = _TYPE_PREFIX + "envoy.config.listener.v3.Listener"
_ROUTE_CONFIGURATION = _TYPE_PREFIX + "envoy.config.route.v3.RouteConfiguration"
_HCM = "envoy.filters.network.http_connection_manager"

#: Per dump message, in Envoy's order: its repeated fields with their element
#: message's name, and its other fields (for ``?resource=`` answers).
_FIELDS: tuple[tuple[str, dict[str, str], tuple[str, ...]], ...] = (
    (BOOTSTRAP_DUMP, {}, ("bootstrap", "last_updated")),
    (
        CLUSTERS_DUMP,
        {"static_clusters": "StaticCluster", "dynamic_active_clusters": "DynamicCluster",
         "dynamic_warming_clusters": "DynamicCluster"},
        ("version_info",),
    ),
    (LISTENERS_DUMP, {"static_listeners": "StaticListener", "dynamic_listeners": "DynamicListener"}, ("version_info",)),
    (
        SCOPED_ROUTES_DUMP,
        {"inline_scoped_route_configs": "InlineScopedRouteConfigs",
         "dynamic_scoped_route_configs": "DynamicScopedRouteConfigs"},
        (),
    ),
    (ROUTES_DUMP, {"static_route_configs": "StaticRouteConfig", "dynamic_route_configs": "DynamicRouteConfig"}, ()),
    (
        SECRETS_DUMP,
        {"static_secrets": "StaticSecret", "dynamic_active_secrets": "DynamicSecret",
         "dynamic_warming_secrets": "DynamicSecret"},
        (),
    ),
)


class ConfigDumpError(ValueError):
    """A ``/config_dump`` query that cannot be answered; ``status`` is the HTTP status Envoy gives."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def timestamp(epoch_seconds: float) -> str:
    """Envoy's ``last_updated`` form: UTC, milliseconds, ``Z`` (``2026-01-02T03:04:05.678Z``)."""
    moment = datetime.datetime.fromtimestamp(epoch_seconds, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _items(tree: Any, key: str) -> list:
    value = tree.get(key) if isinstance(tree, Mapping) else None
    return list(value) if isinstance(value, list) else []


def _typed(type_url: str, resource: Any) -> dict:
    return {"@type": type_url, **(resource if isinstance(resource, Mapping) else {})}


def _node(node: Any) -> dict:
    major, minor, patch = (int(part) for part in (__version__.split(".") + ["0", "0"])[:3])
    version = {key: value for key, value in (("major_number", major), ("minor_number", minor), ("patch", patch)) if value}
    node = dict(node) if isinstance(node, Mapping) else {}
    node["user_agent_name"] = "pyevent-envoy"
    node["user_agent_build_version"] = {"version": version}
    return node


def _route_configs(listeners: list) -> list:
    """Each HTTP connection manager's inline ``route_config``, listener by listener."""
    out = []
    for listener in listeners:
        for chain in _items(listener, "filter_chains"):
            for network_filter in _items(chain, "filters"):
                if not isinstance(network_filter, Mapping) or network_filter.get("name") != _HCM:
                    continue
                hcm = network_filter.get("typed_config")
                if isinstance(hcm, Mapping) and isinstance(hcm.get("route_config"), Mapping):
                    out.append(hcm["route_config"])
    return out


#: The TLS fields Envoy marks sensitive: their values are redacted in the dump, as Envoy's are.
_SENSITIVE = frozenset(("private_key", "privateKey", "password"))
_REDACTED = "[redacted]"
_REDACTED_BYTES = base64.b64encode(_REDACTED.encode()).decode()


def _redact(tree: Any, sensitive: bool = False) -> Any:
    """``tree`` with every value under a sensitive field replaced (in place), as Envoy's ``MessageUtil::redact``."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            if sensitive and isinstance(value, str):
                tree[key] = _REDACTED_BYTES if key in ("inline_bytes", "inlineBytes") else _REDACTED
            else:
                tree[key] = _redact(value, sensitive or key in _SENSITIVE)
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            tree[index] = _redact(value, sensitive)
    elif sensitive and isinstance(tree, str):
        return _REDACTED
    return tree


def build_config_dump(source: Optional[Mapping], loaded_at: float) -> dict:
    """The whole dump of the bootstrap tree ``source`` (see the module docstring), loaded at ``loaded_at`` (epoch s).

    ``source`` is not modified.  Empty repeated fields are left out, as
    proto JSON leaves them out.
    """
    tree: dict = _redact(copy.deepcopy(dict(source))) if isinstance(source, Mapping) else {}
    when = timestamp(loaded_at)
    tree["node"] = _node(tree.get("node"))
    static = tree.get("static_resources")
    clusters = _items(static, "clusters")
    listeners = _items(static, "listeners")
    routes = _route_configs(listeners)

    def dump(type_url: str, field: str, entries: list) -> dict:
        return {"@type": type_url, **({field: entries} if entries else {})}

    return {
        "configs": [
            {"@type": BOOTSTRAP_DUMP, "bootstrap": tree, "last_updated": when},
            dump(CLUSTERS_DUMP, "static_clusters", [{"cluster": _typed(_CLUSTER, c), "last_updated": when} for c in clusters]),
            dump(
                LISTENERS_DUMP,
                "static_listeners",
                [{"listener": _typed(_LISTENER, listener), "last_updated": when} for listener in listeners],
            ),
            {"@type": SCOPED_ROUTES_DUMP},
            dump(
                ROUTES_DUMP,
                "static_route_configs",
                [{"route_config": _typed(_ROUTE_CONFIGURATION, r), "last_updated": when} for r in routes],
            ),
            {"@type": SECRETS_DUMP},
        ]
    }


def select_resource(dump: Mapping, resource: str) -> dict:
    """Envoy's ``?resource=``: every element of the first dump message's repeated field ``resource``.

    Each element gets its message's ``@type``
    (``...ClustersConfigDump.StaticCluster``); no element gives ``{}``.

    Raises:
        ConfigDumpError: 400 when ``resource`` names a field that is not
            repeated, 404 when no dump message has it (Envoy's answers).
    """
    by_type = {config["@type"]: config for config in dump["configs"]}
    for type_url, repeated, singular in _FIELDS:
        if resource in repeated:
            elements = by_type.get(type_url, {}).get(resource, [])
            element_type = f"{type_url}.{repeated[resource]}"
            return {"configs": [{"@type": element_type, **element} for element in elements]} if elements else {}
        if resource in singular:
            raise ConfigDumpError(400, f"{resource} is not a repeated field. Use ?mask={resource} to get only this field")
    raise ConfigDumpError(404, f"{resource} not found in config dump")
