"""pyevent_envoy._inline_caches: per-class copies of shared methods behave as the originals."""

from __future__ import annotations

import traceback

from pyevent_envoy._inline_caches import own_copies
from pyevent_envoy.http.codec import http1
from pyevent_envoy.network import connection_impl, ssl_socket


class Base:
    __slots__ = ("value",)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        own_copies(cls, (Base,))

    def __init__(self, value):
        self.value = value

    def doubled(self, extra=0, *, scale=2):
        """Twice the value."""
        return self.value * scale + extra

    @property
    def negated(self):
        return -self.value

    def fails(self):
        raise ValueError(f"from {type(self).__name__}")

    def name(self):
        return "base"


class Left(Base):
    __slots__ = ()

    def name(self):
        return "left:" + super().name()


class Right(Base):
    __slots__ = ()


def test_each_subclass_gets_its_own_code_objects():
    assert Left.doubled is not Base.doubled and Right.doubled is not Left.doubled
    assert Left.doubled.__code__ is not Base.doubled.__code__
    assert Left.doubled.__code__ == Base.doubled.__code__  # equal code, distinct caches


def test_copies_behave_as_the_originals():
    left, right = Left(3), Right(5)
    assert left.doubled() == 6 and right.doubled(1, scale=3) == 16
    assert left.negated == -3 and right.negated == -5
    assert Left.doubled.__doc__ == "Twice the value."
    assert Left.doubled.__qualname__ == "Base.doubled"


def test_overrides_and_super_are_untouched():
    assert Left.name is vars(Left)["name"]
    assert Left(1).name() == "left:base"
    assert Right(1).name() == "base"


def test_tracebacks_name_the_original_source():
    try:
        Right(1).fails()
    except ValueError as exc:
        frame = traceback.extract_tb(exc.__traceback__)[-1]
    assert frame.name == "fails" and frame.filename == __file__
    assert "raise ValueError" in frame.line


def test_a_subclass_of_a_subclass_gets_copies_too_but_keeps_overrides():
    class Deeper(Left):
        __slots__ = ()

    class Overriding(Right):
        __slots__ = ()

        def doubled(self, extra=0, *, scale=2):
            return "mine"

    class BelowOverride(Overriding):
        __slots__ = ()

    assert Deeper.doubled is not Left.doubled and Deeper.doubled.__code__ is not Left.doubled.__code__
    assert Deeper.name is Left.name  # Left's own method, not a copy: inherited as usual
    assert Deeper(2).name() == "left:base" and Deeper(2).doubled() == 4
    assert BelowOverride.doubled is Overriding.doubled
    assert BelowOverride(1).doubled() == "mine"


def test_the_proxy_hot_classes_have_their_own_copies():
    server, client = connection_impl.ServerConnectionImpl, connection_impl.ClientConnectionImpl
    # The plaintext connection's I/O methods are C methods (no inline caches): shared, not copied.
    for name in ("_on_read_ready", "_on_write_ready", "write", "_flush", "_on_file_event"):
        assert type(getattr(server, name)).__name__ == "method_descriptor"
        assert getattr(server, name) is getattr(client, name) is vars(connection_impl.ConnectionImpl)[name]
    # The TLS connections override the read and the flush in Python; each has its own copies.
    tls_server, tls_client = ssl_socket.SslServerConnectionImpl, ssl_socket.SslClientConnectionImpl
    assert vars(tls_server)["_on_write_ready"].__code__ is not vars(tls_client)["_on_write_ready"].__code__
    assert vars(tls_server)["_on_read_ready"].__code__ is not vars(tls_client)["_on_read_ready"].__code__
    for name in ("dispatch", "_process", "_read_body", "_flush_body"):
        assert vars(http1.ServerConnectionImpl)[name] is not getattr(http1.ClientConnectionImpl, name)
    # The codec's state table calls each class's own copies.
    assert http1.ServerConnectionImpl._HANDLERS[0] is vars(http1.ServerConnectionImpl)["_read_head"]
    assert http1.ClientConnectionImpl._HANDLERS[1] is vars(http1.ClientConnectionImpl)["_read_body"]
    assert vars(http1.ResponseEncoderImpl)["encode_data"] is not vars(http1.RequestEncoderImpl)["encode_data"]
