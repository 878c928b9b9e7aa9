"""TLS connections (Envoy's ``SslSocket`` beside ``RawBufferSocket``).

Envoy puts TLS behind its ``TransportSocket`` interface: a connection reads
and writes through ``RawBufferSocket`` or ``SslSocket``.  Here the plaintext
:class:`~pyevent_envoy.network.connection_impl.ConnectionImpl` keeps its
direct C reads and writes with no transport indirection (one more call per
read would cost every plaintext connection); TLS is a subclass,
:class:`SslConnectionImpl`, that overrides the read and write paths.

Why the standard library's :mod:`ssl` with ``SSLObject`` over two
``MemoryBIO`` objects: that is OpenSSL, already linked into every CPython,
so TLS adds no dependency; and a memory BIO leaves the socket to the
connection's own edge-triggered file event and C read/write loop, so the
handshake and every record run non-blocking on the worker's dispatcher,
never in a blocking ``SSLSocket`` call.  The ciphertext path is: socket ->
``_sockio.read`` -> incoming BIO -> ``SSLObject.read`` -> read buffer
(plaintext, as the filters see it); write buffer -> ``SSLObject.write`` ->
outgoing BIO -> ``_sockio.write`` -> socket.

Flow control works on plaintext as on a raw connection: the read buffer's
high watermark stops decryption and socket reads; the write buffer's
watermarks are the connection's; at most one encrypted chunk
(:data:`ENCRYPT_CHUNK` plus record overhead) waits for the socket.  The
byte counts (``bytes_read``, ``bytes_written``, connection stats) are
plaintext bytes, as Envoy's ``SslSocket`` reports them.

Closing: a local close after a finished handshake sends ``close_notify``
first (Envoy's ``shutdownSsl``), so FLUSH_WRITE ends with the whole
response and a clean TLS shutdown.  A peer's ``close_notify`` is its end of
stream.  A handshake failure closes that connection only and is counted
(``ssl.connection_error`` and the verify counters) in the
:class:`~pyevent_envoy.stats.SslStats` handed to the connection.

Client connections raise ``CONNECTED`` when the handshake is done, not when
TCP connects, as Envoy's do; a failed handshake is a ``REMOTE_CLOSE`` with
``failure_reason`` set (``TLS_error:...``, what the router's 503 shows).
"""

from __future__ import annotations

import os
import ssl
import tempfile
from typing import Any, Iterator, Optional, Sequence

from pyevent_envoy import _sockio
from pyevent_envoy._inline_caches import own_copies
from pyevent_envoy.event.dispatcher import Dispatcher
from pyevent_envoy.event.libevent import lib
from pyevent_envoy.network.address import Address
from pyevent_envoy.network.connection import ConnectionEvent
from pyevent_envoy.event.file_event import FileReadyType
from pyevent_envoy.network.connection_impl import (
    _CLOSED_STATE,
    READ_CHUNK,
    ClientConnectionImpl,
    ConnectionImpl,
    _sock_read,
    _sock_write,
)

__all__ = [
    "ENCRYPT_CHUNK",
    "SslConnectionImpl",
    "SslClientConnectionImpl",
    "SslServerConnectionImpl",
    "TLS_VERSIONS",
    "TlsContextError",
    "client_connection",
    "make_ssl_context",
    "ssl_context_for",
]

#: Plaintext bytes handed to one ``SSLObject.write`` (a few TLS records).
ENCRYPT_CHUNK = 64 * 1024

#: Envoy's TlsParameters.TlsProtocol names and their OpenSSL versions (TLS_AUTO: the default).
TLS_VERSIONS = {
    "TLSv1_0": ssl.TLSVersion.TLSv1,
    "TLSv1_1": ssl.TLSVersion.TLSv1_1,
    "TLSv1_2": ssl.TLSVersion.TLSv1_2,
    "TLSv1_3": ssl.TLSVersion.TLSv1_3,
}
# Envoy 1.40's defaults: TLS 1.2 to 1.3 for servers, TLS 1.2 only for clients (upstream).
_DEFAULT_MIN = ssl.TLSVersion.TLSv1_2
_DEFAULT_SERVER_MAX = ssl.TLSVersion.TLSv1_3
_DEFAULT_CLIENT_MAX = ssl.TLSVersion.TLSv1_2

_EAGAIN = _sockio.EAGAIN
_EOF = _sockio.READ_EOF
_FULL = _sockio.READ_FULL


class TlsContextError(ValueError):
    """A TLS context cannot be built: ``field`` is where (relative to the context), ``reason`` why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def _load_cert_chain(context: ssl.SSLContext, chain: bytes, key: bytes) -> None:
    # The ssl module loads certificates and keys from files only: inline PEM
    # goes through a private temporary directory that is removed at once.
    with tempfile.TemporaryDirectory() as tmp:
        chain_path = os.path.join(tmp, "chain.pem")
        key_path = os.path.join(tmp, "key.pem")
        with open(chain_path, "wb") as handle:
            handle.write(chain)
        with open(os.open(key_path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as handle:
            handle.write(key)
        context.load_cert_chain(chain_path, key_path)


def _certificate_error(index: int, chain: bytes, exc: ssl.SSLError) -> tuple[str, str]:
    """Which half of a certificate/key pair failed to load, and why, in words."""
    try:
        # A chain that loads as certificates on its own is fine: then the key is at fault.
        ssl.create_default_context(cadata=chain.decode("ascii", "replace"))
    except (ssl.SSLError, ValueError) as chain_exc:
        return f"tls_certificates[{index}].certificate_chain", f"not a PEM certificate chain: {getattr(chain_exc, 'reason', None) or chain_exc}"
    if exc.reason == "KEY_VALUES_MISMATCH":
        return f"tls_certificates[{index}].private_key", "the private key does not match the certificate (KEY_VALUES_MISMATCH)"
    return f"tls_certificates[{index}].private_key", f"cannot load the private key: {exc.reason or exc}"


def make_ssl_context(
    *,
    server: bool,
    certificates: Sequence[tuple[bytes, bytes]] = (),
    trusted_ca: Optional[bytes] = None,
    require_client_certificate: bool = False,
    alpn_protocols: Sequence[str] = (),
    min_version: Optional[str] = None,
    max_version: Optional[str] = None,
    cipher_suites: Sequence[str] = (),
) -> ssl.SSLContext:
    """An OpenSSL context configured as Envoy's ``ContextImpl`` would be from the same fields.

    ``certificates`` are ``(PEM chain, PEM private key)`` pairs (at most one
    is supported); ``trusted_ca`` PEM turns peer verification on (without it a
    client does not verify the server, as in Envoy); versions are Envoy's
    ``TlsProtocol`` names (None: Envoy's default, 1.2 to 1.3 for a server,
    1.2 for a client); ``cipher_suites`` are
    OpenSSL/BoringSSL cipher names for TLS 1.2 and below.

    Raises:
        TlsContextError: naming the field (``tls_certificates[0].private_key``...) and why.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = TLS_VERSIONS[min_version] if min_version else _DEFAULT_MIN
    default_max = _DEFAULT_SERVER_MAX if server else _DEFAULT_CLIENT_MAX
    context.maximum_version = TLS_VERSIONS[max_version] if max_version else default_max
    if context.minimum_version > context.maximum_version:
        raise TlsContextError(
            "tls_params",
            f"tls_minimum_protocol_version {min_version} is above tls_maximum_protocol_version "
            f"{max_version or ('TLSv1_3' if server else 'TLSv1_2')}",
        )
    if not server:
        context.check_hostname = False  # Envoy checks SANs only when told to (match_subject_alt_names)
    for index, (chain, key) in enumerate(certificates):
        try:
            _load_cert_chain(context, chain, key)
        except ssl.SSLError as exc:
            raise TlsContextError(*_certificate_error(index, chain, exc)) from None
    if trusted_ca is not None:
        try:
            context.load_verify_locations(cadata=trusted_ca.decode("ascii", "replace"))
        except (ssl.SSLError, ValueError) as exc:
            raise TlsContextError("validation_context.trusted_ca", f"cannot load the CA certificates: {getattr(exc, 'reason', None) or exc}") from None
        context.verify_mode = ssl.CERT_REQUIRED if (not server or require_client_certificate) else ssl.CERT_OPTIONAL
    else:
        context.verify_mode = ssl.CERT_NONE
    if cipher_suites:
        for name in cipher_suites:
            probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
            try:
                probe.set_ciphers(name)
            except ssl.SSLError:
                raise TlsContextError("tls_params.cipher_suites", f"unknown cipher suite {name!r}") from None
        # Each name on its own: the set is exactly these (TLS 1.3's suites are not configurable, as in BoringSSL).
        context.set_ciphers(":".join(cipher_suites))
    if alpn_protocols:
        context.set_alpn_protocols(list(alpn_protocols))
    # Envoy's servers issue no session tickets unless given keys; clients do not resume by default.
    context.options |= ssl.OP_NO_TICKET
    if server:
        context.num_tickets = 0
    return context


#: BoringSSL's packed error codes (ERR_PACK(ERR_LIB_SSL, reason)) of the reasons Envoy's
#: failure text names most often, so that the text is Envoy's word for word.
_BORINGSSL_CODES = {"CERTIFICATE_VERIFY_FAILED": 268435581}


def _failure_reason(exc: ssl.SSLError) -> str:
    """Envoy's transport failure reason for a failed handshake (``TLS_error:|...:TLS_error_end``).

    A certificate verification failure reads as Envoy 1.40 writes it, with
    depth 0 (the ssl module does not report the depth; it is 0 for the usual
    case, a leaf the trusted CAs did not sign).  Other failures carry
    OpenSSL's reason, in BoringSSL's layout.
    """
    reason = exc.reason or str(exc)
    code = _BORINGSSL_CODES.get(reason)
    head = f"{code}:SSL routines:OPENSSL_internal:{reason}" if code is not None else f"SSL routines:{reason}"
    verify_message = getattr(exc, "verify_message", None)
    if verify_message:
        head += f":verify cert failed: X509_verify_cert: certificate verification error at depth 0: {verify_message}"
    return f"TLS_error:|{head}:TLS_error_end"


def ssl_context_for(tls: Any) -> ssl.SSLContext:
    """:func:`make_ssl_context` from a :class:`~pyevent_envoy.config.bootstrap.TlsContext`
    (read by attribute: the network layer does not import the config)."""
    return make_ssl_context(
        server=tls.downstream,
        certificates=[(c.certificate_chain, c.private_key) for c in tls.tls_certificates],
        trusted_ca=tls.trusted_ca,
        require_client_certificate=tls.require_client_certificate,
        alpn_protocols=tls.alpn_protocols,
        min_version=tls.tls_minimum_protocol_version,
        max_version=tls.tls_maximum_protocol_version,
        cipher_suites=tls.cipher_suites,
    )


class SslConnectionImpl(ConnectionImpl):
    """A connection whose bytes go through TLS (see the module docstring).

    ``context`` is the server or client ``ssl.SSLContext`` (from
    :func:`make_ssl_context`); ``stats`` the :class:`~pyevent_envoy.stats.SslStats` to count in
    (or None); ``server_hostname`` the SNI a client sends.
    """

    __slots__ = ("_ssl", "_incoming", "_outgoing", "_cipher_out", "_handshake_done", "_ssl_stats", "_shutdown_sent", "_peer_spoke")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # As ConnectionImpl's: the TLS server and client each get their own
        # copies of this class's I/O methods too (see pyevent_envoy._inline_caches).
        super().__init_subclass__(**kwargs)
        own_copies(cls, (SslConnectionImpl,))

    #: Whether the connection is TLS (Envoy's ``connection.ssl() != nullptr``).
    is_tls = True

    def _init_ssl(self, context: ssl.SSLContext, stats: Any, *, server: bool, server_hostname: Optional[str] = None) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl = context.wrap_bio(self._incoming, self._outgoing, server_side=server, server_hostname=server_hostname or None)
        self._cipher_out = b""
        self._handshake_done = False
        self._ssl_stats = stats
        self._shutdown_sent = False
        self._peer_spoke = False

    # What the HTTP layer and access logs read.

    @property
    def ssl_object(self) -> ssl.SSLObject:
        return self._ssl

    @property
    def handshake_complete(self) -> bool:
        return self._handshake_done

    # reading

    def _on_read_ready(self, until_eof: bool = False) -> None:
        if self._read_disable_count:
            return
        if self._dispatch_buffered and not self._dispatch_buffered_reads():
            return
        if self._read_end_stream:
            return
        fd = self._fd
        incoming = self._incoming
        buffer = self._read_buffer
        before = buffer._length
        eof = False
        while True:
            data, code = _sock_read(fd, READ_CHUNK, until_eof)
            if data:
                incoming.write(data)
                self._peer_spoke = True
            if code == _FULL:
                # Decrypt what came before reading more, so memory stays bounded by the watermark.
                if not self._decrypt():
                    return
                if buffer._above or self._read_disable_count:
                    break
                continue
            if code == 0:
                break
            if code == _EOF:
                eof = True
                break
            self.failure_reason = os.strerror(code)
            self._close_socket(ConnectionEvent.REMOTE_CLOSE)
            return
        if eof and not self._handshake_done:
            if not self._peer_spoke:
                # Connected and closed without a byte (a port probe): a close, not a TLS error (Envoy's count).
                self._close_socket(ConnectionEvent.REMOTE_CLOSE)
                return
            incoming.write_eof()  # the handshake fails on a closed connection instead of waiting
        if not self._decrypt():
            return
        total = buffer._length - before
        if self._read_end_stream:
            eof = True  # close_notify from the peer
        self._account_read(total)
        if eof:
            self._read_end_stream = True
        if total or eof:
            self._on_read(eof)
        if eof and self._state is not _CLOSED_STATE and (not self._half_close or self._write_end_stream):
            self._close_socket(ConnectionEvent.REMOTE_CLOSE)

    def _account_read(self, total: int) -> None:
        self.bytes_read += total
        stats = self._connection_stats
        if stats is not None:
            stats.read_total += total
            size = self._read_buffer._length
            if size != self._last_read_buffer_size:
                stats.read_current += size - self._last_read_buffer_size
                self._last_read_buffer_size = size

    def _decrypt(self) -> bool:
        """Run the handshake or decrypt what the incoming BIO holds; False if the connection closed."""
        sslobj = self._ssl
        if not self._handshake_done:
            try:
                sslobj.do_handshake()
            except ssl.SSLWantReadError:
                return self._send_cipher()
            except ssl.SSLError as exc:
                self._on_handshake_failure(exc)
                return False
            if not self._on_handshake_done():
                return False
        buffer = self._read_buffer
        while not buffer._above and not self._read_disable_count:
            try:
                data = sslobj.read(READ_CHUNK)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self._read_end_stream = True  # close_notify: the peer's end of stream
                break
            except ssl.SSLError as exc:
                self.failure_reason = _failure_reason(exc)
                self._close_socket(ConnectionEvent.REMOTE_CLOSE)
                return False
            if not data:
                break
            buffer.add(data)
        # Reading may produce records to send (TLS 1.3 key updates, alerts).
        return self._send_cipher() if self._outgoing.pending else True

    def _on_handshake_done(self) -> bool:
        self._handshake_done = True
        if self._ssl_stats is not None:
            self._ssl_stats.record_handshake(self._ssl)
        if not self._send_cipher() or not self._on_handshake_ready():
            return False
        if self._write_buffer._length and not self._write_blocked:
            self._on_write_ready()
        return self._state is not _CLOSED_STATE

    def _on_handshake_ready(self) -> bool:
        """The handshake is done and its last flight sent; False if the connection closed.
        (Client connections raise ``CONNECTED`` here.)"""
        return True

    def _on_handshake_failure(self, exc: ssl.SSLError) -> None:
        if self._ssl_stats is not None:
            self._ssl_stats.record_failure(exc)
        self.failure_reason = _failure_reason(exc)
        self._send_cipher()  # the alert, if the socket takes it
        if self._state is not _CLOSED_STATE:
            self._close_socket(ConnectionEvent.REMOTE_CLOSE)

    # writing

    def _send_cipher(self) -> bool:
        """Send the pending ciphertext; False if the connection closed.  Sets ``_write_blocked`` on EAGAIN."""
        data = self._cipher_out + self._outgoing.read() if self._cipher_out else self._outgoing.read()
        if not data:
            return True
        n, code = _sock_write(self._fd, data)
        if n < len(data):
            if code != _EAGAIN:
                self._cipher_out = b""
                self.failure_reason = os.strerror(code)
                self._close_socket(ConnectionEvent.REMOTE_CLOSE)
                return False
            self._cipher_out = data[n:]
            self._write_blocked = True  # the next WRITE edge resumes
        else:
            self._cipher_out = b""
        return True

    def _on_write_ready(self) -> None:
        if self._connecting:
            error = lib.pe_socket_error(self._fd)
            if error:
                self.failure_reason = f"delayed connect error: {os.strerror(error)}"
                self._close_socket(ConnectionEvent.REMOTE_CLOSE)
                return
            self._connecting = False
            # CONNECTED waits for the handshake (Envoy's SslSocket raises it then).
            try:
                self._ssl.do_handshake()
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as exc:
                self._on_handshake_failure(exc)
                return
            self._send_cipher()
            return
        if self._cipher_out and not self._send_cipher():
            return
        if self._write_blocked or not self._handshake_done:
            return
        buffer = self._write_buffer
        sslobj = self._ssl
        while buffer._length:
            chunks = buffer._chunks
            chunk = chunks[0]
            if len(chunk) > ENCRYPT_CHUNK:
                chunk = chunk[:ENCRYPT_CHUNK]
            elif len(chunks) > 1 and len(chunk) < 4096:
                chunk = buffer.peek()[:ENCRYPT_CHUNK]  # small head + body: one record, not two
            sslobj.write(chunk)
            n = len(chunk)
            buffer.drain(n)
            self.bytes_written += n
            stats = self._connection_stats
            if stats is not None:
                stats.write_total += n
                size = buffer._length
                if size != self._last_write_buffer_size:
                    stats.write_current += size - self._last_write_buffer_size
                    stats.write_current_moved = True
                    self._last_write_buffer_size = size
            if not self._send_cipher() or self._write_blocked:
                return
        if self._write_end_stream and not self._shutdown_sent:
            self._send_close_notify()
            if self._state is _CLOSED_STATE or self._write_blocked:
                return
            self._shutdown_write()
            if self._state is _CLOSED_STATE:
                return
        if self._close_type is not None:
            self._on_flushed_for_close()

    def _on_flushed_for_close(self) -> None:
        if self._cipher_out or not self._handshake_done and self._write_buffer._length:
            return  # the write path calls again once the socket took everything
        super()._on_flushed_for_close()

    def _send_close_notify(self) -> None:
        self._shutdown_sent = True
        try:
            self._ssl.unwrap()
        except ssl.SSLError:
            pass  # the peer's close_notify has not come yet: ours is in the BIO all the same
        self._send_cipher()

    def _close_socket(self, event: ConnectionEvent) -> None:
        if self._state is _CLOSED_STATE:
            return
        if event is ConnectionEvent.LOCAL_CLOSE and self._handshake_done and not self._shutdown_sent and self._fd >= 0:
            # Envoy's shutdownSsl: a best-effort close_notify, whatever the close type.
            self._shutdown_sent = True
            try:
                self._ssl.unwrap()
            except ssl.SSLError:
                pass
            data = self._cipher_out + self._outgoing.read()
            if data:
                _sock_write(self._fd, data)
        self._cipher_out = b""
        super()._close_socket(event)

    def read_disable(self, disable: bool) -> None:
        super().read_disable(disable)
        if not disable and self._read_disable_count == 0 and self._file_event is not None and self._state is not _CLOSED_STATE:
            if self._incoming.pending or self._ssl.pending():
                # Ciphertext already taken from the socket still waits to be decrypted.
                self._file_event.activate(FileReadyType.READ)


class SslServerConnectionImpl(SslConnectionImpl):
    """An accepted TLS connection: the handshake starts with the client's first bytes."""

    __slots__ = ()

    def __init__(
        self, dispatcher: Dispatcher, fd: int, remote: Address | None, local: Address | None, context: ssl.SSLContext, stats: Any
    ) -> None:
        ConnectionImpl.__init__(self, dispatcher, fd, remote, local, connected=True)
        self._init_ssl(context, stats, server=True)


class SslClientConnectionImpl(SslConnectionImpl, ClientConnectionImpl):
    """An outgoing TLS connection; ``CONNECTED`` comes once the handshake is done."""

    __slots__ = ()

    def __init__(
        self, dispatcher: Dispatcher, remote: Address, context: ssl.SSLContext, stats: Any, server_hostname: Optional[str] = None
    ) -> None:
        ClientConnectionImpl.__init__(self, dispatcher, remote)
        self._init_ssl(context, stats, server=False, server_hostname=server_hostname)

    def _on_handshake_ready(self) -> bool:
        self._raise_event(ConnectionEvent.CONNECTED)
        return self._state is not _CLOSED_STATE


def client_connection(
    dispatcher: Dispatcher, remote: Address, ssl_context: Optional[ssl.SSLContext], stats: Any = None, server_name: str = ""
) -> ClientConnectionImpl:
    """A plaintext client connection, or a TLS one when ``ssl_context`` is set (Envoy's cluster
    transport socket): ``stats`` its :class:`~pyevent_envoy.stats.SslStats`, ``server_name`` the SNI (empty: none)."""
    if ssl_context is None:
        return ClientConnectionImpl(dispatcher, remote)
    return SslClientConnectionImpl(dispatcher, remote, ssl_context, stats, server_name or None)

