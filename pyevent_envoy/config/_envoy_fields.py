"""The fields of the Envoy v3 messages that a pyevent-envoy bootstrap may contain.

Each entry lists every field Envoy 1.40 defines on that message, supported or
not, so that a field Envoy knows but pyevent-envoy does not support is told
apart from a misspelt one.
"""

from __future__ import annotations

__all__ = ["ENVOY_FIELDS"]

_ENVOY_FIELDS_TEXT = {
    "Bootstrap": (
        "node node_context_params static_resources dynamic_resources cluster_manager hds_config "
        "flags_path stats_sinks deferred_stat_options stats_config stats_flush_interval "
        "stats_flush_on_admin stats_eviction_interval watchdog watchdogs tracing layered_runtime "
        "admin overload_manager enable_dispatcher_stats header_prefix "
        "stats_server_version_override use_tcp_for_dns_lookups dns_resolution_config "
        "typed_dns_resolver_config bootstrap_extensions fatal_actions config_sources "
        "default_config_source default_socket_interface certificate_provider_instances "
        "inline_headers perf_tracing_file_path default_regex_engine xds_delegate_extension "
        "xds_config_tracker_extension listener_manager application_log_config "
        "grpc_async_client_manager_config memory_allocator_manager "
    ),
    "StaticResources": (
        "listeners clusters secrets "
    ),
    "Admin": (
        "access_log access_log_path profile_path address socket_options ignore_global_conn_limit "
        "allow_paths "
    ),
    "Node": (
        "id cluster metadata dynamic_parameters locality user_agent_name user_agent_version "
        "user_agent_build_version extensions client_features listening_addresses "
    ),
    "Listener": (
        "name address additional_addresses stat_prefix filter_chains fcds_config "
        "filter_chain_matcher use_original_dst default_filter_chain "
        "per_connection_buffer_limit_bytes metadata deprecated_v1 drain_type listener_filters "
        "listener_filters_timeout continue_on_listener_filters_timeout transparent freebind "
        "socket_options tcp_fast_open_queue_length traffic_direction udp_listener_config "
        "api_listener connection_balance_config reuse_port enable_reuse_port access_log "
        "tcp_backlog_size max_connections_to_accept_per_socket_event bind_to_port "
        "internal_listener enable_mptcp ignore_global_conn_limit bypass_overload_manager "
    ),
    "FilterChain": (
        "filter_chain_match filters use_proxy_proto metadata transport_socket "
        "transport_socket_connect_timeout name "
    ),
    "Filter": (
        "name typed_config config_discovery "
    ),
    "Address": (
        "socket_address pipe envoy_internal_address "
    ),
    "SocketAddress": (
        "protocol address port_value named_port resolver_name ipv4_compat "
        "network_namespace_filepath "
    ),
    "HttpConnectionManager": (
        "codec_type stat_prefix rds route_config scoped_routes http_filters add_user_agent "
        "tracing common_http_protocol_options http1_safe_max_connection_duration "
        "http_protocol_options http2_protocol_options http3_protocol_options server_name "
        "server_header_transformation scheme_header_transformation max_request_headers_kb "
        "stream_idle_timeout stream_flush_timeout request_timeout request_headers_timeout "
        "drain_timeout delayed_close_timeout access_log access_log_flush_interval "
        "flush_access_log_on_new_request access_log_options use_remote_address "
        "xff_num_trusted_hops original_ip_detection_extensions early_header_mutation_extensions "
        "internal_address_config skip_xff_append via generate_request_id "
        "preserve_external_request_id always_set_request_id_in_response "
        "forward_client_cert_details set_current_client_cert_details forward_client_cert_matcher "
        "proxy_100_continue represent_ipv4_remote_address_as_ipv4_mapped_ipv6 upgrade_configs "
        "normalize_path merge_slashes path_with_escaped_slashes_action request_id_extension "
        "local_reply_config strip_matching_host_port strip_any_host_port "
        "stream_error_on_invalid_http_message path_normalization_options strip_trailing_host_dot "
        "proxy_status_config typed_header_validation_config append_x_forwarded_port "
        "append_local_overload add_proxy_protocol_connection_state "
    ),
    "HttpConnectionManager.UpgradeConfig": (
        "upgrade_type filters enabled "
    ),
    "HttpConnectionManager.InternalAddressConfig": (
        "unix_sockets cidr_ranges "
    ),
    "CidrRange": (
        "address_prefix prefix_len "
    ),
    "HttpFilter": (
        "name typed_config config_discovery is_optional disabled "
    ),
    "Router": (
        "dynamic_stats start_child_span upstream_log upstream_log_options suppress_envoy_headers "
        "strict_check_headers respect_expected_rq_timeout "
        "suppress_grpc_request_failure_code_stats upstream_http_filters "
    ),
    "health_check.v3.HealthCheck": (
        "pass_through_mode cache_time cluster_min_healthy_percentages headers "
    ),
    "Percent": (
        "value "
    ),
    "local_ratelimit.v3.LocalRateLimit": (
        "stat_prefix status token_bucket filter_enabled filter_enforced "
        "request_headers_to_add_when_not_enforced response_headers_to_add descriptors stage "
        "local_rate_limit_per_downstream_connection local_cluster_rate_limit "
        "enable_x_ratelimit_headers vh_rate_limits always_consume_default_token_bucket "
        "rate_limited_as_resource_exhausted rate_limits max_dynamic_descriptors "
    ),
    "HttpStatus": (
        "code "
    ),
    "TokenBucket": (
        "max_tokens tokens_per_fill fill_interval "
    ),
    "RuntimeFractionalPercent": (
        "default_value runtime_key "
    ),
    "FractionalPercent": (
        "numerator denominator "
    ),
    "HttpProtocolOptions": (
        "idle_timeout max_connection_duration max_headers_count max_response_headers_kb "
        "max_stream_duration headers_with_underscores_action max_requests_per_connection "
    ),
    "Http1ProtocolOptions": (
        "allow_absolute_url accept_http_10 default_host_for_http_10 header_key_format "
        "enable_trailers allow_chunked_length override_stream_error_on_invalid_http_message "
        "send_fully_qualified_url use_balsa_parser allow_custom_methods ignore_http_11_upgrade "
    ),
    "AccessLog": (
        "name filter typed_config "
    ),
    "FileAccessLog": (
        "path format json_format typed_json_format log_format "
    ),
    "StdoutAccessLog": (
        "log_format "
    ),
    "StderrAccessLog": (
        "log_format "
    ),
    "SubstitutionFormatString": (
        "text_format json_format text_format_source omit_empty_values content_type formatters "
        "json_format_options "
    ),
    "DataSource": (
        "filename inline_bytes inline_string environment_variable watched_directory "
    ),
    "RouteConfiguration": (
        "name virtual_hosts vhds internal_only_headers response_headers_to_add "
        "response_headers_to_remove request_headers_to_add request_headers_to_remove "
        "most_specific_header_mutations_wins validate_clusters "
        "max_direct_response_body_size_bytes cluster_specifier_plugins request_mirror_policies "
        "ignore_port_in_host_matching vhost_header ignore_path_parameters_in_path_matching "
        "typed_per_filter_config metadata "
    ),
    "VirtualHost": (
        "name domains routes matcher require_tls virtual_clusters rate_limits "
        "request_headers_to_add request_headers_to_remove response_headers_to_add "
        "response_headers_to_remove cors typed_per_filter_config include_request_attempt_count "
        "include_attempt_count_in_response retry_policy retry_policy_typed_config hedge_policy "
        "include_is_timeout_retry_header per_request_buffer_limit_bytes request_body_buffer_limit "
        "request_mirror_policies metadata "
    ),
    "Route": (
        "name match route redirect direct_response filter_action non_forwarding_action metadata "
        "decorator typed_per_filter_config request_headers_to_add request_headers_to_remove "
        "response_headers_to_add response_headers_to_remove tracing "
        "per_request_buffer_limit_bytes stat_prefix request_body_buffer_limit "
    ),
    "RouteMatch": (
        "prefix path safe_regex connect_matcher path_separated_prefix path_match_policy "
        "case_sensitive runtime_fraction headers query_parameters grpc tls_context "
        "dynamic_metadata filter_state "
    ),
    "HeaderMatcher": (
        "name exact_match safe_regex_match range_match present_match prefix_match suffix_match "
        "contains_match string_match invert_match treat_missing_header_as_empty "
    ),
    "StringMatcher": (
        "exact prefix suffix safe_regex contains custom ignore_case "
    ),
    "RegexMatcher": (
        "google_re2 regex "
    ),
    "GoogleRE2": (
        "max_program_size "
    ),
    "RouteAction": (
        "cluster cluster_header weighted_clusters cluster_specifier_plugin "
        "inline_cluster_specifier_plugin cluster_not_found_response_code metadata_match "
        "prefix_rewrite regex_rewrite path_rewrite_policy path_rewrite host_rewrite_literal "
        "auto_host_rewrite host_rewrite_header host_rewrite_path_regex host_rewrite "
        "append_x_forwarded_host timeout idle_timeout flush_timeout early_data_policy "
        "retry_policy retry_policy_typed_config request_mirror_policies priority rate_limits "
        "include_vh_rate_limits hash_policy cors max_grpc_timeout grpc_timeout_offset "
        "upgrade_configs internal_redirect_policy internal_redirect_action max_internal_redirects "
        "hedge_policy max_stream_duration "
    ),
    "RetryPolicy": (
        "retry_on num_retries per_try_timeout per_try_idle_timeout retry_priority "
        "retry_host_predicate retry_options_predicates host_selection_retry_max_attempts "
        "retriable_status_codes retry_back_off rate_limited_retry_back_off retriable_headers "
        "retriable_request_headers "
    ),
    "RetryPolicy.RetryBackOff": (
        "base_interval max_interval "
    ),
    "RouteAction.UpgradeConfig": (
        "upgrade_type enabled connect_config "
    ),
    "WeightedCluster": (
        "clusters total_weight runtime_key_prefix header_name use_hash_policy "
    ),
    "ClusterWeight": (
        "name cluster_header weight metadata_match request_headers_to_add "
        "request_headers_to_remove response_headers_to_add response_headers_to_remove "
        "typed_per_filter_config host_rewrite_literal "
    ),
    "DirectResponseAction": (
        "status body body_format "
    ),
    "RedirectAction": (
        "https_redirect scheme_redirect host_redirect port_redirect path_redirect prefix_rewrite "
        "regex_rewrite response_code strip_query "
    ),
    "HeaderValueOption": (
        "header append append_action keep_empty_value "
    ),
    "HeaderValue": (
        "key value raw_value "
    ),
    "Cluster": (
        "transport_socket_matches transport_socket_matcher name alt_stat_name type cluster_type "
        "eds_cluster_config connect_timeout per_connection_buffer_limit_bytes lb_policy "
        "load_assignment health_checks max_requests_per_connection circuit_breakers "
        "upstream_http_protocol_options common_http_protocol_options http_protocol_options "
        "http2_protocol_options typed_extension_protocol_options dns_refresh_rate dns_jitter "
        "dns_failure_refresh_rate respect_dns_ttl dns_lookup_family dns_resolvers "
        "use_tcp_for_dns_lookups dns_resolution_config typed_dns_resolver_config "
        "wait_for_warm_on_init outlier_detection cleanup_interval upstream_bind_config "
        "lb_subset_config ring_hash_lb_config maglev_lb_config original_dst_lb_config "
        "least_request_lb_config round_robin_lb_config common_lb_config transport_socket metadata "
        "protocol_selection upstream_connection_options close_connections_on_host_health_failure "
        "ignore_health_on_host_removal filters load_balancing_policy lrs_server "
        "lrs_report_endpoint_metrics track_timeout_budgets upstream_config track_cluster_stats "
        "preconnect_policy connection_pool_per_downstream_connection "
    ),
    "HealthCheck": (
        "name timeout interval initial_jitter interval_jitter interval_jitter_percent "
        "unhealthy_threshold healthy_threshold alt_port reuse_connection http_health_check "
        "tcp_health_check grpc_health_check custom_health_check no_traffic_interval "
        "no_traffic_healthy_interval unhealthy_interval unhealthy_edge_interval "
        "healthy_edge_interval event_log_path event_logger event_service "
        "always_log_health_check_failures always_log_health_check_success tls_options "
        "transport_socket_match_criteria "
    ),
    "HealthCheck.HttpHealthCheck": (
        "host path send receive response_buffer_size request_headers_to_add "
        "request_headers_to_remove expected_statuses retriable_statuses codec_client_type "
        "service_name_matcher method "
    ),
    "HealthCheck.TcpHealthCheck": (
        "send receive proxy_protocol_config "
    ),
    "HealthCheck.Payload": (
        "text binary "
    ),
    "Int64Range": (
        "start end "
    ),
    "OutlierDetection": (
        "consecutive_5xx interval base_ejection_time max_ejection_percent enforcing_consecutive_5xx "
        "enforcing_success_rate success_rate_minimum_hosts success_rate_request_volume "
        "success_rate_stdev_factor consecutive_gateway_failure enforcing_consecutive_gateway_failure "
        "split_external_local_origin_errors consecutive_local_origin_failure "
        "enforcing_consecutive_local_origin_failure enforcing_local_origin_success_rate "
        "failure_percentage_threshold enforcing_failure_percentage "
        "enforcing_failure_percentage_local_origin failure_percentage_minimum_hosts "
        "failure_percentage_request_volume max_ejection_time max_ejection_time_jitter "
        "successful_active_health_check_uneject_host monitors always_eject_one_host "
        "detect_degraded_hosts "
    ),
    "CircuitBreakers": (
        "thresholds per_host_thresholds "
    ),
    "Thresholds": (
        "priority max_connections max_pending_requests max_requests max_retries retry_budget "
        "track_remaining max_connection_pools "
    ),
    "ClusterLoadAssignment": (
        "cluster_name endpoints named_endpoints policy "
    ),
    "LocalityLbEndpoints": (
        "locality metadata lb_endpoints load_balancer_endpoints leds_cluster_locality_config "
        "load_balancing_weight priority proximity "
    ),
    "LbEndpoint": (
        "endpoint endpoint_name health_status metadata load_balancing_weight "
    ),
    "Endpoint": (
        "address health_check_config hostname additional_addresses "
    ),
    "UpstreamHttpProtocolOptions": (
        "common_http_protocol_options upstream_http_protocol_options explicit_http_config "
        "use_downstream_protocol_config auto_config http_filters header_validation_config "
        "outlier_detection request_mirror_policies hash_policy retry_policy "
    ),
    "ExplicitHttpConfig": (
        "http_protocol_options http2_protocol_options http3_protocol_options "
    ),
    # HTTP filters before the router.
    "Compressor": (
        "content_length content_type disable_on_etag_header remove_accept_encoding_header "
        "runtime_enabled compressor_library request_direction_config response_direction_config "
        "choose_first "
    ),
    "Compressor.CommonDirectionConfig": (
        "enabled min_content_length content_type content_type_matcher "
    ),
    "Compressor.RequestDirectionConfig": (
        "common_config "
    ),
    "Compressor.ResponseDirectionConfig": (
        "common_config disable_on_etag_header weaken_etag_on_compress remove_accept_encoding_header "
        "uncompressible_response_codes status_header_enabled "
    ),
    "TypedExtensionConfig": (
        "name typed_config "
    ),
    "RuntimeFeatureFlag": (
        "default_value runtime_key "
    ),
    "Gzip": (
        "memory_level compression_level compression_strategy window_bits chunk_size "
    ),
    "Buffer": (
        "max_request_bytes "
    ),
    "HTTPFault": (
        "delay abort upstream_cluster headers downstream_nodes max_active_faults "
        "response_rate_limit delay_percent_runtime abort_percent_runtime delay_duration_runtime "
        "abort_http_status_runtime max_active_faults_runtime response_rate_limit_percent_runtime "
        "abort_grpc_status_runtime disable_downstream_cluster_stats filter_metadata "
    ),
    "FaultAbort": (
        "http_status grpc_status header_abort percentage response_body "
    ),
    "FaultAbort.HeaderAbort": "",
    "FaultDelay": (
        "fixed_delay header_delay percentage "
    ),
    "FaultDelay.HeaderDelay": "",
    # TLS: the transport socket envoy.transport_sockets.tls.
    "TransportSocket": (
        "name typed_config "
    ),
    "DownstreamTlsContext": (
        "common_tls_context require_client_certificate require_sni session_ticket_keys "
        "session_ticket_keys_sds_secret_config disable_stateless_session_resumption "
        "disable_stateful_session_resumption session_timeout ocsp_staple_policy "
        "full_scan_certs_on_sni_mismatch prefer_client_ciphers "
    ),
    "UpstreamTlsContext": (
        "common_tls_context sni auto_host_sni auto_sni_san_validation allow_renegotiation "
        "max_session_keys enforce_rsa_key_usage "
    ),
    "CommonTlsContext": (
        "tls_params tls_certificates tls_certificate_sds_secret_configs "
        "tls_certificate_provider_instance custom_tls_certificate_selector "
        "tls_certificate_certificate_provider tls_certificate_certificate_provider_instance "
        "validation_context validation_context_sds_secret_config combined_validation_context "
        "validation_context_certificate_provider validation_context_certificate_provider_instance "
        "alpn_protocols custom_handshaker key_log "
    ),
    "TlsParameters": (
        "tls_minimum_protocol_version tls_maximum_protocol_version cipher_suites ecdh_curves "
        "signature_algorithms compliance_policies "
    ),
    "TlsCertificate": (
        "certificate_chain private_key pkcs12 watched_directory private_key_provider password "
        "ocsp_staple signed_certificate_timestamp "
    ),
    "CertificateValidationContext": (
        "trusted_ca ca_certificate_provider_instance system_root_certs watched_directory "
        "verify_certificate_spki verify_certificate_hash match_typed_subject_alt_names "
        "match_subject_alt_names require_signed_certificate_timestamp crl "
        "allow_expired_certificate trust_chain_verification custom_validator_config "
        "only_verify_leaf_cert_crl max_verify_depth "
    ),
}

ENVOY_FIELDS: dict[str, frozenset[str]] = {
    message: frozenset(text.split()) for message, text in _ENVOY_FIELDS_TEXT.items()
}
