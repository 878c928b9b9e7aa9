"""RouteTable (pyevent_envoy.http.router): virtual hosts, routes, rewrites, redirects, header mutations.

The unit tests pin each rule with the behaviour Envoy 1.40 showed; the
differential tests at the end run one YAML under the ``envoy`` binary and
under :class:`RouteTable` and compare, request by request, what each picked
(direct-response bodies name the route), the redirect Locations, the
response headers added, and (through an echoing upstream) the request
headers, path and host the upstream receives.  They are skipped when
``envoy`` is not on PATH.
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import random
import shutil
import socket
import subprocess
import threading
import time
from typing import Any, Optional

import pytest

from pyevent_envoy.config import RouteConfiguration, load_bootstrap
from pyevent_envoy.config.bootstrap import (
    ClusterWeight,
    DirectResponseAction,
    HeaderMatcher,
    Route,
    RouteAction,
    RouteMatch,
    VirtualHost,
)
from pyevent_envoy.http import HeaderMap
from pyevent_envoy.http.router import FormatterContext, RouteEntry, RouteTable
from pyevent_envoy.network.address import Address

pytestmark = pytest.mark.timeout(60)

HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"


# --------------------------------------------------------------------------------------------
# Helpers.


def listener(name: str, port: int, route_config: dict) -> dict:
    return {
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": HCM_TYPE,
                            "stat_prefix": name,
                            "route_config": route_config,
                            "http_filters": [
                                {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}}
                            ],
                        },
                    }
                ]
            }
        ],
    }


def bootstrap_text(listeners: list[dict], clusters: Optional[list[dict]] = None) -> str:
    # JSON is YAML: Envoy and load_bootstrap read the same text.
    return json.dumps({"static_resources": {"listeners": listeners, "clusters": clusters or []}}, indent=1)


def route_config_of(text: str, listener_name: str) -> RouteConfiguration:
    bootstrap = load_bootstrap(yaml_text=text)
    return bootstrap.listener(listener_name).filter_chains[0].http_connection_manager.route_config


def table(route_config: dict, clusters: Optional[list[str]] = None) -> RouteTable:
    cl = [cluster(name, 1) for name in (clusters or [])]
    return RouteTable(route_config_of(bootstrap_text([listener("l", 10000, route_config)], cl), "l"))


def cluster(name: str, port: int) -> dict:
    return {
        "name": name,
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}
            ],
        },
    }


def dr(name: str, match: dict, status: int = 200, **extra: Any) -> dict:
    """A route answering a direct response whose body is the route's name."""
    r = {"name": name, "match": match, "direct_response": {"status": status, "body": {"inline_string": name}}}
    r.update(extra)
    return r


def vhost(name: str, domains: list[str], routes: list[dict], **extra: Any) -> dict:
    v = {"name": name, "domains": domains, "routes": routes}
    v.update(extra)
    return v


def sm(name: str, ignore_case: bool = False, **match: str) -> dict:
    """A header matcher with a ``string_match`` (``sm("x-a", exact="v")``)."""
    string_match: dict = dict(match)
    if ignore_case:
        string_match["ignore_case"] = True
    return {"name": name, "string_match": string_match}


def hv(key: str, value: str, action: Optional[str] = None, keep_empty: bool = False) -> dict:
    o: dict = {"header": {"key": key, "value": value}}
    if action:
        o["append_action"] = action
    if keep_empty:
        o["keep_empty_value"] = True
    return o


def request(
    host: Optional[str], path: str, headers: list = (), method: str = "GET", xfp: Optional[str] = None
) -> HeaderMap:
    """A request map as the codec and Envoy's connection manager leave it before routing.

    ``x-forwarded-proto`` is kept if the client sent one, else set to
    ``http``; ``:scheme`` is the forwarded proto when it is http or https
    (lowercased), else ``http``.
    """
    hm = HeaderMap([(":method", method), (":path", path)])
    if host is not None:
        hm.add(":authority", host)
    for k, v in headers:
        hm.add(k, v)
    if xfp is not None:
        hm.add("x-forwarded-proto", xfp)
    proto = hm.get("x-forwarded-proto")
    if proto is None:
        hm.add("x-forwarded-proto", "http")
        proto = "http"
    hm.add(":scheme", proto.lower() if proto.lower() in ("http", "https") else "http")
    return hm


def body_of(entry: Optional[RouteEntry]) -> Optional[str]:
    return None if entry is None else entry.response_body.decode()


# --------------------------------------------------------------------------------------------
# Virtual hosts.

HOSTS_CONFIG = {
    "virtual_hosts": [
        vhost("exact", ["example.com"], [dr("exact", {"prefix": "/"})]),
        vhost("exact-port", ["example.com:8080", "Mixed.Case.COM"], [dr("exact-port", {"prefix": "/"})]),
        vhost("suffix-long", ["*-bar.baz.com"], [dr("suffix-long", {"prefix": "/"})]),
        vhost("suffix", ["*.baz.com"], [dr("suffix", {"prefix": "/"})]),
        vhost("suffix-nodot", ["*az.com"], [dr("suffix-nodot", {"prefix": "/"})]),
        vhost("prefix", ["foo.*"], [dr("prefix", {"prefix": "/"})]),
        vhost("prefix-long", ["foo.bar.*"], [dr("prefix-long", {"prefix": "/"})]),
        vhost("both", ["*.both.com", "www.both.*"], [dr("both", {"prefix": "/"})]),
        vhost("default", ["*"], [dr("default", {"prefix": "/"})]),
    ]
}

# Verified with Envoy 1.40 (and re-checked by the differential test below).
HOST_CASES = [
    ("example.com", "exact"),
    ("EXAMPLE.com", "exact"),
    ("example.com:80", "default"),  # the port is part of the name: no match for "example.com"
    ("example.com:8080", "exact-port"),
    ("Example.Com:8080", "exact-port"),
    ("mixed.case.com", "exact-port"),  # configured domains are lowercased
    ("a.baz.com", "suffix"),
    ("foo-bar.baz.com", "suffix-long"),  # the longest suffix wins
    ("-bar.baz.com", "suffix"),  # "*-bar.baz.com" needs one more character
    (".baz.com", "suffix-nodot"),  # "*.baz.com" needs one character before ".baz.com"
    ("baz.com", "suffix-nodot"),
    ("az.com", "default"),
    ("a.baz.com:80", "default"),  # a port defeats suffix wildcards...
    ("foo.com:80", "prefix"),  # ...but not prefix wildcards
    ("foo.", "default"),
    ("foo.x", "prefix"),
    ("foo.bar.x", "prefix-long"),  # the longest prefix wins
    ("foo.bar.", "prefix"),
    ("FOO.COM", "prefix"),
    ("x.both.com", "both"),
    ("www.both.com", "both"),  # a suffix wildcard before a prefix wildcard (same vhost here)
    ("other", "default"),
    ("", "default"),
    ("example.com.", "default"),
    ("[::1]:80", "default"),
]


@pytest.mark.parametrize("authority,expected", HOST_CASES)
def test_virtual_host_selection(authority: str, expected: str) -> None:
    t = table(HOSTS_CONFIG)
    assert body_of(t.route(request(authority, "/"))) == expected
    assert t.find_virtual_host(request(authority, "/")).name == expected


def test_exact_beats_suffix_beats_prefix_beats_default() -> None:
    t = table(
        {
            "virtual_hosts": [
                vhost("star", ["*"], [dr("star", {"prefix": "/"})]),
                vhost("pre", ["www.example.*"], [dr("pre", {"prefix": "/"})]),
                vhost("suf", ["*.example.com"], [dr("suf", {"prefix": "/"})]),
                vhost("exact", ["www.example.com"], [dr("exact", {"prefix": "/"})]),
            ]
        }
    )
    assert body_of(t.route(request("www.example.com", "/"))) == "exact"
    assert body_of(t.route(request("api.example.com", "/"))) == "suf"
    assert body_of(t.route(request("www.example.org", "/"))) == "pre"
    assert body_of(t.route(request("elsewhere", "/"))) == "star"
    # A shorter suffix still beats a longer prefix: suffixes are all tried first.
    t2 = table(
        {
            "virtual_hosts": [
                vhost("pre", ["www.example.co*"], [dr("pre", {"prefix": "/"})]),
                vhost("suf", ["*.com"], [dr("suf", {"prefix": "/"})]),
            ]
        }
    )
    assert body_of(t2.route(request("www.example.com", "/"))) == "suf"


def test_no_default_virtual_host_means_no_route() -> None:
    t = table({"virtual_hosts": [vhost("only", ["only.example"], [dr("only", {"prefix": "/"})])]})
    assert body_of(t.route(request("only.example", "/"))) == "only"
    assert t.route(request("other.example", "/")) is None
    assert t.route(request(None, "/")) is None
    assert t.find_virtual_host(request("other.example", "/")) is None


def test_only_a_default_virtual_host_needs_no_authority() -> None:
    t = table({"virtual_hosts": [vhost("any", ["*"], [dr("any", {"prefix": "/"})])]})
    assert body_of(t.route(request(None, "/"))) == "any"
    assert body_of(t.route(request("whatever:1", "/"))) == "any"


def test_empty_route_config_routes_nothing() -> None:
    t = RouteTable(RouteConfiguration())
    assert t.route(request("a", "/")) is None


def test_plain_host_field_is_read_without_authority() -> None:
    t = table(HOSTS_CONFIG)
    hm = HeaderMap([(":method", "GET"), (":path", "/"), ("Host", "example.com")])
    assert body_of(t.route(hm)) == "exact"


def test_hand_built_duplicate_wildcard_is_rejected() -> None:
    vh = VirtualHost(name="a", domains=("*",), routes=())
    vh2 = VirtualHost(name="b", domains=("*",), routes=())
    with pytest.raises(ValueError, match=r"\*"):
        RouteTable(RouteConfiguration(virtual_hosts=(vh, vh2)))
    with pytest.raises(ValueError, match="duplicate"):
        RouteTable(RouteConfiguration(virtual_hosts=(VirtualHost(name="c", domains=("A.com", "a.COM")),)))


# --------------------------------------------------------------------------------------------
# Routes.

ROUTES_CONFIG = {
    "virtual_hosts": [
        vhost(
            "v",
            ["*"],
            [
                dr("path", {"path": "/exact"}),
                dr("path-ci", {"path": "/ExactCI", "case_sensitive": False}),
                dr("regex", {"safe_regex": {"regex": "/rx/[a-z]+"}}),
                dr("regex-ci", {"safe_regex": {"regex": "/RXCI/[a-z]+"}, "case_sensitive": False}),
                dr("prefix-ci", {"prefix": "/CI/", "case_sensitive": False}),
                dr("prefix-q", {"prefix": "/q?"}),
                dr("first", {"prefix": "/first"}),
                dr("second", {"prefix": "/first/second"}),
                dr("utf8", {"prefix": "/caf\u00e9"}),
                dr("catch-all", {"prefix": ""}),
            ],
        )
    ]
}


@pytest.mark.parametrize(
    "path,expected",
    [
        ("/exact", "path"),
        ("/exact?x=1", "path"),  # the query string is not part of the path
        ("/exact#frag", "path"),  # nor the fragment
        ("/exact/", "catch-all"),
        ("/EXACT", "catch-all"),
        ("/exactci", "path-ci"),
        ("/EXACTCI?q", "path-ci"),
        ("/rx/abc", "regex"),
        ("/rx/abc?x=1", "regex"),
        ("/rx/ABC", "catch-all"),
        ("/rx/abc/", "catch-all"),  # a full match, not a search
        ("/RXCI/abc", "regex-ci"),
        ("/rxci/abc", "catch-all"),  # case_sensitive does not apply to safe_regex
        ("/ci/x", "prefix-ci"),
        ("/Ci/x", "prefix-ci"),
        ("/q?x", "catch-all"),  # a prefix with '?' never matches
        ("/first/second", "first"),  # first match wins
        ("/caf\u00c3\u00a9/x", "utf8"),  # configuration strings compare as UTF-8 bytes
        ("", "catch-all"),
    ],
)
def test_route_matching(path: str, expected: str) -> None:
    assert body_of(table(ROUTES_CONFIG).route(request("h", path))) == expected


def test_no_path_and_no_match_give_none() -> None:
    t = table({"virtual_hosts": [vhost("v", ["*"], [dr("a", {"path": "/a"})])]})
    assert t.route(request("h", "/b")) is None
    hm = HeaderMap([(":method", "CONNECT"), (":authority", "h:443")])
    assert t.route(hm) is None


def test_route_returns_the_shared_precompiled_entry() -> None:
    t = table(ROUTES_CONFIG)
    a = t.route(request("h", "/exact"))
    b = t.route(request("other", "/exact?z"))
    assert a is b
    assert a.route.name == "path" and a.virtual_host.name == "v" and a.route_name == "path"
    assert a.matches(request("h", "/exact?q")) and not a.matches(request("h", "/nope"))
    with pytest.raises(AttributeError):
        a.cluster = "x"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del a.timeout


# --------------------------------------------------------------------------------------------
# Header matchers.


def header_table(*matchers: dict) -> RouteTable:
    return table(
        {
            "virtual_hosts": [
                vhost("v", ["*"], [dr("hit", {"prefix": "/", "headers": list(matchers)}), dr("miss", {"prefix": "/"})])
            ]
        }
    )


@pytest.mark.parametrize(
    "matcher,headers,hit",
    [
        ({"name": "x-a", "string_match": {"exact": "one"}}, [("x-a", "one")], True),
        ({"name": "x-a", "string_match": {"exact": "one"}}, [("x-a", "ONE")], False),
        ({"name": "x-a", "string_match": {"exact": "one"}}, [], False),
        ({"name": "x-a", "string_match": {"exact": "ONE", "ignore_case": True}}, [("x-a", "one")], True),
        ({"name": "x-a", "string_match": {"prefix": "ab"}}, [("x-a", "abc")], True),
        ({"name": "x-a", "string_match": {"prefix": "AB", "ignore_case": True}}, [("x-a", "abc")], True),
        ({"name": "x-a", "string_match": {"suffix": "END", "ignore_case": True}}, [("x-a", "the end")], True),
        ({"name": "x-a", "string_match": {"suffix": "end"}}, [("x-a", "the End")], False),
        ({"name": "x-a", "string_match": {"contains": "mid"}}, [("x-a", "amidst")], True),
        ({"name": "x-a", "string_match": {"contains": "MID", "ignore_case": True}}, [("x-a", "aMiDst")], True),
        ({"name": "x-a", "string_match": {"safe_regex": {"regex": "[0-9]+"}}}, [("x-a", "123")], True),
        ({"name": "x-a", "safe_regex_match": {"regex": "[0-9]+"}}, [("x-a", "123a")], False),  # full match
        ({"name": "x-a", "exact_match": "old"}, [("x-a", "old")], True),
        ({"name": "x-a", "string_match": {"exact": ""}}, [("x-a", "")], True),
        ({"name": "x-a", "string_match": {"exact": ""}}, [], False),
        ({"name": "x-a", "string_match": {"exact": ""}, "treat_missing_header_as_empty": True}, [], True),
        (
            {"name": "x-a", "string_match": {"exact": "x"}, "invert_match": True, "treat_missing_header_as_empty": True},
            [],
            True,
        ),
        (
            {"name": "x-a", "string_match": {"exact": "x"}, "invert_match": True, "treat_missing_header_as_empty": True},
            [("x-a", "x")],
            False,
        ),
        # invert_match: a missing header still does not match.
        ({"name": "x-a", "string_match": {"exact": "one"}, "invert_match": True}, [("x-a", "two")], True),
        ({"name": "x-a", "string_match": {"exact": "one"}, "invert_match": True}, [("x-a", "one")], False),
        ({"name": "x-a", "string_match": {"exact": "one"}, "invert_match": True}, [], False),
        # present_match, and a matcher with no match field.
        ({"name": "x-a", "present_match": True}, [("x-a", "")], True),
        ({"name": "x-a", "present_match": True}, [], False),
        ({"name": "x-a"}, [("x-a", "")], True),
        ({"name": "x-a"}, [], False),
        ({"name": "x-a", "present_match": False}, [], True),
        ({"name": "x-a", "present_match": False}, [("x-a", "1")], False),
        ({"name": "x-a", "present_match": True, "invert_match": True}, [], True),
        ({"name": "x-a", "present_match": True, "invert_match": True}, [("x-a", "1")], False),
        ({"name": "x-a", "present_match": False, "invert_match": True}, [("x-a", "1")], True),
        ({"name": "x-a", "present_match": False, "invert_match": True}, [], False),
        # Several values: any one value matching is a match; they are not joined.
        ({"name": "x-m", "string_match": {"exact": "a"}}, [("x-m", "a"), ("x-m", "b")], True),
        ({"name": "x-m", "string_match": {"exact": "b"}}, [("x-m", "a"), ("x-m", "b")], True),
        ({"name": "x-m", "string_match": {"exact": "a,b"}}, [("x-m", "a"), ("x-m", "b")], False),
        ({"name": "x-m", "string_match": {"contains": ","}}, [("x-m", "a"), ("x-m", "b")], False),
        ({"name": "x-m", "string_match": {"exact": "a,b"}}, [("x-m", "a,b")], True),
        ({"name": "x-m", "string_match": {"exact": "B", "ignore_case": True}}, [("x-m", "a"), ("x-m", "b")], True),
        ({"name": "x-m", "string_match": {"exact": "a"}, "invert_match": True}, [("x-m", "b"), ("x-m", "a")], False),
        ({"name": "x-m", "string_match": {"exact": "a"}, "invert_match": True}, [("x-m", "b"), ("x-m", "c")], True),
        # Names are case-insensitive; host and :authority read :authority.
        ({"name": "X-A", "string_match": {"exact": "v"}}, [("x-a", "v")], True),
        ({"name": "host", "string_match": {"exact": "hh"}}, [], True),
        ({"name": ":authority", "string_match": {"exact": "hh"}}, [], True),
        ({"name": "host", "string_match": {"exact": "HH"}}, [], False),
        ({"name": ":method", "string_match": {"exact": "GET"}}, [], True),
        ({"name": ":path", "string_match": {"exact": "/p?q"}}, [], True),  # the whole :path, query included
    ],
)
def test_header_matchers(matcher: dict, headers: list, hit: bool) -> None:
    t = header_table(matcher)
    assert body_of(t.route(request("hh", "/p?q", headers))) == ("hit" if hit else "miss")


def test_every_header_matcher_must_match() -> None:
    t = header_table({"name": "x-a", "string_match": {"exact": "1"}}, {"name": "x-b", "present_match": True})
    assert body_of(t.route(request("h", "/", [("x-a", "1")]))) == "miss"
    assert body_of(t.route(request("h", "/", [("x-a", "1"), ("x-b", "")]))) == "hit"


# --------------------------------------------------------------------------------------------
# Route actions: clusters, weights, timeout, host rewrite, rewrites.


def test_route_action_attributes() -> None:
    t = table(
        {
            "virtual_hosts": [
                vhost(
                    "v",
                    ["*"],
                    [
                        {
                            "name": "a",
                            "match": {"prefix": "/a"},
                            "route": {"cluster": "c1", "timeout": "2.5s", "host_rewrite_literal": "up.example"},
                        },
                        {
                            "name": "b",
                            "match": {"prefix": "/b"},
                            "route": {"cluster": "c2", "timeout": "0s", "auto_host_rewrite": True},
                        },
                        {"name": "c", "match": {"prefix": "/c"}, "route": {"cluster": "c1"}},
                    ],
                )
            ]
        },
        clusters=["c1", "c2"],
    )
    a = t.route(request("h", "/a"))
    assert (a.cluster, a.cluster_name(), a.cluster_name(12345), a.timeout) == ("c1", "c1", "c1", 2.5)
    assert (a.host_rewrite, a.auto_host_rewrite, a.redirect, a.direct_response, a.response_code, a.response_body) == (
        "up.example",
        False,
        None,
        None,
        None,
        None,
    )
    assert a.weighted_clusters == ()
    b = t.route(request("h", "/b"))
    assert (b.cluster, b.timeout, b.host_rewrite, b.auto_host_rewrite) == ("c2", 0.0, None, True)
    assert t.route(request("h", "/c")).timeout == 15.0  # Envoy's default
    assert a.redirect_location(request("h", "/a")) is None
    assert "c1" in repr(a)


WEIGHTED_CONFIG = {
    "virtual_hosts": [
        vhost(
            "v",
            ["*"],
            [
                {
                    "name": "w",
                    "match": {"prefix": "/"},
                    "route": {
                        "weighted_clusters": {
                            "clusters": [
                                {"name": "a", "weight": 10},
                                {"name": "zero", "weight": 0},
                                {"name": "b", "weight": 30},
                                {"name": "c", "weight": 60},
                            ]
                        }
                    },
                }
            ],
        )
    ]
}


@pytest.mark.parametrize(
    "random_value,expected",
    [
        (0, "a"), (9, "a"), (10, "b"), (39, "b"), (40, "c"), (99, "c"),
        (100, "a"), (110, "b"), (10**20 + 50, "c"), (-1, "b"),
    ],  # fmt: skip
)
def test_weighted_clusters_pick_like_envoy(random_value: int, expected: str) -> None:
    # random_value % 100 against [0,10) a, [10,10) zero (never), [10,40) b, [40,100) c;
    # -1 is 2**64-1 as a uint64, and 2**64-1 % 100 == 15.
    t = table(WEIGHTED_CONFIG, clusters=["a", "zero", "b", "c"])
    entry = t.route(request("h", "/"), random_value)
    assert entry.cluster == expected
    assert entry.cluster_name() == expected
    assert entry.cluster_name(random_value) == expected
    assert entry.weighted_clusters == ("a", "zero", "b", "c")
    # Each cluster has its own precompiled entry; the same pick gives the same object.
    assert t.route(request("h", "/x"), random_value) is entry


def test_weighted_clusters_distribution() -> None:
    t = table(WEIGHTED_CONFIG, clusters=["a", "zero", "b", "c"])
    counts: dict = {}
    for rv in range(1000):
        c = t.route(request("h", "/"), rv).cluster
        counts[c] = counts.get(c, 0) + 1
    assert counts == {"a": 100, "b": 300, "c": 600}


def test_a_table_says_whether_it_reads_the_random_value() -> None:
    # The connection manager draws a random number per request only for a
    # table that reads it (weighted clusters).
    assert table(WEIGHTED_CONFIG, clusters=["a", "zero", "b", "c"]).uses_random is True
    plain = {"virtual_hosts": [vhost("v", ["*"], [{"match": {"prefix": "/"}, "route": {"cluster": "a"}}])]}
    assert table(plain, clusters=["a"]).uses_random is False
    assert table({"virtual_hosts": []}).uses_random is False


def test_hand_built_weighted_route_with_zero_total_is_rejected() -> None:
    route = Route(match=RouteMatch(prefix="/"), action=RouteAction(weighted_clusters=(ClusterWeight("a", 0),)))
    with pytest.raises(ValueError, match="weight"):
        RouteTable(RouteConfiguration(virtual_hosts=(VirtualHost(name="v", domains=("*",), routes=(route,)),)))


REWRITE_CONFIG = {
    "virtual_hosts": [
        vhost(
            "v",
            ["*"],
            [
                {"match": {"prefix": "/pre/"}, "route": {"cluster": "up", "prefix_rewrite": "/new/"}},
                {"match": {"prefix": "/strip"}, "route": {"cluster": "up", "prefix_rewrite": "/"}},
                {"match": {"path": "/exact"}, "route": {"cluster": "up", "prefix_rewrite": "/other"}},
                {"match": {"safe_regex": {"regex": "/rx/.*"}}, "route": {"cluster": "up", "prefix_rewrite": "/rxnew"}},
                {"match": {"prefix": "/CI/", "case_sensitive": False}, "route": {"cluster": "up", "prefix_rewrite": "/ci/"}},
                {"match": {"prefix": "/empty"}, "route": {"cluster": "up", "prefix_rewrite": ""}},
                {"match": {"prefix": "/"}, "route": {"cluster": "up"}},
            ],
        )
    ]
}


@pytest.mark.parametrize(
    "path,expected",
    [
        ("/pre/x?q=1", "/new/x?q=1"),
        ("/pre/", "/new/"),
        ("/strip/a/b", "//a/b"),
        ("/stripped", "/ped"),
        ("/exact?z", "/other?z"),
        ("/rx/abc?z", "/rxnew?z"),
        ("/rx/abc", "/rxnew"),
        ("/cI/x", "/ci/x"),
        ("/empty/x", "/empty/x"),  # an empty prefix_rewrite is no rewrite
        ("/plain?x", "/plain?x"),
    ],
)
def test_rewrite_path(path: str, expected: str) -> None:
    t = table(REWRITE_CONFIG, clusters=["up"])
    assert t.route(request("h", path)).rewrite_path(path) == expected


def test_apply_rewrites_rewrites_host_and_path() -> None:
    t = table(
        {
            "virtual_hosts": [
                vhost(
                    "v",
                    ["*"],
                    [
                        {
                            "match": {"prefix": "/pre/"},
                            "route": {"cluster": "up", "prefix_rewrite": "/new/", "host_rewrite_literal": "up.example"},
                        }
                    ],
                )
            ]
        },
        clusters=["up"],
    )
    hm = request("h:5", "/pre/x?q=1")
    entry = t.route(hm)
    before = list(hm)
    entry.finalize_request_headers(hm)  # header mutations only
    assert list(hm) == before
    entry.apply_rewrites(hm)
    assert hm.get(":authority") == "up.example" and hm.get(":path") == "/new/x?q=1"
    assert hm.get("x-envoy-original-host") == "h:5"
    assert hm.get("x-envoy-original-path") == "/pre/x?q=1"
    assert hm.names()[-2:] == ["x-envoy-original-host", "x-envoy-original-path"]
    hm2 = request("h:5", "/pre/y")
    entry.apply_rewrites(hm2, keep_original_host_or_path=False)
    assert hm2.get(":path") == "/new/y" and "x-envoy-original-path" not in hm2 and "x-envoy-original-host" not in hm2


@pytest.mark.parametrize(
    "route_config,changes",
    [
        ({"route": {"cluster": "up"}}, (False, False)),
        ({"route": {"cluster": "up", "prefix_rewrite": "/new/"}}, (True, False)),
        ({"route": {"cluster": "up", "host_rewrite_literal": "up.example"}}, (True, False)),
        ({"route": {"cluster": "up"}, "request_headers_to_remove": ["x-a"]}, (True, False)),
        ({"route": {"cluster": "up"}, "response_headers_to_add": [{"header": {"key": "x-b", "value": "1"}}]}, (False, True)),
    ],
)
def test_changes_flags_say_whether_finalizing_can_change_anything(route_config, changes) -> None:
    route = {"match": {"prefix": "/"}} | route_config
    entry = table({"virtual_hosts": [vhost("v", ["*"], [route])]}, clusters=["up"]).route(request("h", "/x"))
    assert (entry.changes_request, entry.changes_response) == changes
    # When a flag is False, finalizing leaves the headers as they are (the router skips the calls).
    hm = request("h", "/x")
    before = list(hm)
    if not entry.changes_request:
        entry.finalize_request_headers(hm)
        entry.apply_rewrites(hm)
        assert list(hm) == before
    if not entry.changes_response:
        response = HeaderMap([(":status", "200")])
        entry.finalize_response_headers(response)
        assert list(response) == [(":status", "200")]


def test_changes_flags_see_the_virtual_host_and_configuration_mutations() -> None:
    config = {
        "virtual_hosts": [vhost("v", ["*"], [{"match": {"prefix": "/"}, "route": {"cluster": "up"}}])],
        "response_headers_to_remove": ["server-timing"],
    }
    entry = table(config, clusters=["up"]).route(request("h", "/x"))
    assert (entry.changes_request, entry.changes_response) == (False, True)


# --------------------------------------------------------------------------------------------
# Redirects and direct responses.


def redirect_route(path: str, redirect: dict) -> dict:
    return {"match": {"path": path}, "redirect": redirect}


REDIRECT_CONFIG = {
    "virtual_hosts": [
        vhost(
            "v",
            ["*"],
            [
                redirect_route("/https", {"https_redirect": True}),
                redirect_route("/scheme", {"scheme_redirect": "ftp"}),
                redirect_route("/schemeHTTPS", {"scheme_redirect": "HTTPS"}),
                redirect_route("/schemehttp", {"scheme_redirect": "http"}),
                redirect_route("/host", {"host_redirect": "new.example"}),
                redirect_route("/hostport", {"host_redirect": "new.example:99"}),
                redirect_route("/hostport_port", {"host_redirect": "new.example:99", "port_redirect": 7}),
                redirect_route("/host6p", {"host_redirect": "[::2]:99"}),
                redirect_route("/port", {"port_redirect": 8443}),
                redirect_route("/hport", {"host_redirect": "new.example", "port_redirect": 8443}),
                redirect_route("/https443", {"https_redirect": True, "port_redirect": 443}),
                redirect_route("/path", {"path_redirect": "/newpath"}),
                redirect_route("/pathq", {"path_redirect": "/newpath?a=b", "strip_query": True}),
                redirect_route("/pathnoslash", {"path_redirect": "noslash"}),
                redirect_route("/pathempty_q", {"path_redirect": "/n?", "strip_query": True}),
                redirect_route("/strip", {"strip_query": True}),
                redirect_route("/pstrip", {"path_redirect": "/np", "strip_query": True}),
                redirect_route("/c302", {"response_code": "FOUND"}),
                redirect_route("/c303", {"response_code": "SEE_OTHER"}),
                redirect_route("/c307", {"response_code": "TEMPORARY_REDIRECT"}),
                redirect_route("/c308", {"response_code": "PERMANENT_REDIRECT"}),
                {"match": {"path": "/exactp"}, "redirect": {"prefix_rewrite": "/ep"}},
                {"match": {"safe_regex": {"regex": "/rxp/.*"}}, "redirect": {"prefix_rewrite": "/rp"}},
                {"match": {"prefix": "/CIP", "case_sensitive": False}, "redirect": {"prefix_rewrite": "/cip2"}},
                {"match": {"prefix": "/pre/"}, "redirect": {"prefix_rewrite": "/after/", "strip_query": True}},
                {"match": {"prefix": "/preslash"}, "redirect": {"prefix_rewrite": "/"}},
                {"match": {"prefix": "/dr301"}, "direct_response": {"status": 301, "body": {"inline_string": "moved"}}},
                {"match": {"prefix": "/dr201"}, "direct_response": {"status": 201}},
                {"match": {"prefix": "/dr200"}, "direct_response": {"status": 200}},
            ],
        )
    ]
}

# (authority, path, x-forwarded-proto or None, status, Location): every row as Envoy 1.40 answered.
REDIRECT_CASES = [
    ("h", "/https", None, 301, "https://h/https"),
    ("h:80", "/https", None, 301, "https://h/https"),  # http on :80 becomes https: the port goes
    ("h:8080", "/https", None, 301, "https://h:8080/https"),  # any other port stays
    ("h:443", "/https", None, 301, "https://h:443/https"),
    ("h:443", "/https", "https", 301, "https://h:443/https"),  # no scheme change: nothing stripped
    ("h:80", "/https", "https", 301, "https://h:80/https"),
    ("h:443", "/https", "HTTPS", 301, "https://h/https"),  # "https" != "HTTPS" is a change; :443 is https's
    ("h:80", "/https", "Http", 301, "https://h/https"),
    ("h:443", "/https", "wss", 301, "https://h:443/https"),
    ("[::1]:80", "/https", None, 301, "https://[::1]/https"),
    ("[::1]", "/https", None, 301, "https://[::1]/https"),
    ("H.Example", "/https", None, 301, "https://H.Example/https"),  # the host keeps its case
    ("h:80", "/scheme", None, 301, "ftp://h/scheme"),
    ("h:8080", "/scheme", None, 301, "ftp://h:8080/scheme"),
    ("h:80", "/schemeHTTPS", None, 301, "HTTPS://h/schemeHTTPS"),  # scheme_redirect verbatim
    ("h:443", "/schemehttp", "https", 301, "http://h/schemehttp"),
    ("h:80", "/host", None, 301, "http://new.example/host"),
    ("h:81", "/hostport", None, 301, "http://new.example:99/hostport"),
    ("h:81", "/hostport_port", None, 301, "http://new.example:99:7/hostport_port"),
    ("h:81", "/host6p", None, 301, "http://[::2]:99/host6p"),
    ("h", "/port", None, 301, "http://h:8443/port"),
    ("h:80", "/port", None, 301, "http://h:8443/port"),
    ("h:81", "/hport", None, 301, "http://new.example:8443/hport"),
    ("h:8080", "/https443", None, 301, "https://h:443/https443"),  # port_redirect is always written
    ("h", "/path?x=1", None, 301, "http://h/newpath?x=1"),  # the request's query is kept
    ("h", "/path", "https", 301, "https://h/newpath"),  # the scheme is the request's
    ("h", "/pathq?x=1", None, 301, "http://h/newpath?a=b"),  # path_redirect's query wins, strip_query ignored
    ("h", "/pathnoslash?y", None, 301, "http://h/noslash?y"),
    ("h", "/pathempty_q?z", None, 301, "http://h/n?"),
    ("h", "/strip?x=1&y", None, 301, "http://h/strip"),
    ("h", "/pstrip?x", None, 301, "http://h/np"),
    ("h", "/c302", None, 302, "http://h/c302"),
    ("h", "/c303", None, 303, "http://h/c303"),
    ("h", "/c307", None, 307, "http://h/c307"),
    ("h", "/c308", None, 308, "http://h/c308"),
    ("h", "/exactp?z", None, 301, "http://h/ep?z"),
    ("h", "/rxp/abc?z", None, 301, "http://h/rp?z"),
    ("h", "/cipX/y", None, 301, "http://h/cip2X/y"),
    ("h", "/pre/x?q=1", None, 301, "http://h/after/x"),
    ("h", "/preslash", None, 301, "http://h/"),
    ("h", "/preslash/x?a", None, 301, "http://h//x?a"),
    ("h:5", "/dr301?q", None, 301, "http://h:5/dr301?q"),  # a 3xx direct response gets the request URL
    ("h", "/dr201", None, 201, "http://h/dr201"),
    ("h", "/dr200", None, 200, None),
]


@pytest.mark.parametrize("authority,path,xfp,status,location", REDIRECT_CASES)
def test_redirect_location(authority: str, path: str, xfp: Optional[str], status: int, location: Optional[str]) -> None:
    t = table(REDIRECT_CONFIG)
    hm = request(authority, path, xfp=xfp)
    before = list(hm)
    entry = t.route(hm)
    assert entry.response_code == status
    assert entry.redirect_location(hm) == location
    assert list(hm) == before  # not modified


def test_redirect_and_direct_response_attributes() -> None:
    t = table(REDIRECT_CONFIG)
    r = t.route(request("h", "/c308"))
    assert r.redirect is not None and r.direct_response is None and r.cluster is None and r.timeout is None
    assert (r.response_code, r.response_body, r.cluster_name(7)) == (308, b"", None)
    d = t.route(request("h", "/dr301"))
    assert d.direct_response == (301, b"moved") and d.redirect is None
    assert (d.response_code, d.response_body) == (301, b"moved")
    assert t.route(request("h", "/dr201")).direct_response == (201, b"")
    assert r.redirect_location(HeaderMap([(":method", "GET"), (":authority", "h")])) is None
    assert r.redirect_response(request("h:80", "/c308?x")) == (308, "http://h:80/c308?x")
    with pytest.raises(ValueError, match="not a redirect"):
        d.redirect_response(request("h", "/dr301"))
    with pytest.raises(ValueError, match=":path"):
        r.redirect_response(HeaderMap([(":method", "GET"), (":authority", "h")]))


def test_redirect_without_scheme_headers_defaults_to_http() -> None:
    t = table(REDIRECT_CONFIG)
    hm = HeaderMap([(":method", "GET"), (":path", "/path"), (":authority", "h:80")])
    assert t.route(hm).redirect_location(hm) == "http://h:80/newpath"
    hm = HeaderMap([(":method", "GET"), (":path", "/https"), (":authority", "h:80")])
    assert t.route(hm).redirect_location(hm) == "https://h/https"


# --------------------------------------------------------------------------------------------
# Header mutations.


def level(tag: str) -> list:
    return [
        hv("x-a", tag),
        hv("x-b", tag, "OVERWRITE_IF_EXISTS_OR_ADD"),
        hv("x-c", tag, "ADD_IF_ABSENT"),
        hv("x-d", tag, "OVERWRITE_IF_EXISTS"),
    ]


MUTATIONS_CONFIG = {
    "request_headers_to_add": level("g"),
    "request_headers_to_remove": ["x-rm-g"],
    "response_headers_to_add": level("g")
    + [hv("x-e", "g", "OVERWRITE_IF_EXISTS"), hv("x-h", "g2", "OVERWRITE_IF_EXISTS")],
    "response_headers_to_remove": ["x-rm-g"],
    "virtual_hosts": [
        vhost(
            "v",
            ["*"],
            [
                {
                    "name": "routeA",
                    "match": {"prefix": "/"},
                    "route": {"cluster": "up"},
                    "request_headers_to_add": level("r")
                    + [
                        hv("x-auth", "%REQ(:authority)%"),
                        hv("x-in-removed", "%REQ(x-in)%"),
                        hv("x-h1", "1", "ADD_IF_ABSENT"),
                        hv("x-h1", "2", "ADD_IF_ABSENT"),
                        hv("x-up", "%UPSTREAM_HOST%"),
                    ],
                    "request_headers_to_remove": ["x-in", "x-a"],
                    "response_headers_to_add": level("r")
                    + [
                        hv("x-e", "r", "ADD_IF_ABSENT"),
                        hv("x-f", "r"),
                        hv("x-g", "1"),
                        hv("x-g", "2", "OVERWRITE_IF_EXISTS_OR_ADD"),
                        hv("x-g", "3", "OVERWRITE_IF_EXISTS_OR_ADD"),
                        hv("x-g", "4"),
                        hv("x-h", "1", "ADD_IF_ABSENT"),
                        hv("x-empty", ""),
                        hv("x-keep", "", keep_empty=True),
                    ],
                    "response_headers_to_remove": ["x-zz"],
                }
            ],
            request_headers_to_add=level("v") + [hv("x-rm-g", "v")],
            response_headers_to_add=level("v") + [hv("x-rm-g", "v")],
            response_headers_to_remove=["x-f"],
        )
    ],
}


def x_headers(hm: HeaderMap) -> list:
    return [(k, v) for k, v in hm if k.startswith("x-")]


def test_request_header_mutations_precedence_and_actions() -> None:
    # Envoy 1.40 sent exactly this upstream (differential test below re-checks it).
    t = table(MUTATIONS_CONFIG, clusters=["up"])
    client = [("x-in", "v"), ("x-a", "client"), ("x-b", "client"), ("x-d", "client"), ("x-rm-g", "client")]
    hm = request("h:5", "/p", client)
    entry = t.route(hm)
    ctx = FormatterContext(downstream_remote_address="127.0.0.1:1", upstream_host="1.2.3.4:5")
    entry.finalize_request_headers(hm, ctx)
    assert x_headers(hm) == [
        ("x-forwarded-proto", "http"),
        ("x-a", "r"),
        ("x-c", "r"),
        ("x-auth", "h:5"),
        ("x-h1", "1"),  # ADD_IF_ABSENT checks the headers as they were before the level
        ("x-h1", "2"),
        ("x-a", "v"),
        ("x-b", "g"),  # the outermost level wins an overwrite; overwriting moves to the end
        ("x-d", "g"),
        ("x-a", "g"),
    ]
    # x-in was removed before %REQ(x-in)% was formatted; %UPSTREAM_HOST% is empty in a request.


def test_response_header_mutations_precedence_and_actions() -> None:
    t = table(MUTATIONS_CONFIG, clusters=["up"])
    entry = t.route(request("h", "/"))
    hm = HeaderMap([(":status", "200"), ("x-zz", "1"), ("x-rm-g", "upstream")])
    entry.finalize_response_headers(hm)
    assert x_headers(hm) == [
        ("x-g", "3"),  # two overwrites at one level: the last wins, and comes before the additions
        ("x-a", "r"),
        ("x-c", "r"),
        ("x-g", "1"),
        ("x-g", "4"),
        ("x-keep", ""),  # an empty value is added only with keep_empty_value
        ("x-a", "v"),
        ("x-b", "g"),
        ("x-e", "g"),  # OVERWRITE_IF_EXISTS at the outer level replaced the route's ADD_IF_ABSENT
        ("x-h", "g2"),
        ("x-a", "g"),
    ]


def test_overwrite_if_exists_needs_the_header_before_the_level() -> None:
    t = table(
        {
            "virtual_hosts": [
                vhost(
                    "v",
                    ["*"],
                    [
                        {
                            "match": {"prefix": "/"},
                            "direct_response": {"status": 200},
                            "response_headers_to_add": [
                                hv("x-a", "1"),
                                hv("x-a", "2", "OVERWRITE_IF_EXISTS"),
                                hv("x-b", "3", "OVERWRITE_IF_EXISTS"),
                            ],
                        }
                    ],
                )
            ]
        }
    )
    hm = HeaderMap([("x-b", "old"), ("x-c", "z")])
    t.route(request("h", "/")).finalize_response_headers(hm)
    assert list(hm) == [("x-c", "z"), ("x-b", "3"), ("x-a", "1")]


FORMAT_CONFIG = {
    "virtual_hosts": [
        vhost(
            "v",
            ["*"],
            [
                {
                    "name": "fmt",
                    "match": {"prefix": "/"},
                    "direct_response": {"status": 200},
                    "response_headers_to_add": [
                        hv("x-dra", "%DOWNSTREAM_REMOTE_ADDRESS%"),
                        hv("x-drawp", "[%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%]"),
                        hv("x-drp", "%DOWNSTREAM_REMOTE_PORT%"),
                        hv("x-ddra", "%DOWNSTREAM_DIRECT_REMOTE_ADDRESS%"),
                        hv("x-dla", "%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT% %DOWNSTREAM_LOCAL_PORT%"),
                        hv("x-proto", "%PROTOCOL%"),
                        hv("x-up", "%UPSTREAM_HOST%"),
                        hv("x-cl", "%UPSTREAM_CLUSTER%"),
                        hv("x-pct", "100%% %%PROTOCOL%%"),
                        hv("x-req", "%REQ(x-in)%"),
                        hv("x-req-miss2", "a%REQ(x-missing)%b"),
                        hv("x-req-miss", "%REQ(x-missing)%"),
                        hv("x-req-trunc", "%REQ(x-in):3%"),
                        hv("x-req-alt", "%REQ(x-missing?x-in)%"),
                        hv("x-host", "%REQ(host)%"),
                        hv("x-resp", "%RESP(x-up-resp)%"),
                        hv("x-rn", "%ROUTE_NAME%"),
                        hv("x-hostname", "%HOSTNAME%"),
                        hv("x-code", "%RESPONSE_CODE%"),
                        hv("x-utf8", "caf\u00e9"),
                    ],
                }
            ],
        )
    ]
}


def test_formatters() -> None:
    t = table(FORMAT_CONFIG)
    req = request("h", "/", [("x-in", "hello"), ("x-in", "second")])
    entry = t.route(req)
    ctx = FormatterContext(
        downstream_remote_address=Address("::1", 4321),
        downstream_local_address="10.0.0.1:80",
        protocol="HTTP/1.1",
        upstream_host=Address("10.1.1.1", 8080),
        upstream_cluster="up",
        request_headers=req,
        extra={"RESPONSE_CODE": "200"},
    )
    hm = HeaderMap([("x-up-resp", "upstream")])
    entry.finalize_response_headers(hm, ctx)
    assert dict(x_headers(hm)) == {
        "x-up-resp": "upstream",
        "x-dra": "[::1]:4321",
        "x-drawp": "[::1]",
        "x-drp": "4321",
        "x-ddra": "[::1]:4321",
        "x-dla": "10.0.0.1 80",
        "x-proto": "HTTP/1.1",
        "x-up": "10.1.1.1:8080",
        "x-cl": "up",
        "x-pct": "100% %PROTOCOL%",
        "x-req": "hello",  # the first value
        "x-req-miss2": "ab",
        "x-req-trunc": "hel",
        "x-req-alt": "hello",
        "x-host": "h",
        "x-resp": "upstream",
        "x-rn": "fmt",
        "x-hostname": socket.gethostname(),
        "x-code": "200",
        "x-utf8": "caf\u00c3\u00a9",  # UTF-8 bytes, as a latin-1 header map holds them
    }
    # Without a context only the table's and the headers' operators have values.
    hm = HeaderMap()
    entry.finalize_response_headers(hm)
    assert dict(x_headers(hm)) == {
        "x-drawp": "[]",
        "x-dla": "",  # " " is not empty, so it is added; the map trims it
        "x-pct": "100% %PROTOCOL%",
        "x-req-miss2": "ab",
        "x-rn": "fmt",
        "x-hostname": socket.gethostname(),
        "x-utf8": "caf\u00c3\u00a9",
    }


def test_mapping_context() -> None:
    t = table(FORMAT_CONFIG)
    entry = t.route(request("h", "/"))
    hm = HeaderMap()
    entry.finalize_response_headers(
        hm, {"downstream_remote_address": Address("10.0.0.9", 7), "protocol": "HTTP/1.0", "RESPONSE_CODE": 503}
    )
    assert (hm.get("x-dra"), hm.get("x-proto"), hm.get("x-code")) == ("10.0.0.9:7", "HTTP/1.0", "503")


def test_string_addresses_in_context() -> None:
    t = table(FORMAT_CONFIG)
    entry = t.route(request("h", "/"))
    hm = HeaderMap()
    entry.finalize_response_headers(
        hm, FormatterContext(downstream_remote_address="127.0.0.1:5", downstream_direct_remote_address="[fe80::1]:6")
    )
    got = (hm.get("x-dra"), hm.get("x-drawp"), hm.get("x-drp"), hm.get("x-ddra"))
    assert got == ("127.0.0.1:5", "[127.0.0.1]", "5", "[fe80::1]:6")


def test_concurrent_routing_shares_one_table() -> None:
    t = table(HOSTS_CONFIG)
    errors = []

    def work() -> None:
        for _ in range(200):
            for authority, expected in HOST_CASES:
                if body_of(t.route(request(authority, "/"))) != expected:
                    errors.append(authority)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []


def test_hand_built_table() -> None:
    route = Route(
        match=RouteMatch(prefix="/", headers=(HeaderMatcher(name="x-a"),)),
        action=DirectResponseAction(status=204),
        name="r",
    )
    t = RouteTable(RouteConfiguration(virtual_hosts=(VirtualHost(name="v", domains=("*",), routes=(route,)),)))
    assert t.route(request("h", "/")) is None
    entry = t.route(request("h", "/", [("x-a", "")]))
    assert (entry.response_code, entry.response_body, entry.direct_response) == (204, b"", (204, b""))
    assert t.route_config.virtual_hosts[0].name == "v" and "RouteTable" in repr(t)


# --------------------------------------------------------------------------------------------
# Differential tests against Envoy 1.40.

ENVOY = shutil.which("envoy")
needs_envoy = pytest.mark.skipif(ENVOY is None, reason="the envoy binary (Envoy 1.40) is not on PATH")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Echo(http.server.BaseHTTPRequestHandler):
    """Answers every request with its target and header fields as JSON."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = json.dumps({"path": self.path, "headers": list(self.headers.items())}).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.send_header("x-up-resp", "upstream")
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args: Any) -> None:
        pass


MAIN_ROUTES = {
    "virtual_hosts": [
        vhost(
            "exact",
            ["example.com", "Example.ORG"],
            [
                dr("ex-path", {"path": "/exact"}),
                dr("ex-path-ci", {"path": "/Exact/CI", "case_sensitive": False}),
                dr("ex-regex", {"safe_regex": {"regex": "/users/[0-9]+"}}),
                dr("ex-regex-ci", {"safe_regex": {"regex": "/Items/[a-z]+"}, "case_sensitive": False}),
                dr("ex-hdr-exact", {"prefix": "/h/", "headers": [sm("x-env", exact="prod")]}),
                dr("ex-hdr-two", {"prefix": "/h/", "headers": [sm("x-a", prefix="v"), {"name": "x-b", "present_match": True}]}),
                dr(
                    "ex-hdr-inv",
                    {"prefix": "/h/", "headers": [{"name": "x-ver", "safe_regex_match": {"regex": "v[0-9]+"}, "invert_match": True}]},
                ),
                dr("ex-hdr-absent", {"prefix": "/h/", "headers": [{"name": "x-debug", "present_match": False}]}),
                dr("ex-hdr-ic", {"prefix": "/i/", "headers": [sm("x-tag", suffix="-BETA", ignore_case=True)]}),
                dr("ex-hdr-missing", {"prefix": "/i/", "headers": [{**sm("x-e", exact=""), "treat_missing_header_as_empty": True}]}),
                dr("ex-host-hdr", {"prefix": "/auth/", "headers": [sm("host", exact="example.com")]}),
                dr("ex-method", {"prefix": "/auth/", "headers": [sm(":method", exact="POST")]}),
                dr("ex-multi", {"prefix": "/multi", "headers": [sm("x-m", exact="b")]}),
                dr("ex-prefix-ci", {"prefix": "/API/", "case_sensitive": False}),
                {"name": "ex-https", "match": {"prefix": "/secure"}, "redirect": {"https_redirect": True}},
                {
                    "name": "ex-moved",
                    "match": {"prefix": "/moved/"},
                    "redirect": {
                        "host_redirect": "new.example.com",
                        "prefix_rewrite": "/new/",
                        "response_code": "PERMANENT_REDIRECT",
                    },
                },
                {"name": "ex-old", "match": {"path": "/old"}, "redirect": {"path_redirect": "/new", "response_code": "FOUND"}},
                {
                    "name": "ex-strip",
                    "match": {"prefix": "/strip"},
                    "redirect": {"port_redirect": 8443, "strip_query": True, "response_code": "TEMPORARY_REDIRECT"},
                },
                {
                    "name": "ex-scheme",
                    "match": {"prefix": "/scheme"},
                    "redirect": {"scheme_redirect": "ftp", "response_code": "SEE_OTHER"},
                },
                {"name": "ex-found", "match": {"prefix": "/found"}, "direct_response": {"status": 302}},
                dr("ex-fallback", {"prefix": "/"}),
            ],
        ),
        vhost("exact-port", ["example.com:8080"], [dr("exact-port", {"prefix": "/"})]),
        vhost("suffix-long", ["*-api.example.net"], [dr("suffix-long", {"prefix": "/"})]),
        vhost("suffix", ["*.example.net"], [dr("suffix", {"prefix": "/"})]),
        vhost("suffix-nodot", ["*ample.io"], [dr("suffix-nodot", {"prefix": "/"})]),
        vhost("prefix-long", ["api.internal.*"], [dr("prefix-long", {"prefix": "/"})]),
        vhost("prefix", ["api.*"], [dr("prefix", {"prefix": "/"})]),
        vhost(
            "default",
            ["*"],
            [
                dr("def-q", {"prefix": "/q"}),
                dr("def-exact", {"path": "/only"}),
                dr("def-teapot", {"prefix": "/tea"}, status=418),
            ],
        ),
    ]
}

NODEFAULT_ROUTES = {"virtual_hosts": [vhost("only", ["only.example", "*.only.example"], [dr("only", {"prefix": "/"})])]}

_ROUTE_A = MUTATIONS_CONFIG["virtual_hosts"][0]["routes"][0]

HEADERS_ROUTES = {
    **{k: v for k, v in MUTATIONS_CONFIG.items() if k != "virtual_hosts"},
    "virtual_hosts": [
        vhost(
            "v",
            ["*"],
            [
                {
                    **{k: v for k, v in _ROUTE_A.items() if k != "route"},
                    "match": {"prefix": "/mut"},
                    "direct_response": {"status": 200, "body": {"inline_string": "mut"}},
                },
                {
                    "name": "fmt",
                    "match": {"prefix": "/fmt"},
                    "direct_response": {"status": 200, "body": {"inline_string": "fmt"}},
                    "response_headers_to_add": [
                        o
                        for o in FORMAT_CONFIG["virtual_hosts"][0]["routes"][0]["response_headers_to_add"]
                        # Envoy's %RESPONSE_CODE% is the connection manager's value ("0" here).
                        if o["header"]["key"] != "x-code"
                    ],
                },
                {
                    "name": "redir",
                    "match": {"prefix": "/redir"},
                    "redirect": {"path_redirect": "/elsewhere"},
                    "response_headers_to_add": [hv("x-redir", "%REQ(:path)%")],
                },
            ],
            request_headers_to_add=level("v") + [hv("x-rm-g", "v")],
            response_headers_to_add=level("v") + [hv("x-rm-g", "v")],
            response_headers_to_remove=["x-f"],
        )
    ],
}

UPSTREAM_ROUTES = {
    **{k: v for k, v in MUTATIONS_CONFIG.items() if k != "virtual_hosts"},
    "response_headers_to_add": [
        hv("x-t-resp-up", "%UPSTREAM_HOST%"),
        hv("x-t-resp-resp", "%RESP(x-up-resp)%"),
        hv("x-up-resp", "mine", "ADD_IF_ABSENT"),
        hv("x-t-resp-req", "%REQ(x-t-in)%"),
    ],
    "virtual_hosts": [
        vhost(
            "up",
            ["*"],
            [
                {
                    "match": {"prefix": "/pre/"},
                    "route": {"cluster": "echo", "prefix_rewrite": "/new/", "host_rewrite_literal": "rewritten.example"},
                    "request_headers_to_add": level("r")
                    + [
                        hv("x-t-auth", "%REQ(:authority)%"),
                        hv("x-t-path", "%REQ(:path)%"),
                        hv("x-t-up", "%UPSTREAM_HOST%"),
                        hv("x-t-removed", "%REQ(x-t-gone)%"),
                        hv("x-t-h1", "1", "ADD_IF_ABSENT"),
                        hv("x-t-h1", "2", "ADD_IF_ABSENT"),
                        hv("x-t-dra", "%DOWNSTREAM_REMOTE_ADDRESS%"),
                        hv("x-t-drawp", "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"),
                        hv("x-t-proto", "%PROTOCOL%"),
                        hv("x-t-keep", "", keep_empty=True),
                        hv("x-t-empty", ""),
                    ],
                    "request_headers_to_remove": ["x-t-gone", "x-a"],
                },
                {"match": {"path": "/exact"}, "route": {"cluster": "echo", "prefix_rewrite": "/other"}},
                {"match": {"safe_regex": {"regex": "/rx/.*"}}, "route": {"cluster": "echo", "prefix_rewrite": "/rxnew"}},
                {"match": {"prefix": "/CI/", "case_sensitive": False}, "route": {"cluster": "echo", "prefix_rewrite": "/ci/"}},
                {"match": {"prefix": "/"}, "route": {"cluster": "echo"}},
            ],
            request_headers_to_add=level("v") + [hv("x-rm-g", "v")],
        )
    ],
}

# (listener, authority, path, extra headers, method, x-forwarded-proto)
ROUTING_REQUESTS = [
    ("main", "example.com", "/exact", [], "GET", None),
    ("main", "EXAMPLE.COM", "/exact?x=1", [], "GET", None),
    ("main", "example.org", "/exact", [], "GET", None),
    ("main", "example.com:80", "/exact", [], "GET", None),
    ("main", "example.com:8080", "/exact", [], "GET", None),
    ("main", "Example.Com:8080", "/anything", [], "GET", None),
    ("main", "example.com", "/exact/", [], "GET", None),
    ("main", "example.com", "/EXACT", [], "GET", None),
    ("main", "example.com", "/exact/ci?q", [], "GET", None),
    ("main", "example.com", "/EXACT/Ci", [], "GET", None),
    ("main", "example.com", "/users/42", [], "GET", None),
    ("main", "example.com", "/users/42?page=2", [], "GET", None),
    ("main", "example.com", "/users/42/", [], "GET", None),
    ("main", "example.com", "/users/abc", [], "GET", None),
    ("main", "example.com", "/Items/abc", [], "GET", None),
    ("main", "example.com", "/items/abc", [], "GET", None),
    ("main", "example.com", "/h/", [("x-env", "prod")], "GET", None),
    ("main", "example.com", "/h/", [("x-env", "PROD"), ("x-ver", "v1"), ("x-debug", "1")], "GET", None),
    ("main", "example.com", "/h/", [("x-a", "val"), ("x-b", ""), ("x-ver", "v1")], "GET", None),
    ("main", "example.com", "/h/", [("x-a", "val"), ("x-ver", "v1"), ("x-debug", "1")], "GET", None),
    ("main", "example.com", "/h/", [("x-ver", "beta"), ("x-debug", "1")], "GET", None),
    ("main", "example.com", "/h/", [("x-ver", "v2")], "GET", None),
    ("main", "example.com", "/i/", [("x-tag", "release-beta")], "GET", None),
    ("main", "example.com", "/i/", [("x-e", "nonempty")], "GET", None),
    ("main", "example.com", "/i/", [], "GET", None),
    ("main", "example.com", "/auth/", [], "GET", None),
    ("main", "example.org", "/auth/", [], "GET", None),
    ("main", "example.org", "/auth/", [], "POST", None),
    ("main", "example.com", "/multi", [("x-m", "a"), ("x-m", "b")], "GET", None),
    ("main", "example.com", "/multi", [("x-m", "a,b")], "GET", None),
    ("main", "example.com", "/api/v1", [], "GET", None),
    ("main", "example.com", "/Api/v1?x", [], "GET", None),
    ("main", "example.com", "/secure/x?a=1", [], "GET", None),
    ("main", "example.com:8080", "/secure", [], "GET", None),
    ("main", "example.org:80", "/secure", [], "GET", None),
    ("main", "example.org:443", "/secure", [], "GET", "https"),
    ("main", "example.org:443", "/secure", [], "GET", "HTTPS"),
    ("main", "example.com", "/moved/a/b?c=d", [], "GET", None),
    ("main", "example.com", "/old?keep=1", [], "GET", None),
    ("main", "example.com", "/old", [], "GET", "https"),
    ("main", "example.org:81", "/strip?x=1", [], "GET", None),
    ("main", "example.org:80", "/scheme", [], "GET", None),
    ("main", "example.com:7", "/found?z", [], "GET", None),
    ("main", "a-api.example.net", "/", [], "GET", None),
    ("main", "-api.example.net", "/", [], "GET", None),
    ("main", "x.example.net", "/", [], "GET", None),
    ("main", ".example.net", "/", [], "GET", None),
    ("main", "x.example.net:80", "/q", [], "GET", None),
    ("main", "example.io", "/", [], "GET", None),
    ("main", "ample.io", "/q", [], "GET", None),
    ("main", "api.internal.corp", "/", [], "GET", None),
    ("main", "API.Internal.", "/", [], "GET", None),
    ("main", "api.corp:9000", "/", [], "GET", None),
    ("main", "api.", "/q", [], "GET", None),
    ("main", "unknown", "/q?x", [], "GET", None),
    ("main", "unknown", "/only?x", [], "GET", None),
    ("main", "unknown", "/nothing", [], "GET", None),
    ("main", "unknown", "/teapot", [], "GET", None),
    ("main", "", "/q", [], "GET", None),
    ("main", "[::1]:80", "/q", [], "GET", None),
    ("nodefault", "only.example", "/x", [], "GET", None),
    ("nodefault", "a.only.example", "/x", [], "GET", None),
    ("nodefault", "only.example:80", "/x", [], "GET", None),
    ("nodefault", "other", "/x", [], "GET", None),
]


def _send(port: int, authority: str, path: str, headers: list, method: str = "GET") -> tuple:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", authority)
        for k, v in headers:
            conn.putheader(k, v)
        conn.endheaders()
        client_address = conn.sock.getsockname()
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, body, resp.getheader("location"), resp.getheaders(), client_address
    finally:
        conn.close()


@pytest.fixture(scope="module")
def envoy(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Envoy 1.40 running the differential YAML; yields (ports, tables); stopped at the end."""
    if ENVOY is None:
        pytest.skip("the envoy binary (Envoy 1.40) is not on PATH")
    echo = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    echo_thread = threading.Thread(target=echo.serve_forever, daemon=True)
    echo_thread.start()
    proc = None
    try:
        last_error = ""
        for _attempt in range(3):
            ports = {name: free_port() for name in ("main", "nodefault", "headers", "upstream", "hosts", "redirects")}
            text = bootstrap_text(
                [
                    listener("main", ports["main"], MAIN_ROUTES),
                    listener("nodefault", ports["nodefault"], NODEFAULT_ROUTES),
                    listener("headers", ports["headers"], HEADERS_ROUTES),
                    listener("upstream", ports["upstream"], UPSTREAM_ROUTES),
                    listener("hosts", ports["hosts"], HOSTS_CONFIG),
                    listener("redirects", ports["redirects"], REDIRECT_CONFIG),
                ],
                [cluster("echo", echo.server_address[1]), cluster("up", echo.server_address[1])],
            )
            tables = {name: RouteTable(route_config_of(text, name)) for name in ports}
            workdir = str(tmp_path_factory.mktemp("envoy"))
            config_path = os.path.join(workdir, "envoy.yaml")
            with open(config_path, "w") as f:
                f.write(text)
            log_path = os.path.join(workdir, "envoy.log")
            with open(log_path, "w") as log:
                proc = subprocess.Popen(
                    [ENVOY, "-c", config_path, "--concurrency", "1", "-l", "error",
                     "--base-id", str(random.randint(1000, 2**30))],  # fmt: skip
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )
            deadline = time.monotonic() + 20
            ready = False
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    for p in ports.values():
                        socket.create_connection(("127.0.0.1", p), timeout=0.2).close()
                    ready = True
                    break
                except OSError:
                    time.sleep(0.05)
            if ready:
                break
            proc.terminate()
            proc.wait(10)
            with open(log_path) as f:
                last_error = f.read()[-2000:]
            proc = None
        else:
            pytest.fail(f"envoy did not start: {last_error}")
        yield ports, tables, echo.server_address[1]
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        echo.shutdown()
        echo.server_close()


def _ours(t: RouteTable, hm: HeaderMap) -> tuple:
    entry = t.route(hm)
    if entry is None:
        return 404, "", None
    return entry.response_code, entry.response_body.decode(), entry.redirect_location(hm)


@needs_envoy
def test_differential_routing(envoy: Any) -> None:
    ports, tables, _ = envoy
    assert len(ROUTING_REQUESTS) >= 40
    mismatches = []
    for name, authority, path, headers, method, xfp in ROUTING_REQUESTS:
        sent = list(headers) + ([("x-forwarded-proto", xfp)] if xfp else [])
        status, body, location, _, _ = _send(ports[name], authority, path, sent, method)
        theirs = (status, body.decode(), location)
        ours = _ours(tables[name], request(authority, path, headers, method, xfp))
        if ours != theirs:
            mismatches.append((name, authority, path, headers, method, xfp, "envoy:", theirs, "ours:", ours))
    assert mismatches == []


@needs_envoy
@pytest.mark.parametrize("authority,expected", HOST_CASES)
def test_differential_hosts(envoy: Any, authority: str, expected: str) -> None:
    ports, tables, _ = envoy
    status, body, _, _, _ = _send(ports["hosts"], authority, "/", [])
    assert (status, body.decode()) == (200, expected)
    assert body_of(tables["hosts"].route(request(authority, "/"))) == expected


@needs_envoy
@pytest.mark.parametrize("authority,path,xfp,status,location", REDIRECT_CASES)
def test_differential_redirects(
    envoy: Any, authority: str, path: str, xfp: Optional[str], status: int, location: Optional[str]
) -> None:
    ports, tables, _ = envoy
    theirs = _send(ports["redirects"], authority, path, [("x-forwarded-proto", xfp)] if xfp else [])
    assert (theirs[0], theirs[2]) == (status, location)
    assert _ours(tables["redirects"], request(authority, path, xfp=xfp))[::2] == (status, location)


def _x(headers: list, prefix: str = "x-") -> list:
    return [(k.lower(), v) for k, v in headers if k.lower().startswith(prefix)]


@needs_envoy
@pytest.mark.parametrize(
    "path,headers",
    [
        ("/mut", []),
        ("/fmt?q", [("x-in", "hello"), ("x-in", "second")]),
        ("/redir?z=1", []),
    ],
)
def test_differential_response_headers(envoy: Any, path: str, headers: list) -> None:
    ports, tables, _ = envoy
    status, body, location, resp_headers, client = _send(ports["headers"], "h", path, headers)
    req = request("h", path, headers)
    entry = tables["headers"].route(req)
    hm = HeaderMap()
    ctx = FormatterContext(
        downstream_remote_address=Address(client[0], client[1]),
        downstream_local_address=Address("127.0.0.1", ports["headers"]),
        protocol="HTTP/1.1",
        request_headers=req,
    )
    entry.finalize_response_headers(hm, ctx)
    assert (status, body.decode(), location) == _ours(tables["headers"], req)
    assert _x(resp_headers) == x_headers(hm)


@needs_envoy
@pytest.mark.parametrize(
    "authority,path,headers",
    [
        (
            "h:5",
            "/pre/x?q=1",
            [("x-t-gone", "v"), ("x-a", "client"), ("x-b", "client"), ("x-d", "client"), ("x-rm-g", "client"), ("x-t-in", "in")],
        ),
        ("h", "/exact?z", [("x-c", "client")]),
        ("h", "/rx/abc?z", []),
        ("h", "/cI/x", []),
        ("h", "/plain", [("x-t-in", "a")]),
    ],
)
def test_differential_upstream_request(envoy: Any, authority: str, path: str, headers: list) -> None:
    ports, tables, echo_port = envoy
    status, body, _, resp_headers, client = _send(ports["upstream"], authority, path, headers)
    assert status == 200
    seen = json.loads(body)
    req = request(authority, path, headers)
    entry = tables["upstream"].route(req)
    assert entry.cluster == "echo"
    ctx = FormatterContext(downstream_remote_address=Address(*client[:2]), protocol="HTTP/1.1", request_headers=req)
    entry.finalize_request_headers(req, ctx)
    entry.apply_rewrites(req)
    assert seen["path"] == req.get(":path")
    assert dict((k.lower(), v) for k, v in seen["headers"])["host"] == req.get(":authority")
    keep = ("x-t-", "x-a", "x-b", "x-c", "x-d", "x-rm-g", "x-envoy-original-")
    theirs = [(k, v) for k, v in _x(seen["headers"]) if k.startswith(keep)]
    assert theirs == [(k, v) for k, v in x_headers(req) if k.startswith(keep)]
    # The response side, with the upstream's own response headers.
    # Envoy's %REQ()% in response headers reads the request as the router left it.
    ctx.upstream_host = Address("127.0.0.1", echo_port)
    ctx.request_headers = req
    resp = HeaderMap([("x-up-resp", "upstream")])
    entry.finalize_response_headers(resp, ctx)
    assert _x(resp_headers, "x-t-") == _x(list(resp), "x-t-")
    assert _x(resp_headers, "x-up-resp") == [("x-up-resp", "upstream")]
