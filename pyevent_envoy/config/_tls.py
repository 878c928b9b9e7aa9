"""Reading a ``transport_socket`` (filter chains and clusters): Envoy's TLS transport socket.

Kept apart from :mod:`pyevent_envoy.config._parse`, which calls
:func:`transport_socket` from its filter-chain and cluster readers.  A
context is also built here once with :func:`~pyevent_envoy.network.ssl_socket.ssl_context_for`,
so that a certificate or key that does not load is a config error with its
YAML path, reported before anything binds (``--mode validate`` too).
"""

from __future__ import annotations

import enum
from typing import Any, Optional

from pyevent_envoy.config import bootstrap as b
from pyevent_envoy.config._parse import _Ctx, _data_source_text, _msg, _Msg, _typed_config
from pyevent_envoy.network.ssl_socket import TlsContextError, ssl_context_for

__all__ = ["transport_socket"]

DOWNSTREAM_TLS_TYPE_URL = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
UPSTREAM_TLS_TYPE_URL = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
RAW_BUFFER_TYPE_URL = "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"
_PLAINTEXT = object()  # a raw_buffer transport socket: what no transport_socket means


class TlsProtocol(enum.IntEnum):
    """Envoy's ``TlsParameters.TlsProtocol`` (names upper-cased: the enum reader matches any case)."""

    TLS_AUTO = 0
    TLSV1_0 = 1
    TLSV1_1 = 2
    TLSV1_2 = 3
    TLSV1_3 = 4


def _version_name(member: TlsProtocol) -> Optional[str]:
    return None if member is TlsProtocol.TLS_AUTO else member.name.replace("TLSV", "TLSv")


def transport_socket(ctx: _Ctx, path: str, raw: Any, *, downstream: bool) -> Optional[b.TlsContext]:
    """A ``config.core.v3.TransportSocket``: TLS (the context), raw_buffer (None), or an error."""
    m = _msg(ctx, path, raw, "TransportSocket", {"name", "typed_config"})
    if m is None:
        return None
    m.string("name", min_len=1)
    if not m.has("typed_config"):
        m.error("typed_config", "is required")
        return None
    tls_url = DOWNSTREAM_TLS_TYPE_URL if downstream else UPSTREAM_TLS_TYPE_URL
    builders = {
        tls_url: lambda c, p, r: _tls_context(c, p, r, downstream=downstream),
        RAW_BUFFER_TYPE_URL: _raw_buffer,
    }
    result = m.message("typed_config", lambda c, p, r: _typed_config(c, p, r, builders, "transport socket"))
    return None if result is _PLAINTEXT else result


def _raw_buffer(ctx: _Ctx, path: str, raw: Any) -> object:
    for key in raw:
        if key != "@type":
            ctx.error(f"{path}.{key}", "unknown field of RawBuffer")
    return _PLAINTEXT


def _tls_context(ctx: _Ctx, path: str, raw: Any, *, downstream: bool) -> Optional[b.TlsContext]:
    mark = ctx.mark()
    if downstream:
        m = _Msg(ctx, path, raw, "DownstreamTlsContext", {"common_tls_context", "require_client_certificate"}, any_payload=True)
    else:
        m = _Msg(ctx, path, raw, "UpstreamTlsContext", {"common_tls_context", "sni"}, any_payload=True)
    require_client = m.boolean("require_client_certificate") if downstream else False
    sni = "" if downstream else m.string("sni")
    if len(sni) > 255:
        m.error("sni", "must be at most 255 characters long")
    common = m.message("common_tls_context", _common_tls_context) if m.has("common_tls_context") else {}
    if not ctx.clean_since(mark) or common is None:
        return None
    context = b.TlsContext(downstream=downstream, require_client_certificate=require_client, sni=sni, **common)
    if downstream and not context.tls_certificates:
        m.error("common_tls_context", "no TLS certificates found for server context (tls_certificates is required)")
        return None
    if require_client and context.trusted_ca is None:
        m.error("require_client_certificate", "needs common_tls_context.validation_context.trusted_ca to verify client certificates")
        return None
    try:
        ssl_context_for(context)
    except TlsContextError as exc:
        ctx.error(f"{m.at('common_tls_context')}.{exc.field}", exc.reason)
        return None
    return context


def _common_tls_context(ctx: _Ctx, path: str, raw: Any) -> Optional[dict]:
    mark = ctx.mark()
    m = _msg(ctx, path, raw, "CommonTlsContext", {"tls_params", "tls_certificates", "validation_context", "alpn_protocols"})
    if m is None:
        return None
    certificates = m.repeated("tls_certificates", _tls_certificate)
    if len(certificates) > 1:
        ctx.error(f"{m.at('tls_certificates')}[1]", "only one TLS certificate per context is supported by pyevent-envoy")
    trusted_ca = m.message("validation_context", _validation_context)
    alpn = m.repeated_strings("alpn_protocols", min_len=1)
    for index, protocol in enumerate(alpn):
        if protocol != "http/1.1":
            # The connection manager speaks HTTP/1.1 only: offering h2 would promise a protocol it cannot serve.
            ctx.error(f"{m.at('alpn_protocols')}[{index}]", f"ALPN protocol {protocol!r} is not supported (only http/1.1 is served)")
    params = m.message("tls_params", _tls_params) or {}
    if not ctx.clean_since(mark):
        return None
    return dict(tls_certificates=certificates, trusted_ca=trusted_ca, alpn_protocols=alpn, **params)


def _tls_params(ctx: _Ctx, path: str, raw: Any) -> Optional[dict]:
    m = _msg(ctx, path, raw, "TlsParameters", {"tls_minimum_protocol_version", "tls_maximum_protocol_version", "cipher_suites"})
    if m is None:
        return None
    supported = (TlsProtocol.TLS_AUTO, TlsProtocol.TLSV1_2, TlsProtocol.TLSV1_3)
    low = m.enum("tls_minimum_protocol_version", TlsProtocol, TlsProtocol.TLS_AUTO, supported=supported)
    high = m.enum("tls_maximum_protocol_version", TlsProtocol, TlsProtocol.TLS_AUTO, supported=supported)
    ciphers = m.repeated_strings("cipher_suites", min_len=1)
    for index, name in enumerate(ciphers):
        if "[" in name or "|" in name or ":" in name:
            ctx.error(
                f"{m.at('cipher_suites')}[{index}]",
                "BoringSSL's equal-preference groups ([A|B]) have no OpenSSL equivalent: list the cipher suites one by one",
            )
    return dict(
        tls_minimum_protocol_version=_version_name(low),
        tls_maximum_protocol_version=_version_name(high),
        cipher_suites=ciphers,
    )


def _tls_certificate(ctx: _Ctx, path: str, raw: Any) -> Optional[b.TlsCertificate]:
    mark = ctx.mark()
    m = _msg(ctx, path, raw, "TlsCertificate", {"certificate_chain", "private_key"})
    if m is None:
        return None
    if not m.has("certificate_chain"):
        m.error("certificate_chain", "is required")
    if not m.has("private_key"):
        m.error("private_key", "is required")
    chain = m.message("certificate_chain", _pem_source)
    key = m.message("private_key", _pem_source)
    if not ctx.clean_since(mark) or chain is None or key is None:
        return None
    return b.TlsCertificate(certificate_chain=chain, private_key=key)


def _validation_context(ctx: _Ctx, path: str, raw: Any) -> Optional[bytes]:
    m = _msg(ctx, path, raw, "CertificateValidationContext", {"trusted_ca"})
    if m is None:
        return None
    if not m.has("trusted_ca"):
        # Envoy accepts an empty validation context and then verifies nothing.
        return None
    return m.message("trusted_ca", _pem_source)


def _pem_source(ctx: _Ctx, path: str, raw: Any) -> Optional[bytes]:
    """A ``DataSource`` holding PEM: ``filename`` (read now) or ``inline_string``/``inline_bytes``."""
    m = _msg(ctx, path, raw, "DataSource", {"filename", "inline_string", "inline_bytes"})
    if m is None:
        return None
    which = m.oneof("specifier", ("filename", "inline_bytes", "inline_string", "environment_variable"), required=True)
    if which == "filename":
        name = m.string("filename", min_len=1)
        if not name:
            return None
        try:
            with open(name, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            m.error("filename", f"cannot read {name}: {exc.strerror or exc}")
            return None
    elif which == "inline_string":
        data = m.string("inline_string", min_len=1).encode()
    elif which == "inline_bytes":
        data = _data_source_text(ctx, path, raw)
        if data is None:
            return None  # reported there
    else:
        return None
    if b"-----BEGIN" not in data:
        ctx.error(path, f"is not PEM (no -----BEGIN line in {len(data)} bytes)")
        return None
    return data
