"""``/config_dump``'s construction from the bootstrap tree, and ``?resource=`` selection."""

from __future__ import annotations

import copy

import pytest

from pyevent_envoy.config.loader import parse_config_text
from pyevent_envoy.server.config_dump import ConfigDumpError, build_config_dump, select_resource, timestamp

HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
YAML = f"""
node: {{id: edge}}
admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 9901}}}}}}
static_resources:
  listeners:
  - name: front
    address: {{socket_address: {{address: 127.0.0.1, port_value: 10000}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {HCM}
          stat_prefix: front
          route_config: {{name: local, virtual_hosts: []}}
  clusters:
  - name: app
    connect_timeout: 0.25s
"""


def test_dump_has_envoys_messages_in_order():
    source = parse_config_text(YAML)
    pristine = copy.deepcopy(source)
    dump = build_config_dump(source, 0.5)
    assert source == pristine
    types = [config["@type"].rsplit(".", 1)[1] for config in dump["configs"]]
    assert types == ["BootstrapConfigDump", "ClustersConfigDump", "ListenersConfigDump", "ScopedRoutesConfigDump",
                     "RoutesConfigDump", "SecretsConfigDump"]
    bootstrap = dump["configs"][0]
    assert bootstrap["last_updated"] == "1970-01-01T00:00:00.500Z"
    assert bootstrap["bootstrap"]["node"]["id"] == "edge"
    assert bootstrap["bootstrap"]["node"]["user_agent_name"] == "pyevent-envoy"
    assert bootstrap["bootstrap"]["static_resources"] == source["static_resources"]
    [cluster] = dump["configs"][1]["static_clusters"]
    assert cluster["cluster"] == {"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "app",
                                  "connect_timeout": "0.25s"}
    [listener] = dump["configs"][2]["static_listeners"]
    assert listener["listener"]["name"] == "front"
    assert listener["listener"]["@type"] == "type.googleapis.com/envoy.config.listener.v3.Listener"
    [route] = dump["configs"][4]["static_route_configs"]
    assert route["route_config"] == {"@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
                                     "name": "local", "virtual_hosts": []}
    assert dump["configs"][3] == {"@type": "type.googleapis.com/envoy.admin.v3.ScopedRoutesConfigDump"}


def test_dump_of_an_empty_bootstrap_leaves_empty_fields_out():
    dump = build_config_dump(None, 0)
    assert [sorted(config) for config in dump["configs"][1:]] == [["@type"]] * 5
    assert dump["configs"][0]["bootstrap"] == {"node": {"user_agent_name": "pyevent-envoy",
                                                        "user_agent_build_version": {"version": {"minor_number": 1}}}}


def test_resource_selects_elements_with_their_type():
    dump = build_config_dump(parse_config_text(YAML), 0)
    selected = select_resource(dump, "static_listeners")
    [element] = selected["configs"]
    assert element["@type"] == "type.googleapis.com/envoy.admin.v3.ListenersConfigDump.StaticListener"
    assert element["listener"]["name"] == "front" and "last_updated" in element
    assert select_resource(dump, "dynamic_active_clusters") == {}
    assert select_resource(dump, "static_secrets") == {}


@pytest.mark.parametrize(
    "resource, status, message",
    [
        ("bootstrap", 400, "bootstrap is not a repeated field. Use ?mask=bootstrap to get only this field"),
        ("version_info", 400, "version_info is not a repeated field. Use ?mask=version_info to get only this field"),
        ("configs", 404, "configs not found in config dump"),
        ("", 404, " not found in config dump"),
    ],
)
def test_resource_errors_are_envoys(resource, status, message):
    with pytest.raises(ConfigDumpError) as caught:
        select_resource(build_config_dump(None, 0), resource)
    assert (caught.value.status, str(caught.value)) == (status, message)


def test_timestamp_is_utc_with_milliseconds():
    assert timestamp(1_700_000_000.1234) == "2023-11-14T22:13:20.123Z"
