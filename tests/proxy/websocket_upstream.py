"""A WebSocket (RFC 6455) echo upstream and client helpers for the upgrade tests.

Threads and plain sockets, no WebSocket library: the server completes the
opening handshake and then does what the request path asks.

- ``/ws...``: echoes every data frame; answers a close frame with a close
  frame (same code), then closes the TCP connection.
- ``/bye...``: after the handshake, sends the text frame ``bye`` and a close
  frame (1001), then closes the TCP connection.
- ``/slow/<seconds>...``: sleeps, then behaves as ``/ws``.
- ``/raw...``: 101, then echoes raw bytes (no framing) until the peer closes.
- ``/refuse/<status>...``: answers ``<status>`` with the body
  ``no websocket here`` (Content-Length) instead of switching protocols.

Every request head is recorded in ``requests`` (method, path, lowercase
headers), and what ended each connection in ``endings``, by request path
(``"client-close-frame"``, ``"client-eof"``, ``"server-bye"``, ``"raw-eof"``).
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
import threading
import time

from harness import stop_listening

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 1, 2, 8, 9, 10
REFUSAL_BODY = b"no websocket here"


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def encode_frame(opcode: int, payload: bytes, mask: bool) -> bytes:
    """One final frame; clients must mask (RFC 6455 section 5.3), servers must not."""
    head = bytes([0x80 | opcode])
    n = len(payload)
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 1 << 16:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes((key * (n // 4 + 1))[:n], "big")).to_bytes(n, "big")
    return head + key + masked


class FrameReader:
    """Reads frames (and the bytes before them) from a blocking socket."""

    def __init__(self, sock: socket.socket, buffered: bytes = b"") -> None:
        self.sock = sock
        self.buf = bytearray(buffered)

    def _fill(self, n: int) -> None:
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise EOFError(f"connection closed with {len(self.buf)} of {n} bytes")
            self.buf += chunk

    def read_exact(self, n: int) -> bytes:
        self._fill(n)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_frame(self) -> tuple[int, bytes]:
        """``(opcode, payload)`` of the next frame (unmasked if it was masked)."""
        b0, b1 = self.read_exact(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self.read_exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self.read_exact(8))[0]
        key = self.read_exact(4) if b1 & 0x80 else None
        payload = self.read_exact(n)
        if key is not None and n:
            payload = (int.from_bytes(payload, "big") ^ int.from_bytes((key * (n // 4 + 1))[:n], "big")).to_bytes(n, "big")
        return b0 & 0x0F, payload

    def at_eof(self) -> bool:
        """True once the peer closed with nothing more unread (blocks until then or the socket timeout)."""
        if self.buf:
            return False
        return self.sock.recv(1) == b""


def read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """``(head, the bytes after it)`` from a blocking socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise EOFError(f"connection closed before the end of a head: {data!r}")
        data += chunk
    end = data.index(b"\r\n\r\n") + 4
    return data[:end], data[end:]


def parse_head(head: bytes) -> tuple[str, dict[str, str]]:
    """``(start line, {lowercase name: value})``."""
    lines = head.decode("latin-1").split("\r\n")
    fields = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
    return lines[0], fields


class WebSocketUpstream:
    """Starts on 127.0.0.1 with a free port; ``stop()`` shuts it down."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.endings: dict[str, str] = {}
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self) -> None:
        self._stopped = True
        stop_listening(self.listener)

    def wait_for_ending(self, path: str, timeout: float = 10.0) -> str | None:
        """What ended the connection that asked for ``path`` (None if it is still open after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while path not in self.endings and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.endings.get(path)

    def _accept(self) -> None:
        while not self._stopped:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(60)
        path = ""
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            head, rest = read_head(conn)
            line, fields = parse_head(head)
            method, path, _ = line.split(" ", 2)
            self.requests.append((method, path, fields))
            if path.startswith("/refuse/"):
                status = int(path.split("/")[2])
                conn.sendall(
                    b"HTTP/1.1 %d Refused\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n\r\n%s"
                    % (status, len(REFUSAL_BODY), REFUSAL_BODY)
                )
                return
            if path.startswith("/slow/"):
                time.sleep(float(path.split("/")[2]))
            switching = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            if "sec-websocket-key" in fields:
                switching += b"Sec-WebSocket-Accept: %s\r\n" % accept_key(fields["sec-websocket-key"]).encode()
            conn.sendall(switching + b"\r\n")
            if path.startswith("/raw"):
                self.endings[path] = self._raw_echo(conn, rest)
            elif path.startswith("/bye"):
                conn.sendall(encode_frame(OP_TEXT, b"bye", False) + encode_frame(OP_CLOSE, struct.pack("!H", 1001), False))
                self.endings[path] = "server-bye"
            else:
                self.endings[path] = self._echo(conn, rest)
        except (OSError, EOFError):
            self.endings[path] = "client-eof"
        finally:
            conn.close()

    def _raw_echo(self, conn: socket.socket, rest: bytes) -> str:
        if rest:
            conn.sendall(rest)
        while True:
            data = conn.recv(1 << 16)
            if not data:
                return "raw-eof"
            conn.sendall(data)

    def _echo(self, conn: socket.socket, rest: bytes) -> str:
        reader = FrameReader(conn, rest)
        while True:
            opcode, payload = reader.read_frame()
            if opcode == OP_CLOSE:
                conn.sendall(encode_frame(OP_CLOSE, payload, False))
                return "client-close-frame"
            if opcode == OP_PING:
                conn.sendall(encode_frame(OP_PONG, payload, False))
            else:
                conn.sendall(encode_frame(opcode, payload, False))
