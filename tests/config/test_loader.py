"""load_bootstrap: files, --config-yaml merged over them as Envoy merges, and the YAML dialect."""

from __future__ import annotations

import json
import re

import pytest
from config_helpers import EXAMPLES, HCM_PATH, base_config, dump, errors_of

from pyevent_envoy.config import (
    ConfigError,
    ConfigErrors,
    DiscoveryType,
    load_bootstrap,
    merge_config,
    parse_config_text,
)


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "envoy.yaml"
    path.write_text(dump(base_config()))
    return path


def _reasons(info):
    return [(e.path, e.reason) for e in info.value.errors]


def test_path_as_str_or_pathlike(config_file):
    assert load_bootstrap(str(config_file)) == load_bootstrap(config_file)


def test_text_only():
    assert load_bootstrap(yaml_text=dump(base_config())).cluster("app") is not None


def test_config_yaml_overrides_scalars(config_file):
    b = load_bootstrap(config_file, "admin: {address: {socket_address: {port_value: 9902}}}")
    assert (b.admin.address.address, b.admin.address.port_value) == ("127.0.0.1", 9902)


def test_config_yaml_appends_to_lists(config_file):
    b = load_bootstrap(config_file, "static_resources: {clusters: [{name: other, connect_timeout: 2s}]}")
    assert [c.name for c in b.static_resources.clusters] == ["app", "other"]
    assert b.cluster("other").connect_timeout == 2.0


def test_config_yaml_adds_new_sections(config_file):
    b = load_bootstrap(config_file, "node: {id: n1}")
    assert b.node.id == "n1"


def test_config_yaml_errors_point_into_the_merged_config(config_file):
    with pytest.raises(ConfigErrors) as info:
        load_bootstrap(config_file, "static_resources: {clusters: [{name: app}]}")
    assert _reasons(info) == [
        ("static_resources.clusters[1].name", "duplicate cluster 'app' (also static_resources.clusters[0])")
    ]


def test_config_yaml_must_be_a_mapping(config_file):
    with pytest.raises(ConfigErrors) as info:
        load_bootstrap(config_file, "- a")
    assert _reasons(info) == [("", "--config-yaml: expected a mapping (Bootstrap)")]


def test_empty_config_yaml_changes_nothing(config_file):
    assert load_bootstrap(config_file, "") == load_bootstrap(config_file)


def test_merge_config_rules():
    base = {"a": {"b": 1, "c": [1]}, "s": "x", "addr": {"socket_address": {"port_value": 1}}}
    overlay = {"a": {"c": [2], "d": True}, "s": "", "n": None, "addr": {"pipe": {"path": "/p"}}}
    merged = merge_config(base, overlay)
    assert merged == {"a": {"b": 1, "c": [1, 2], "d": True}, "s": "x", "addr": {"pipe": {"path": "/p"}}}
    assert base == {"a": {"b": 1, "c": [1]}, "s": "x", "addr": {"socket_address": {"port_value": 1}}}
    assert merge_config({"p": {"port_value": 1}}, {"p": {"named_port": "http"}}) == {"p": {"named_port": "http"}}
    assert merge_config({"x": 1}, None) == {"x": 1}
    assert merge_config([1], [2]) == [1, 2]
    assert merge_config({"x": {"y": 1}}, {"x": 5}) == {"x": 5}


def test_neither_path_nor_text():
    with pytest.raises(ConfigErrors) as info:
        load_bootstrap()
    assert "at least one of" in info.value.reason


def test_missing_file(tmp_path):
    with pytest.raises(ConfigErrors) as info:
        load_bootstrap(tmp_path / "nope.yaml")
    assert info.value.path == "" and "unable to read configuration file" in info.value.reason


def test_proto_files_are_not_supported(tmp_path):
    for name in ("envoy.pb", "envoy.pb_text"):
        path = tmp_path / name
        path.write_bytes(b"")
        with pytest.raises(ConfigErrors) as info:
            load_bootstrap(path)
        assert "not supported" in info.value.reason


def test_not_utf8(tmp_path):
    path = tmp_path / "envoy.yaml"
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigErrors) as info:
        load_bootstrap(path)
    assert "not UTF-8" in info.value.reason


def test_json_file(tmp_path):
    path = tmp_path / "envoy.json"
    path.write_text(json.dumps(base_config(), indent=2))
    assert load_bootstrap(path) == load_bootstrap(yaml_text=dump(base_config()))


def test_empty_file_is_an_empty_bootstrap(tmp_path):
    path = tmp_path / "envoy.yaml"
    path.write_text("# nothing\n")
    b = load_bootstrap(path)
    assert b.static_resources.listeners == () and b.admin is None


def test_yaml_syntax_error_names_the_source(config_file):
    with pytest.raises(ConfigErrors) as info:
        load_bootstrap(yaml_text="a: [")
    assert info.value.path == "" and info.value.reason.startswith("invalid YAML in --config-yaml:")
    config_file.write_text("a: [")
    with pytest.raises(ConfigError) as info:
        load_bootstrap(config_file)
    assert f"invalid YAML in {config_file}" in info.value.reason


@pytest.mark.parametrize(("text", "kind"), [("- a", "a list"), ("hello", "a string"), ("5", "an integer")])
def test_top_level_must_be_a_mapping(text, kind):
    with pytest.raises(ConfigErrors) as info:
        load_bootstrap(yaml_text=text)
    assert _reasons(info) == [("", f"expected a mapping (Bootstrap), got {kind}")]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("x: 2024-01-02", "2024-01-02"),  # no timestamps
        ("x: 1:30", "1:30"),  # no sexagesimal numbers
        ("x: 8_080", "8_080"),  # no digit separators
        ("x: 0b101", "0b101"),
        ("x: 0x1F90", 8080),
        ("x: 017620", 8080),
        ("x: -12", -12),
        ("x: 1.5", 1.5),
        ("x: 1e3", 1000.0),
        ("x: yes", True),
        ("x: Off", False),
        ("x: ~", None),
        ("x: '5'", "5"),
        ("x: <<", "<<"),
    ],
)
def test_yaml_scalars(text, value):
    assert parse_config_text(text) == {"x": value}


def test_merge_keys_are_not_special():
    data = parse_config_text("a: &a {x: 1}\nb:\n  <<: *a\n  y: 2\n")
    assert data["b"] == {"<<": {"x": 1}, "y": 2}
    errors = errors_of({"static_resources": {"clusters": [{"<<": {"name": "a"}, "name": "a"}]}})
    assert errors == [('static_resources.clusters[0]["<<"]', "unknown field of Cluster")]


def test_anchors_and_aliases_work():
    text = re.sub(r"( *)connect_timeout: 1s", r"\1connect_timeout: &t 1s\n\1dns_refresh_rate: *t", dump(base_config()))
    assert "*t" in text
    assert load_bootstrap(yaml_text=text).cluster("app").dns_refresh_rate == 1.0


def test_duplicate_keys_are_remembered():
    data = parse_config_text("a: 1\na: 2\nb: {c: 1, c: 1}\n")
    assert data == {"a": 2, "b": {"c": 1}}
    assert data.duplicates == ["a"] and data["b"].duplicates == ["c"]


def test_examples_directory_has_the_documented_files():
    names = {p.name for p in EXAMPLES.glob("envoy-*.yaml")}
    assert {"envoy-static.yaml", "envoy-routes.yaml", "envoy-dns.yaml"} <= names
    b = load_bootstrap(EXAMPLES / "envoy-static.yaml")
    (lst,) = b.static_resources.listeners
    assert (lst.address.address, lst.address.port_value) == ("127.0.0.1", 10000)
    (cluster,) = b.static_resources.clusters
    assert cluster.type is DiscoveryType.STATIC
    assert [(e.address.address, e.address.port_value) for e in cluster.lb_endpoints] == [("127.0.0.1", 8080)]
    assert lst.filter_chains[0].http_connection_manager.route_config.virtual_hosts[0].routes[0].route.cluster == cluster.name


def test_unknown_field_suggestion_in_nested_any():
    errors = errors_of({**base_config(), "admin": {"adress": {}}})
    assert errors == [("admin.adress", "unknown field of Admin (did you mean 'address'?)")]
    assert HCM_PATH.endswith("typed_config")
