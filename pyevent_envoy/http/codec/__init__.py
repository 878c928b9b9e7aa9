"""HTTP codecs: sans-I/O protocol engines between bytes and streams.

Interfaces (:mod:`pyevent_envoy.http.codec.codec`) carry the contract;
:mod:`pyevent_envoy.http.codec.http1` implements HTTP/1.1 on llhttp
(httptools).  Nothing here does I/O or imports the event layer: the owner
feeds ``dispatch(bytes)`` and passes a sink for the bytes to write.
"""

from pyevent_envoy.http.codec.codec import ClientConnection as ClientConnection
from pyevent_envoy.http.codec.codec import ConnectionCallbacks as ConnectionCallbacks
from pyevent_envoy.http.codec.codec import Http1Settings as Http1Settings
from pyevent_envoy.http.codec.codec import RequestDecoder as RequestDecoder
from pyevent_envoy.http.codec.codec import RequestEncoder as RequestEncoder
from pyevent_envoy.http.codec.codec import ResponseDecoder as ResponseDecoder
from pyevent_envoy.http.codec.codec import ResponseEncoder as ResponseEncoder
from pyevent_envoy.http.codec.codec import ServerConnection as ServerConnection
from pyevent_envoy.http.codec.codec import ServerConnectionCallbacks as ServerConnectionCallbacks
from pyevent_envoy.http.codec.codec import Sink as Sink
from pyevent_envoy.http.codec.codec import StreamEncoder as StreamEncoder
from pyevent_envoy.http.codec.errors import CodecError as CodecError
from pyevent_envoy.http.codec.errors import CodecProtocolError as CodecProtocolError
from pyevent_envoy.http.codec.errors import CodecUsageError as CodecUsageError
from pyevent_envoy.http.codec.http1 import ClientConnectionImpl as ClientConnectionImpl
from pyevent_envoy.http.codec.http1 import RequestEncoderImpl as RequestEncoderImpl
from pyevent_envoy.http.codec.http1 import ResponseEncoderImpl as ResponseEncoderImpl
from pyevent_envoy.http.codec.http1 import ServerConnectionImpl as ServerConnectionImpl
from pyevent_envoy.http.codec.http1 import STATUS_CODES as STATUS_CODES
from pyevent_envoy.http.codec.http1 import reason_phrase as reason_phrase

__all__ = [
    "STATUS_CODES",
    "ClientConnection",
    "ClientConnectionImpl",
    "CodecError",
    "CodecProtocolError",
    "CodecUsageError",
    "ConnectionCallbacks",
    "Http1Settings",
    "RequestDecoder",
    "RequestEncoder",
    "RequestEncoderImpl",
    "ResponseDecoder",
    "ResponseEncoder",
    "ResponseEncoderImpl",
    "ServerConnection",
    "ServerConnectionCallbacks",
    "ServerConnectionImpl",
    "Sink",
    "StreamEncoder",
    "reason_phrase",
]
