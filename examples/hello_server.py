"""A minimal HTTP/1.1 server on :mod:`pyevent_envoy.event`, and nothing else.

Every ``GET`` is answered ``200 OK`` with ``hello from pyevent-envoy``;
connections stay open (keep-alive, pipelining) until the client closes
them, asks to close, or sends something this server does not handle.

The shape is Envoy's: a level-triggered READ event on the listening socket
accepts connections; each connection has one edge-triggered READ|WRITE event
and reads until EAGAIN, since an edge fires once per change of readiness;
a closed connection stops its event and closes its socket at once, and the
object itself goes to ``deferred_delete`` (released after the current
callbacks); SIGINT and SIGTERM are dispatcher events that stop the loop.

Run it with ``python examples/hello_server.py [--port 10000]``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys

from pyevent_envoy.event import DispatcherImpl, FileReadyType, FileTriggerType, RunType

BODY = b"hello from pyevent-envoy\n"
READ_SIZE = 65536
# Larger request heads get 431; past this much unsent output, stop reading
# until the client takes it (a client that pipelines without reading).
MAX_HEAD_SIZE = 16 * 1024
HIGH_WATERMARK = 1024 * 1024
# Accepts per listener callback: the event is level-triggered, so whatever
# is left waiting fires it again on the next loop iteration.
ACCEPT_BATCH = 64

_log = logging.getLogger("hello_server")


def response(status: bytes, body: bytes, keep_alive: bool) -> bytes:
    head = b"HTTP/1.1 %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n" % (status, len(body))
    if not keep_alive:
        head += b"Connection: close\r\n"
    return head + b"\r\n" + body


OK_KEEP_ALIVE = response(b"200 OK", BODY, keep_alive=True)
OK_CLOSE = response(b"200 OK", BODY, keep_alive=False)


class Connection:
    """One accepted socket: reads requests, queues responses, writes until EAGAIN."""

    def __init__(self, server: HelloServer, sock: socket.socket) -> None:
        self._server = server
        self._sock = sock
        self._in = bytearray()
        self._out = bytearray()
        self._closing = False  # the last response is queued; close once it is sent
        self._closed = False
        self._event = server.dispatcher.create_file_event(
            sock, self._on_ready, FileTriggerType.EDGE, FileReadyType.READ | FileReadyType.WRITE
        )

    def _on_ready(self, events: FileReadyType) -> None:
        try:
            self._flush()
            while not self._closing and len(self._out) < HIGH_WATERMARK:
                try:
                    data = self._sock.recv(READ_SIZE)
                except BlockingIOError:
                    break  # drained: the next bytes bring a new edge
                if not data:  # the client closed its side
                    self.close_socket()
                    return
                self._in += data
                self._handle_requests()
                self._flush()
        except OSError as exc:  # reset by the peer, broken pipe, ...
            _log.debug("connection error: %s", exc)
            self.close_socket()
            return
        if self._closing and not self._out:
            self.close_socket()

    def _flush(self) -> None:
        while self._out:
            try:
                sent = self._sock.send(self._out)
            except BlockingIOError:
                return  # the socket is full: WRITE fires again when it drains
            del self._out[:sent]

    def _handle_requests(self) -> None:
        while not self._closing:
            # RFC 9112 2.2: ignore empty lines before a request line.
            while self._in[:2] == b"\r\n":
                del self._in[:2]
            end = self._in.find(b"\r\n\r\n")
            if end < 0:
                if len(self._in) > MAX_HEAD_SIZE:
                    self._fail(b"431 Request Header Fields Too Large")
                return
            head = bytes(self._in[:end])
            del self._in[: end + 4]
            self._handle_head(head)

    def _handle_head(self, head: bytes) -> None:
        request_line, *header_lines = head.split(b"\r\n")
        parts = request_line.split(b" ")
        if len(parts) != 3 or not parts[1].startswith(b"/") or parts[2] not in (b"HTTP/1.0", b"HTTP/1.1"):
            self._fail(b"400 Bad Request")
            return
        method, _target, version = parts
        keep_alive = version == b"HTTP/1.1"  # HTTP/1.0 clients get one response
        for line in header_lines:
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip():
                self._fail(b"400 Bad Request")
                return
            name = name.lower()
            value = value.strip().lower()
            if name == b"connection" and b"close" in {token.strip() for token in value.split(b",")}:
                keep_alive = False
            elif (name == b"content-length" and value != b"0") or name == b"transfer-encoding":
                # No request bodies here: without reading one, the next
                # request cannot be found, so answer and close.
                self._fail(b"413 Content Too Large")
                return
        if method != b"GET":
            self._fail(b"405 Method Not Allowed")
            return
        self._out += OK_KEEP_ALIVE if keep_alive else OK_CLOSE
        self._closing = not keep_alive

    def _fail(self, status: bytes) -> None:
        self._out += response(status, status[4:] + b"\n", keep_alive=False)
        self._closing = True

    def close_socket(self) -> None:
        """Stop watching and close the socket now; the object goes to deferred deletion."""
        if self._closed:
            return
        self._closed = True
        self._event.close()
        self._sock.close()
        self._server.forget(self)
        self._server.dispatcher.deferred_delete(self)

    def close(self) -> None:
        # Called by the dispatcher after the current callbacks have returned.
        self._in.clear()
        self._out.clear()


class HelloServer:
    """The listening socket, its accept event and the open connections."""

    def __init__(self, dispatcher: DispatcherImpl, host: str, port: int) -> None:
        self.dispatcher = dispatcher
        self._listener = socket.create_server((host, port), backlog=1024)
        self._listener.setblocking(False)
        self.address = self._listener.getsockname()[:2]
        self._connections: set[Connection] = set()
        self._accept_event = dispatcher.create_file_event(
            self._listener, self._on_accept, FileTriggerType.LEVEL, FileReadyType.READ
        )

    def _on_accept(self, events: FileReadyType) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                sock, _peer = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # ECONNABORTED, EMFILE, ...: keep serving the others
                _log.warning("accept failed: %s", exc)
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._connections.add(Connection(self, sock))

    def forget(self, connection: Connection) -> None:
        self._connections.discard(connection)

    def close(self) -> None:
        self._accept_event.close()
        self._listener.close()
        for connection in list(self._connections):
            connection.close_socket()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=10000, help="port to listen on, 0 for any (default: %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    with DispatcherImpl("main_thread") as dispatcher:
        try:
            server = HelloServer(dispatcher, args.host, args.port)
        except OSError as exc:
            print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
            return 1

        def stop(signum: int) -> None:
            print(f"\n{signal.Signals(signum).name}: shutting down", flush=True)
            dispatcher.exit()

        signals = [
            dispatcher.listen_for_signal(signum, lambda signum=signum: stop(signum))
            for signum in (signal.SIGINT, signal.SIGTERM)
        ]
        host, port = server.address
        print(f"pyevent-envoy hello server listening on http://{host}:{port}/", flush=True)
        print(f"try:  curl -i http://{host}:{port}/      (Ctrl-C to stop)", flush=True)
        dispatcher.run(RunType.RUN_UNTIL_EXIT)
        server.close()
        for event in signals:
            event.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
