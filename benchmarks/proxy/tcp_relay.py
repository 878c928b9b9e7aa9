"""A TCP relay on pyevent-envoy's network layer alone: the floor under its HTTP proxy.

Every accepted connection gets its own upstream connection and bytes are
copied both ways unchanged: no HTTP codec, connection manager, router or
pool.  It uses the same dispatcher, listener, connections, buffers and flow
control as ``pyevent-envoy``, so its rate in ``compare_proxies.py`` is what
the event and network layers cost per request, and the gap to the
``pyevent-envoy`` row is what the HTTP layers cost.

    python3 benchmarks/proxy/tcp_relay.py --listen 127.0.0.1:8002 --upstream 127.0.0.1:8080
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from pyevent_envoy.event import DispatcherImpl, RunType
from pyevent_envoy.network import (
    Address,
    ClientConnectionImpl,
    ConnectionCallbacks,
    ConnectionCloseType,
    ConnectionEvent,
    FilterStatus,
    ReadFilter,
    ServerConnectionImpl,
    TcpListenerImpl,
    create_listen_socket,
)
from pyevent_envoy.server.malloc_tuning import tune_malloc


class _Side(ReadFilter, ConnectionCallbacks):
    """One direction of a relayed pair: what ``conn`` reads goes to ``peer``."""

    def __init__(self, relay: "_Relay", conn: Any, peer: Any) -> None:
        self.relay = relay
        self.conn = conn
        self.peer = peer

    def initialize_read_filter_callbacks(self, callbacks: Any) -> None:
        pass  # the relay holds its connections itself: nothing to keep from the callbacks

    def on_new_connection(self) -> FilterStatus:
        return FilterStatus.CONTINUE

    def on_data(self, data: Any, end_stream: bool) -> FilterStatus:
        if data:
            self.peer.write(data.take())
        return FilterStatus.STOP_ITERATION

    def on_event(self, event: ConnectionEvent) -> None:
        if event in (ConnectionEvent.REMOTE_CLOSE, ConnectionEvent.LOCAL_CLOSE):
            self.relay.closed(self)

    # Flow control: a peer that cannot take more stops this side's reads.
    def on_above_write_buffer_high_watermark(self) -> None:
        self.peer.read_disable(True)

    def on_below_write_buffer_low_watermark(self) -> None:
        self.peer.read_disable(False)


class _Relay:
    def __init__(self, dispatcher: DispatcherImpl, upstream: Address) -> None:
        self.dispatcher = dispatcher
        self.upstream = upstream
        self.pairs: dict[int, tuple[Any, Any]] = {}

    def on_accept(self, fd: int, remote: Address) -> None:
        down = ServerConnectionImpl(self.dispatcher, fd, remote, None)
        up = ClientConnectionImpl(self.dispatcher, self.upstream)
        for conn, peer in ((down, up), (up, down)):
            side = _Side(self, conn, peer)
            conn.add_read_filter(side)
            conn.add_connection_callbacks(side)
        self.pairs[id(down)] = (down, up)
        up.connect()

    def closed(self, side: _Side) -> None:
        # Whatever the other side still has to send goes out before it closes.
        side.peer.close(ConnectionCloseType.FLUSH_WRITE)
        pair = self.pairs.pop(id(side.conn), None) or self.pairs.pop(id(side.peer), None)
        if pair is not None:
            for conn in pair:
                self.dispatcher.deferred_delete(conn)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", required=True, help="host:port to accept on")
    ap.add_argument("--upstream", required=True, help="host:port to relay to")
    args = ap.parse_args()
    listen_host, listen_port = args.listen.rsplit(":", 1)
    up_host, up_port = args.upstream.rsplit(":", 1)
    tune_malloc()  # as the pyevent-envoy command does
    dispatcher = DispatcherImpl("relay")
    sock = create_listen_socket(Address(listen_host, int(listen_port)))
    relay = _Relay(dispatcher, Address(up_host, int(up_port)))
    listener = TcpListenerImpl(dispatcher, sock, relay)
    signals = [dispatcher.listen_for_signal(signum, dispatcher.exit) for signum in (signal.SIGTERM, signal.SIGINT)]
    print(f"tcp relay on {args.listen} -> {args.upstream}", flush=True)
    dispatcher.run(RunType.RUN_UNTIL_EXIT)
    listener.close()
    sock.close()
    for event in signals:
        event.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
