"""TcpListenerImpl: accept loop, per-wakeup cap, enable/disable, descriptor exhaustion."""

import os
import socket
import subprocess
import sys
import textwrap

import pytest

from pyevent_envoy.event import DispatcherImpl, RunType
from pyevent_envoy.network import Address, TcpListenerImpl, create_listen_socket

pytestmark = pytest.mark.timeout(60)


class Accepted:
    def __init__(self):
        self.fds = []

    def on_accept(self, fd, remote):
        assert remote.ip == "127.0.0.1" and remote.port > 0
        self.fds.append(fd)

    def close(self):
        for fd in self.fds:
            os.close(fd)


@pytest.fixture
def dispatcher():
    d = DispatcherImpl("test")
    yield d
    assert d.statistics().events_live == 0
    d.close()


def test_listener_accepts_with_per_wakeup_cap(dispatcher):
    sock = create_listen_socket(Address("127.0.0.1", 0))
    accepted = Accepted()
    listener = TcpListenerImpl(dispatcher, sock, accepted, max_accepts_per_event=2)
    clients = [socket.create_connection(sock.getsockname()) for _ in range(5)]
    dispatcher.run(RunType.NON_BLOCK)
    assert len(accepted.fds) == 2  # the rest wait for the next wakeup (level-triggered)
    dispatcher.run(RunType.NON_BLOCK)
    dispatcher.run(RunType.NON_BLOCK)
    assert len(accepted.fds) == 5
    assert listener.accepted == 5
    listener.close()
    accepted.close()
    for client in clients:
        client.close()
    sock.close()


def test_listener_disable_keeps_connections_queued(dispatcher):
    sock = create_listen_socket(Address("127.0.0.1", 0))
    accepted = Accepted()
    listener = TcpListenerImpl(dispatcher, sock, accepted)
    listener.disable()
    client = socket.create_connection(sock.getsockname())
    dispatcher.run(RunType.NON_BLOCK)
    assert accepted.fds == []
    listener.enable()
    dispatcher.run(RunType.NON_BLOCK)
    assert len(accepted.fds) == 1
    listener.close()
    accepted.close()
    client.close()
    sock.close()


def test_reuse_port_allows_one_socket_per_worker():
    first = create_listen_socket(Address("127.0.0.1", 0))
    second = create_listen_socket(Address("127.0.0.1", first.getsockname()[1]))
    assert second.getsockname() == first.getsockname()
    first.close()
    second.close()


def test_bind_conflict_without_reuse_port_raises():
    first = create_listen_socket(Address("127.0.0.1", 0), reuse_port=False)
    with pytest.raises(OSError):
        create_listen_socket(Address("127.0.0.1", first.getsockname()[1]), reuse_port=False)
    first.close()


def test_listener_survives_descriptor_exhaustion_without_spinning():
    """With RLIMIT_NOFILE exhausted, accept() fails with EMFILE: the listener
    pauses instead of spinning on a socket that stays readable, then recovers."""
    script = textwrap.dedent(
        """
        import os, resource, socket, time
        from pyevent_envoy.event import DispatcherImpl, RunType
        from pyevent_envoy.network import Address, TcpListenerImpl, create_listen_socket

        d = DispatcherImpl("emfile")
        sock = create_listen_socket(Address("127.0.0.1", 0))
        fds = []
        class CB:
            def on_accept(self, fd, remote):
                fds.append(fd)
        listener = TcpListenerImpl(d, sock, CB())
        client = socket.create_connection(sock.getsockname())
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        hogs = []
        try:
            while True:
                hogs.append(os.open("/dev/null", os.O_RDONLY))
        except OSError:
            pass
        start = time.process_time()
        deadline = time.monotonic() + 0.5
        passes = 0
        while time.monotonic() < deadline:
            t = d.create_timer(lambda: None); t.enable_timer(0.01)
            d.run(RunType.NON_BLOCK); t.close(); passes += 1
        cpu = time.process_time() - start
        assert listener.resource_errors >= 1, listener.resource_errors
        assert not fds
        for fd in hogs:
            os.close(fd)
        deadline = time.monotonic() + 5
        while not fds and time.monotonic() < deadline:
            t = d.create_timer(lambda: None); t.enable_timer(0.01)
            d.run(RunType.NON_BLOCK); t.close()
        assert len(fds) == 1, fds
        print("ok", listener.resource_errors, round(cpu, 3))
        for fd in fds:
            os.close(fd)
        listener.close(); client.close(); sock.close(); d.close()
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
        preexec_fn=lambda: __import__("resource").setrlimit(__import__("resource").RLIMIT_NOFILE, (256, 256)),
    )
    assert proc.returncode == 0, proc.stderr
    status, errors, _cpu = proc.stdout.split()
    assert status == "ok"
    # One backoff per ACCEPT_BACKOFF (0.1 s) over ~0.5 s, not one per loop pass.
    assert 1 <= int(errors) <= 10
