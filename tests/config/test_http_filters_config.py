"""The health check and local rate limit filters and ``typed_per_filter_config``: what ``load_bootstrap`` reads.

The accept/reject cases shared with Envoy 1.40 are in ``http_filter_cases``
(run by ``test_envoy_parity``).
"""

from __future__ import annotations

from config_helpers import errors_of, load, mutated
from http_filter_cases import CONFIG_PATH, INVALID, STRICTER, VALID

from pyevent_envoy.config import bootstrap as b


def _filters(case):
    return load(mutated(case)).static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters


def test_filters_are_read_in_order_with_the_router_last():
    health_check, rate_limit, router = _filters(VALID["health-check-then-rate-limit"])
    assert isinstance(health_check.typed_config, b.HealthCheckFilterConfig)
    assert isinstance(rate_limit.typed_config, b.LocalRateLimit)
    assert isinstance(router.typed_config, b.Router)


def test_health_check_values():
    (hc, _) = _filters(VALID["health-check-everything"])
    config = hc.typed_config
    assert config.pass_through_mode is True and config.cache_time == 2.5
    assert dict(config.cluster_min_healthy_percentages) == {"app": 50.5, "other": 0.0}
    assert [h.name for h in config.headers] == [":path", "x-probe"]


def test_rate_limit_values_and_envoys_defaults():
    (minimal, _) = _filters(VALID["rate-limit-minimal"])
    config = minimal.typed_config
    assert config == b.LocalRateLimit(stat_prefix="rl")
    assert config.status == 429 and config.filter_enabled is None and config.always_consume_default_token_bucket
    (everything, _) = _filters(VALID["rate-limit-everything"])
    config = everything.typed_config
    assert config.token_bucket == b.TokenBucket(max_tokens=2, fill_interval=60.0, tokens_per_fill=1)
    assert config.status == 503
    assert config.filter_enabled == b.RuntimeFractionalPercent(numerator=100, denominator=100, runtime_key="rl.on")
    assert config.filter_enforced == b.RuntimeFractionalPercent(numerator=5000, denominator=10_000)
    assert config.enable_x_ratelimit_headers and config.local_rate_limit_per_downstream_connection
    assert [h.key for h in config.response_headers_to_add] == ["x-limited"]
    assert not config.always_consume_default_token_bucket
    (low, _) = _filters(VALID["rate-limit-status-below-400"])
    assert low.typed_config.status == 429  # Envoy's rule for a status below 400


def test_per_route_and_per_vhost_configs_are_kept_by_filter_name():
    route_config = load(mutated(VALID["per-route"])).static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config
    (route,) = route_config.virtual_hosts[0].routes
    assert route.typed_per_filter_config["rl"].stat_prefix == "route"
    vhost_config = load(mutated(VALID["per-vhost"])).static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config
    assert vhost_config.virtual_hosts[0].typed_per_filter_config["rl"].token_bucket.max_tokens == 2


def test_refusals_say_why():
    reasons = dict(errors_of(mutated(STRICTER["rate-limit-descriptors"][0])))
    assert "descriptors are not" in reasons[CONFIG_PATH + ".descriptors"]
    reasons = dict(errors_of(mutated(STRICTER["per-route-unknown-filter-name"][0])))
    (reason,) = [r for p, r in reasons.items() if p.endswith('typed_per_filter_config["rl-typo"]')]
    assert "no HTTP filter named 'rl-typo'" in reason and "'rl'" in reason
    reasons = dict(errors_of(mutated(INVALID["health-check-per-route"][0])))
    assert any("doesn't support virtual host or route specific configurations" in r for r in reasons.values())
    reasons = dict(errors_of(mutated(INVALID["filter-after-router"][0])))
    assert any("is terminal and must be the last filter" in r for r in reasons.values())
