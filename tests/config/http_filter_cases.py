"""Cases for the health check and local rate limit HTTP filters and ``typed_per_filter_config``.

``test_envoy_parity`` runs them under Envoy 1.40 and load_bootstrap: VALID
both accept, INVALID both reject (ours at the expected YAML path),
STRICTER Envoy accepts and pyevent-envoy refuses on purpose, naming the
field's YAML path and saying why.
"""

from __future__ import annotations

from config_helpers import HCM_PATH, ROUTE_PATH, hcm, route, vhost

HEALTH_CHECK = "type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck"
LOCAL_RATELIMIT = "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
FILTER_PATH = HCM_PATH + ".http_filters[0]"
CONFIG_PATH = FILTER_PATH + ".typed_config"
VH_PATH = HCM_PATH + ".route_config.virtual_hosts[0]"
BUCKET = {"max_tokens": 2, "tokens_per_fill": 1, "fill_interval": "60s"}


def _health_check(**fields):
    return {"@type": HEALTH_CHECK, "pass_through_mode": False, **fields}


def _rate_limit(**fields):
    return {"@type": LOCAL_RATELIMIT, "stat_prefix": "rl", **fields}


def _before_router(*configs, name="filter"):
    """The given filter configs in front of the router, named ``name``, ``name1``..."""

    def mutate(c):
        entries = [{"name": name if i == 0 else f"{name}{i}", "typed_config": t} for i, t in enumerate(configs)]
        hcm(c)["http_filters"][:0] = entries

    return mutate


def _per_route(per_route=None, per_vhost=None, name="rl", filter_config=None):
    """A local rate limit filter named ``name`` with per-route / per-virtual-host configs."""

    def mutate(c):
        _before_router(filter_config or _rate_limit(), name=name)(c)
        if per_route is not None:
            route(c)["typed_per_filter_config"] = per_route
        if per_vhost is not None:
            vhost(c)["typed_per_filter_config"] = per_vhost

    return mutate


VALID = {
    "health-check-minimal": _before_router(_health_check()),
    "health-check-everything": _before_router(
        _health_check(
            pass_through_mode=True,
            cache_time="2.5s",
            cluster_min_healthy_percentages={"app": {"value": 50.5}, "other": {"value": 0}},
            headers=[{"name": ":path", "string_match": {"exact": "/healthz"}}, {"name": "x-probe", "present_match": True}],
        )
    ),
    "health-check-zero-cache-time": _before_router(_health_check(cache_time="0s")),
    "rate-limit-minimal": _before_router(_rate_limit()),
    "rate-limit-everything": _before_router(
        _rate_limit(
            token_bucket=BUCKET,
            status={"code": "ServiceUnavailable"},
            filter_enabled={"default_value": {"numerator": 100, "denominator": "HUNDRED"}, "runtime_key": "rl.on"},
            filter_enforced={"default_value": {"numerator": 5000, "denominator": "TEN_THOUSAND"}},
            request_headers_to_add_when_not_enforced=[{"header": {"key": "x-limited", "value": "yes"}}],
            response_headers_to_add=[{"header": {"key": "x-limited", "value": "%REQ(x-client)%"}}],
            local_rate_limit_per_downstream_connection=True,
            enable_x_ratelimit_headers="DRAFT_VERSION_03",
            always_consume_default_token_bucket=False,
        )
    ),
    "rate-limit-status-below-400": _before_router(_rate_limit(status={"code": 200})),
    "rate-limit-status-number": _before_router(_rate_limit(status={"code": 503})),
    "rate-limit-no-tokens": _before_router(_rate_limit(token_bucket={"max_tokens": 0, "fill_interval": "1s"})),
    "rate-limit-percent-above-whole": _before_router(_rate_limit(filter_enabled={"default_value": {"numerator": 250}})),
    "rate-limit-x-headers-off": _before_router(_rate_limit(enable_x_ratelimit_headers="OFF")),
    "health-check-then-rate-limit": _before_router(_health_check(), _rate_limit()),
    "two-filters-one-name": lambda c: _before_router(_rate_limit(), _rate_limit(stat_prefix="b"))(c)
    or hcm(c)["http_filters"][1].update(name="filter"),
    "per-route": _per_route(per_route={"rl": _rate_limit(stat_prefix="route", token_bucket=BUCKET)}),
    "per-vhost": _per_route(per_vhost={"rl": _rate_limit(stat_prefix="vhost", token_bucket=BUCKET)}),
}

INVALID = {
    "health-check-no-pass-through-mode": (
        _before_router({"@type": HEALTH_CHECK}),
        CONFIG_PATH + ".pass_through_mode",
    ),
    "health-check-negative-cache-time": (
        _before_router(_health_check(pass_through_mode=True, cache_time="-1s")),
        CONFIG_PATH + ".cache_time",
    ),
    "health-check-cache-without-pass-through": (_before_router(_health_check(cache_time="1s")), CONFIG_PATH + ".cache_time"),
    "health-check-percent-out-of-range": (
        _before_router(_health_check(cluster_min_healthy_percentages={"app": {"value": 100.5}})),
        CONFIG_PATH + ".cluster_min_healthy_percentages.app.value",
    ),
    "health-check-percent-not-a-message": (
        _before_router(_health_check(cluster_min_healthy_percentages={"app": 5})),
        CONFIG_PATH + ".cluster_min_healthy_percentages.app",
    ),
    "health-check-empty-header-name": (
        _before_router(_health_check(headers=[{"name": ""}])),
        CONFIG_PATH + ".headers[0].name",
    ),
    "health-check-unknown-field": (_before_router(_health_check(endpoint="/healthz")), CONFIG_PATH + ".endpoint"),
    "health-check-per-route": (
        _per_route(per_route={"rl": _health_check()}, name="rl", filter_config=_health_check()),
        ROUTE_PATH + ".typed_per_filter_config.rl.@type",
    ),
    "rate-limit-no-stat-prefix": (_before_router({"@type": LOCAL_RATELIMIT}), CONFIG_PATH + ".stat_prefix"),
    "rate-limit-no-fill-interval": (
        _before_router(_rate_limit(token_bucket={"max_tokens": 1})),
        CONFIG_PATH + ".token_bucket.fill_interval",
    ),
    "rate-limit-fill-interval-under-50ms": (
        _before_router(_rate_limit(token_bucket={"max_tokens": 1, "fill_interval": "0.01s"})),
        CONFIG_PATH + ".token_bucket.fill_interval",
    ),
    "rate-limit-zero-tokens-per-fill": (
        _before_router(_rate_limit(token_bucket={"max_tokens": 1, "tokens_per_fill": 0, "fill_interval": "1s"})),
        CONFIG_PATH + ".token_bucket.tokens_per_fill",
    ),
    "rate-limit-undefined-status": (_before_router(_rate_limit(status={"code": 99})), CONFIG_PATH + ".status.code"),
    "rate-limit-empty-status": (_before_router(_rate_limit(status={})), CONFIG_PATH + ".status.code"),
    # 418 is not one of Envoy's StatusCode values.
    "rate-limit-teapot-status": (_before_router(_rate_limit(status={"code": 418})), CONFIG_PATH + ".status.code"),
    "rate-limit-unknown-denominator": (
        _before_router(_rate_limit(filter_enabled={"default_value": {"numerator": 1, "denominator": "THOUSAND"}})),
        CONFIG_PATH + ".filter_enabled.default_value.denominator",
    ),
    "rate-limit-percent-without-default": (
        _before_router(_rate_limit(filter_enforced={"runtime_key": "rl.enforced"})),
        CONFIG_PATH + ".filter_enforced.default_value",
    ),
    "rate-limit-eleven-headers": (
        _before_router(_rate_limit(response_headers_to_add=[{"header": {"key": f"x-{i}", "value": "v"}} for i in range(11)])),
        CONFIG_PATH + ".response_headers_to_add",
    ),
    "per-route-without-token-bucket": (
        _per_route(per_route={"rl": _rate_limit(stat_prefix="route")}),
        ROUTE_PATH + ".typed_per_filter_config.rl.token_bucket",
    ),
    "per-route-unknown-type": (
        _per_route(per_route={"rl": {"@type": "type.googleapis.com/envoy.extensions.filters.http.nope.v3.Nope"}}),
        ROUTE_PATH + ".typed_per_filter_config.rl.@type",
    ),
    "per-route-router": (
        _per_route(per_route={"envoy.filters.http.router": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}),
        ROUTE_PATH + '.typed_per_filter_config["envoy.filters.http.router"].@type',
    ),
    "filter-after-router": (
        lambda c: hcm(c)["http_filters"].append({"name": "rl", "typed_config": _rate_limit()}),
        HCM_PATH + ".http_filters[0]",
    ),
}

STRICTER = {
    # Any other HTTP filter stays refused.
    "other-filter": (
        _before_router({"@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"}),
        CONFIG_PATH + ".@type",
    ),
    "rate-limit-descriptors": (
        _before_router(_rate_limit(token_bucket=BUCKET, descriptors=[{"entries": [{"key": "a", "value": "b"}], "token_bucket": BUCKET}])),
        CONFIG_PATH + ".descriptors",
    ),
    "rate-limit-stage": (_before_router(_rate_limit(stage=1)), CONFIG_PATH + ".stage"),
    "rate-limit-resource-exhausted": (
        _before_router(_rate_limit(rate_limited_as_resource_exhausted=True)),
        CONFIG_PATH + ".rate_limited_as_resource_exhausted",
    ),
    # Envoy ignores an override no filter uses; a misspelt name would leave the route without it.
    "per-route-unknown-filter-name": (
        _per_route(per_route={"rl-typo": _rate_limit(stat_prefix="route", token_bucket=BUCKET)}),
        ROUTE_PATH + '.typed_per_filter_config["rl-typo"]',
    ),
    "per-vhost-unknown-filter-name": (
        _per_route(per_vhost={"other": _rate_limit(stat_prefix="vhost", token_bucket=BUCKET)}),
        VH_PATH + ".typed_per_filter_config.other",
    ),
    "per-route-filter-config-wrapper": (
        _per_route(per_route={"rl": {"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig",
                                     "config": _rate_limit(stat_prefix="route", token_bucket=BUCKET)}}),
        ROUTE_PATH + ".typed_per_filter_config.rl.@type",
    ),
    "route-config-typed-per-filter-config": (
        lambda c: _per_route()(c) or hcm(c)["route_config"].update(
            typed_per_filter_config={"rl": _rate_limit(stat_prefix="rc", token_bucket=BUCKET)}),
        HCM_PATH + ".route_config.typed_per_filter_config",
    ),
}
