"""Cases for the compressor, buffer and fault HTTP filters; ``test_envoy_parity`` runs them.

VALID both accept, INVALID both reject (ours at the expected YAML path),
STRICTER Envoy accepts and pyevent-envoy refuses on purpose, naming the
field's YAML path and saying why.
"""

from __future__ import annotations

from config_helpers import HCM_PATH, hcm

F0 = HCM_PATH + ".http_filters[0].typed_config"
COMPRESSOR = "type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor"
GZIP = "type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip"
BUFFER = "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer"
FAULT = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"


def _before_router(*configs):
    """Put filters with these typed_configs before the router."""

    def mutate(c):
        filters = hcm(c)["http_filters"]
        for i, config in enumerate(configs):
            filters.insert(i, {"name": f"filter{i}", "typed_config": config})

    return mutate


def _compressor(gzip=None, **fields):
    library = {"name": "text", "typed_config": {"@type": GZIP, **(gzip or {})}}
    return {"@type": COMPRESSOR, "compressor_library": library, **fields}


def _fault(**fields):
    return {"@type": FAULT, **fields}


def _buffer(**fields):
    return {"@type": BUFFER, **fields}


VALID = {
    "compressor-minimal": _before_router(_compressor()),
    "compressor-everything": _before_router(
        _compressor(
            gzip={"memory_level": 9, "compression_level": "BEST_COMPRESSION", "compression_strategy": "FILTERED", "window_bits": 15, "chunk_size": 65536},
            response_direction_config={
                "common_config": {
                    "enabled": {"default_value": False, "runtime_key": "compression.enabled"},
                    "min_content_length": 100,
                    "content_type": ["text/html", "application/json"],
                },
                "disable_on_etag_header": True,
                "remove_accept_encoding_header": True,
            },
            choose_first=True,
        )
    ),
    "compressor-levels-by-name": _before_router(_compressor(gzip={"compression_level": "COMPRESSION_LEVEL_3", "compression_strategy": "HUFFMAN_ONLY"})),
    "buffer": _before_router(_buffer(max_request_bytes=1024)),
    "fault-abort": _before_router(_fault(abort={"http_status": 503, "percentage": {"numerator": 50, "denominator": "TEN_THOUSAND"}})),
    "fault-everything": _before_router(
        _fault(
            abort={"header_abort": {}, "percentage": {"numerator": 100}},
            delay={"header_delay": {}, "percentage": {"numerator": 1, "denominator": "MILLION"}},
            upstream_cluster="app",
            headers=[{"name": "x-fault", "present_match": True}],
            downstream_nodes=["node-a"],
            max_active_faults=10,
            disable_downstream_cluster_stats=True,
        )
    ),
    "fault-fixed-delay": _before_router(_fault(delay={"fixed_delay": "0.5s", "percentage": {"numerator": 100}})),
    "fault-nothing": _before_router(_fault()),
    "three-filters": _before_router(_fault(), _buffer(max_request_bytes=10), _compressor()),
}

INVALID = {
    "compressor-gzip-window-bits": (_before_router(_compressor(gzip={"window_bits": 8})), F0 + ".compressor_library.typed_config.window_bits"),
    "compressor-gzip-memory-level": (_before_router(_compressor(gzip={"memory_level": 10})), F0 + ".compressor_library.typed_config.memory_level"),
    "compressor-gzip-chunk-size": (_before_router(_compressor(gzip={"chunk_size": 100})), F0 + ".compressor_library.typed_config.chunk_size"),
    "compressor-gzip-level": (
        _before_router(_compressor(gzip={"compression_level": "COMPRESSION_LEVEL_10"})),
        F0 + ".compressor_library.typed_config.compression_level",
    ),
    "compressor-library-type": (
        _before_router({"@type": COMPRESSOR, "compressor_library": {"name": "x", "typed_config": {"@type": BUFFER, "max_request_bytes": 1}}}),
        F0 + ".compressor_library.typed_config.@type",
    ),
    "compressor-library-unnamed": (
        _before_router({"@type": COMPRESSOR, "compressor_library": {"typed_config": {"@type": GZIP}}}),
        F0 + ".compressor_library.name",
    ),
    "compressor-unknown-field": (_before_router(_compressor(compression=True)), F0 + ".compression"),
    "buffer-zero": (_before_router(_buffer(max_request_bytes=0)), F0 + ".max_request_bytes"),
    "buffer-missing-limit": (_before_router(_buffer()), F0 + ".max_request_bytes"),
    "fault-abort-status": (_before_router(_fault(abort={"http_status": 600})), F0 + ".abort.http_status"),
    "fault-abort-without-error": (_before_router(_fault(abort={"percentage": {"numerator": 1}})), F0 + ".abort"),
    "fault-delay-zero": (_before_router(_fault(delay={"fixed_delay": "0s"})), F0 + ".delay.fixed_delay"),
    "fault-delay-without-kind": (_before_router(_fault(delay={"percentage": {"numerator": 1}})), F0 + ".delay"),
    "fault-denominator": (
        _before_router(_fault(abort={"http_status": 503, "percentage": {"numerator": 1, "denominator": "THOUSAND"}})),
        F0 + ".abort.percentage.denominator",
    ),
    "filter-last": (lambda c: hcm(c).update(http_filters=[{"name": "buffer", "typed_config": _buffer(max_request_bytes=1)}]), HCM_PATH + ".http_filters[0]"),
}

STRICTER = {
    "compressor-request-direction": (
        _before_router(_compressor(request_direction_config={"common_config": {"min_content_length": 10}})),
        F0 + ".request_direction_config",
    ),
    "compressor-weaken-etag": (
        _before_router(_compressor(response_direction_config={"weaken_etag_on_compress": True})),
        F0 + ".response_direction_config.weaken_etag_on_compress",
    ),
    "compressor-uncompressible-codes": (
        _before_router(_compressor(response_direction_config={"uncompressible_response_codes": [206]})),
        F0 + ".response_direction_config.uncompressible_response_codes",
    ),
    "compressor-content-type-matcher": (
        _before_router(_compressor(response_direction_config={"common_config": {"content_type_matcher": {"exact": "text/html"}}})),
        F0 + ".response_direction_config.common_config.content_type_matcher",
    ),
    "fault-grpc-status": (_before_router(_fault(abort={"grpc_status": 14})), F0 + ".abort.grpc_status"),
    "fault-response-body": (_before_router(_fault(abort={"http_status": 503, "response_body": "no"})), F0 + ".abort.response_body"),
    "fault-rate-limit": (
        _before_router(_fault(response_rate_limit={"fixed_limit": {"limit_kbps": 1}, "percentage": {"numerator": 100}})),
        F0 + ".response_rate_limit",
    ),
    "fault-runtime-key": (_before_router(_fault(abort_percent_runtime="fault.abort")), F0 + ".abort_percent_runtime"),
}
