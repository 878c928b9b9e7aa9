"""The errors of the HTTP codecs (Envoy's ``source/common/http/exception.h``).

Two kinds, as in h11:

- :class:`CodecProtocolError`: the peer broke HTTP/1.1 (Envoy's
  ``CodecProtocolException``).  It carries ``status``, the response the owner
  should send if it still can (400, 431, 501 downstream; 502 or 503 for an
  upstream), and ``details``, Envoy's response-code-details string for access
  logs (``http1.codec_error``, ``http1.headers_too_large``...).  The codecs
  never raise it at the owner: they report it through the connection
  callbacks' ``on_protocol_error``.
- :class:`CodecUsageError`: the owner misused the codec (encoding out of
  order, a body longer than its Content-Length, dispatching into a failed
  connection); Envoy's ``CodecClientException``.  Raised from the call that
  misused it.
"""

from __future__ import annotations

from pyevent_envoy.errors import PyEventEnvoyError

__all__ = ["CodecError", "CodecProtocolError", "CodecUsageError"]


class CodecError(PyEventEnvoyError):
    """Base class of the codec errors.  Never raised directly.

    Attributes:
        status: the HTTP status that answers the error (h11's
            ``error_status_hint``).
        details: a short machine-readable reason, Envoy's response code details.
        codec_error: whether Envoy finds this error in its codec, where it
            counts as a protocol error (response flag ``DPE``,
            ``downstream_cx_protocol_error``); False for the few it finds
            in its connection manager instead (a missing Host, a fragment
            in the target), which are answered without either.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self, message: str, status: int = 400, details: str = "http1.codec_error", *, codec_error: bool = True
    ) -> None:
        super().__init__(message)
        self.status = status
        self.details = details
        self.codec_error = codec_error

    @property
    def error_status_hint(self) -> int:
        """The same as :attr:`status` (h11's name)."""
        return self.status


class CodecProtocolError(CodecError, ValueError):
    """The peer sent bytes that are not valid HTTP/1.1 (or exceed a limit).

    The connection cannot continue: the codec is terminal once it reports one.

    .. versionadded:: 0.1.0
    """


class CodecUsageError(CodecError, RuntimeError):
    """The owner used the codec in a way the protocol does not allow.

    .. versionadded:: 0.1.0
    """

    def __init__(self, message: str, status: int = 500, details: str = "codec_usage_error") -> None:
        super().__init__(message, status, details)
