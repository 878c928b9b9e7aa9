"""Cases for ``transport_socket`` (TLS) on filter chains and clusters; ``test_envoy_parity`` runs
them under Envoy 1.40 and load_bootstrap.

VALID both accept, INVALID both reject (ours at the expected YAML path),
STRICTER Envoy accepts and pyevent-envoy refuses on purpose.  The
certificates are made once, at import, with the ``openssl`` command line
into a temporary directory removed at exit; without ``openssl`` there are no
cases.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile

from config_helpers import CLUSTER_PATH, cluster, listener

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "proxy"))
from tls_certs import OPENSSL, CertificateAuthority  # noqa: E402  (the proxy tests' certificate maker)

CHAIN_PATH = "static_resources.listeners[0].filter_chains[0]"
DOWN_TLS = CHAIN_PATH + ".transport_socket.typed_config"
UP_TLS = CLUSTER_PATH + ".transport_socket.typed_config"
DOWN_URL = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
UP_URL = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"

VALID: dict = {}
INVALID: dict = {}
STRICTER: dict = {}

if OPENSSL is not None:
    _DIR = tempfile.mkdtemp(prefix="pyevent-envoy-tls-cases-")
    atexit.register(shutil.rmtree, _DIR, True)
    _CA = CertificateAuthority(_DIR)
    _SERVER = _CA.issue("localhost", ("localhost",))
    _OTHER = _CA.issue("other", ("other.example",))
    _NOT_PEM = os.path.join(_DIR, "not-pem.txt")
    with open(_NOT_PEM, "w") as _handle:
        _handle.write("this is not a certificate\n")
    with open(_SERVER.cert) as _handle:
        _SERVER_PEM = _handle.read()
    with open(_SERVER.key) as _handle:
        _SERVER_KEY_PEM = _handle.read()

    def _certificate(chain=_SERVER.cert, key=_SERVER.key):
        return {"certificate_chain": {"filename": chain}, "private_key": {"filename": key}}

    def _down(common=None, **context):
        common = {"tls_certificates": [_certificate()]} if common is None else common

        def mutate(c):
            typed = {"@type": DOWN_URL, "common_tls_context": common, **context}
            listener(c)["filter_chains"][0]["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": typed}

        return mutate

    def _up(common=None, **context):
        def mutate(c):
            typed = {"@type": UP_URL, **({"common_tls_context": common} if common is not None else {}), **context}
            cluster(c)["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": typed}

        return mutate

    def _params(**params):
        return {"tls_certificates": [_certificate()], "tls_params": params}

    _CA_VALIDATION = {"trusted_ca": {"filename": _CA.cert}}

    VALID = {
        "downstream-files": _down(),
        "downstream-inline": _down(
            {"tls_certificates": [{"certificate_chain": {"inline_string": _SERVER_PEM}, "private_key": {"inline_string": _SERVER_KEY_PEM}}]}
        ),
        "downstream-mtls": _down(
            {"tls_certificates": [_certificate()], "validation_context": _CA_VALIDATION}, require_client_certificate=True
        ),
        "downstream-versions": _down(_params(tls_minimum_protocol_version="TLSv1_2", tls_maximum_protocol_version="TLSv1_3")),
        "downstream-only-tls13": _down(_params(tls_minimum_protocol_version="TLSv1_3")),
        "downstream-cipher-suites": _down(_params(cipher_suites=["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384"])),
        "downstream-alpn": _down({"tls_certificates": [_certificate()], "alpn_protocols": ["http/1.1"]}),
        "downstream-raw-buffer": lambda c: listener(c)["filter_chains"][0].update(
            transport_socket={
                "name": "envoy.transport_sockets.raw_buffer",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"},
            }
        ),
        "upstream-no-verification": _up(),
        "upstream-verify-and-sni": _up({"validation_context": _CA_VALIDATION}, sni="localhost"),
        "upstream-client-certificate": _up({"tls_certificates": [_certificate()], "validation_context": _CA_VALIDATION}),
        "upstream-alpn": _up({"alpn_protocols": ["http/1.1"]}),
    }

    INVALID = {
        "downstream-missing-certificate-file": (
            _down({"tls_certificates": [_certificate(chain=os.path.join(_DIR, "missing.pem"))]}),
            DOWN_TLS + ".common_tls_context.tls_certificates[0].certificate_chain.filename",
        ),
        "downstream-missing-key-file": (
            _down({"tls_certificates": [_certificate(key=os.path.join(_DIR, "missing.key"))]}),
            DOWN_TLS + ".common_tls_context.tls_certificates[0].private_key.filename",
        ),
        "downstream-chain-not-pem": (
            _down({"tls_certificates": [_certificate(chain=_NOT_PEM)]}),
            DOWN_TLS + ".common_tls_context.tls_certificates[0].certificate_chain",
        ),
        "downstream-key-of-another-certificate": (
            _down({"tls_certificates": [_certificate(key=_OTHER.key)]}),
            DOWN_TLS + ".common_tls_context.tls_certificates[0].private_key",
        ),
        "downstream-no-certificate": (_down({}), DOWN_TLS + ".common_tls_context"),
        "downstream-unknown-version": (
            _down(_params(tls_minimum_protocol_version="TLSv9")),
            DOWN_TLS + ".common_tls_context.tls_params.tls_minimum_protocol_version",
        ),
        "downstream-unknown-cipher": (
            _down(_params(cipher_suites=["NOT-A-CIPHER"])),
            DOWN_TLS + ".common_tls_context.tls_params.cipher_suites",
        ),
        "downstream-unknown-field": (_down(require_sni_please=True), DOWN_TLS + ".require_sni_please"),
        "downstream-upstream-context-type": (
            lambda c: listener(c)["filter_chains"][0].update(
                transport_socket={"name": "envoy.transport_sockets.tls", "typed_config": {"@type": UP_URL}}
            ),
            DOWN_TLS + ".@type",
        ),
        "upstream-missing-ca-file": (
            _up({"validation_context": {"trusted_ca": {"filename": os.path.join(_DIR, "missing-ca.pem")}}}),
            UP_TLS + ".common_tls_context.validation_context.trusted_ca.filename",
        ),
        "upstream-sni-too-long": (_up(sni="a" * 256), UP_TLS + ".sni"),
    }

    STRICTER = {
        # Envoy accepts these and then fails every handshake, or asks for a certificate it cannot check.
        "downstream-minimum-above-maximum": (
            _down(_params(tls_minimum_protocol_version="TLSv1_3", tls_maximum_protocol_version="TLSv1_2")),
            DOWN_TLS + ".common_tls_context.tls_params",
        ),
        "downstream-mtls-without-ca": (
            _down(require_client_certificate=True),
            DOWN_TLS + ".require_client_certificate",
        ),
        "downstream-alpn-h2": (
            _down({"tls_certificates": [_certificate()], "alpn_protocols": ["h2", "http/1.1"]}),
            DOWN_TLS + ".common_tls_context.alpn_protocols[0]",
        ),
        "downstream-equal-preference-ciphers": (
            _down(_params(cipher_suites=["[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]"])),
            DOWN_TLS + ".common_tls_context.tls_params.cipher_suites[0]",
        ),
        "downstream-tls10": (
            _down(_params(tls_minimum_protocol_version="TLSv1_0")),
            DOWN_TLS + ".common_tls_context.tls_params.tls_minimum_protocol_version",
        ),
        "downstream-two-certificates": (
            _down({"tls_certificates": [_certificate(), _certificate(_OTHER.cert, _OTHER.key)]}),
            DOWN_TLS + ".common_tls_context.tls_certificates[1]",
        ),
        "downstream-ecdh-curves": (
            _down(_params(ecdh_curves=["X25519"])),
            DOWN_TLS + ".common_tls_context.tls_params.ecdh_curves",
        ),
        "downstream-require-sni": (_down(require_sni=True), DOWN_TLS + ".require_sni"),
        "upstream-match-subject-alt-names": (
            _up({"validation_context": {"trusted_ca": {"filename": _CA.cert}, "match_typed_subject_alt_names": [
                {"san_type": "DNS", "matcher": {"exact": "localhost"}}]}}),
            UP_TLS + ".common_tls_context.validation_context.match_typed_subject_alt_names",
        ),
    }
