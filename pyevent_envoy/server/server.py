"""The server: a main dispatcher, the workers, the cluster manager and the listeners.

Start-up, as Envoy's (``source/server/server.cc``):

1. the main dispatcher and the thread-local registry; the workers, each
   registered with it (their loops are not running yet);
2. the cluster manager with every cluster; route tables and connection
   manager settings, built once and shared read-only by the workers;
3. every listening socket bound, one per worker (``SO_REUSEPORT``), so a
   port in use is reported -- with the listener's YAML path -- before
   anything serves;
4. the main loop starts, initializes the clusters (first DNS answers), then
   starts the workers, each adding its listeners on its own thread.

Every ``stats_flush_interval`` (5 s by default) a timer on the main
dispatcher flushes the stats: the workers' histograms are merged and a new
interval begins (Envoy's ``flushStats``).

SIGTERM and SIGINT drain: the listeners close, every HTTP connection is
told to finish its current request with ``connection: close``, and the
server exits when no connection is left or ``drain_time_s`` has passed.  A
second signal exits at once.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import time
from typing import Any, Callable, Optional

from pyevent_envoy import access_log
from pyevent_envoy.config import bootstrap as bootstrap_model
from pyevent_envoy.config.bootstrap import Bootstrap
from pyevent_envoy.errors import PyEventEnvoyError
from pyevent_envoy.event.dispatcher import RunType
from pyevent_envoy.event.dispatcher_impl import DispatcherImpl
from pyevent_envoy.http.conn_manager_impl import ConnectionManagerConfig
from pyevent_envoy.http.filter import FilterFactoryContext
from pyevent_envoy.http.filters import create_filter_factories
from pyevent_envoy.http.router.config_impl import RouteTable
from pyevent_envoy.network.address import Address
from pyevent_envoy.network.listener_impl import create_listen_socket
from pyevent_envoy.network.ssl_socket import ssl_context_for
from pyevent_envoy.network.utility import get_local_address
from pyevent_envoy.server.admin import AdminFilter, AdminHandler
from pyevent_envoy.server.connection_handler import ConnectionHandlerImpl
from pyevent_envoy.server.drain_manager import DrainManager
from pyevent_envoy.server.worker_impl import WorkerImpl
from pyevent_envoy.stats import GAUGE, ServerStats, Stat, StatsStore
from pyevent_envoy.thread_local.thread_local_impl import InstanceImpl
from pyevent_envoy.upstream import ClusterManagerImpl, from_config

__all__ = ["Server", "StartupError"]

_log = logging.getLogger("pyevent_envoy.server")

#: How often the main thread checks whether draining is done.
DRAIN_POLL_INTERVAL = 0.1


class StartupError(PyEventEnvoyError):
    """The server cannot start; ``path`` is the YAML path of the culprit when there is one."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.path = path
        self.reason = reason


class _ListenerPlan:
    """One configured listener: its settings and one bound socket per worker."""

    __slots__ = ("name", "address", "hcm_config", "buffer_limit", "sockets", "ssl_context")

    def __init__(self, name: str, address: Address, hcm_config: ConnectionManagerConfig, buffer_limit: int, ssl_context: Any = None) -> None:
        self.name = name
        self.address = address
        self.hcm_config = hcm_config
        self.buffer_limit = buffer_limit
        self.sockets: list[Any] = []
        #: The filter chain's ``ssl.SSLContext`` (None: plaintext), shared by the workers.
        self.ssl_context = ssl_context


def _access_logs(configs: Any, path: str) -> tuple:
    logs = []
    for index, config in enumerate(configs):
        try:
            logs.append(access_log.from_config(config))
        except OSError as exc:
            raise StartupError(f"{path}[{index}].typed_config.path", f"cannot open {config.path}: {exc.strerror}") from None
    return tuple(logs)


def _hcm_config(
    hcm: Any, path: str, context: FilterFactoryContext, local_address: str, drain_manager: DrainManager
) -> ConnectionManagerConfig:
    return ConnectionManagerConfig(
        drain_decision=drain_manager,
        access_logs=_access_logs(hcm.access_log, f"{path}.access_log"),
        stat_prefix=hcm.stat_prefix,
        route_table=RouteTable(hcm.route_config),
        filter_factories=create_filter_factories(hcm.http_filters, context),
        server_name=hcm.server_name,
        use_remote_address=hcm.use_remote_address,
        xff_num_trusted_hops=hcm.xff_num_trusted_hops,
        generate_request_id=hcm.generate_request_id,
        request_timeout=hcm.request_timeout,
        stream_idle_timeout=hcm.stream_idle_timeout,
        idle_timeout=hcm.common_http_protocol_options.idle_timeout,
        drain_timeout=hcm.drain_timeout,
        delayed_close_timeout=hcm.delayed_close_timeout,
        max_request_headers_kb=hcm.max_request_headers_kb,
        accept_http_10=hcm.http_protocol_options.accept_http_10,
        default_host_for_http_10=hcm.http_protocol_options.default_host_for_http_10,
        upgrade_configs=hcm.upgrade_configs,
        internal_address_config=hcm.internal_address_config,
        local_address=local_address,
    )


class Server:
    """Runs a :class:`~pyevent_envoy.config.Bootstrap` until a signal (or :meth:`shutdown`).

    Args:
        bootstrap: the parsed, validated configuration.
        concurrency: the number of worker threads.
        drain_time_s: how long a drain may wait for connections to finish.
        on_ready: called on the main thread once every worker serves
            (with the server, so a caller can read :attr:`listen_addresses`).
    """

    def __init__(
        self,
        bootstrap: Bootstrap,
        *,
        concurrency: int = 1,
        drain_time_s: float = 600.0,
        on_ready: Optional[Callable[["Server"], None]] = None,
    ) -> None:
        self._created_at = time.monotonic()  # server.initialization_time_ms counts from here
        if concurrency < 1:
            raise StartupError("--concurrency", f"must be at least 1, got {concurrency}")
        self.bootstrap = bootstrap
        self.concurrency = concurrency
        self.drain_time_s = drain_time_s
        self._on_ready = on_ready
        self.main = DispatcherImpl("main_thread")
        self.tls = InstanceImpl()
        self.tls.register_thread(self.main, main=True)
        self.workers = [WorkerImpl(f"worker_{i}", tls=self.tls) for i in range(concurrency)]
        self.handlers: list[Optional[ConnectionHandlerImpl]] = [None] * concurrency
        #: Every stat the admin shows: the workers' scopes and the main thread's sources.
        self.stats_store = StatsStore()
        self.stats_store.add_source(self._server_stats)
        self._server_scope = self.stats_store.register("server.", ServerStats())
        self._flush_timer: Any = None
        self.cluster_manager = ClusterManagerImpl(self.main, self.tls, stats_store=self.stats_store)
        self._plans: list[_ListenerPlan] = []
        self._signals: list[Any] = []
        self._drain_timer: Any = None
        self._drain_deadline = 0.0
        #: Envoy's drain manager: ``/drain_listeners``' drain sequence and whether the
        #: server fails health checks (admin ``/healthcheck/fail``, a drain before exiting);
        #: the HTTP filters read the latter as their ``server_state``.
        self.drain_manager = DrainManager(drain_time_s)
        self._listeners_stop_timer: Any = None
        self._draining = False
        self._exit_when_drained = False
        self._started_workers = 0
        self._closed = False
        self._shutdown_hooks: list[Callable[[], None]] = []
        self._started_at = time.monotonic()
        self._admin_socket: Any = None
        self._admin_logs: tuple = ()
        self._admin_handler: Optional[ConnectionHandlerImpl] = None
        self.admin_address: Optional[Address] = None
        #: This host's address, found once as Envoy's LocalInfo finds it (x-forwarded-for uses it).
        self.local_address = get_local_address()
        try:
            self._add_clusters()
            self._plan_listeners()
            self._bind_admin()
            self._bind_listeners()
        except BaseException:
            self._release()
            raise

    # set-up

    def _add_clusters(self) -> None:
        for index, cluster in enumerate(self.bootstrap.static_resources.clusters):
            try:
                self.cluster_manager.add_cluster(*from_config(cluster))
            except ValueError as exc:
                raise StartupError(f"static_resources.clusters[{index}]", str(exc)) from None

    def _plan_listeners(self) -> None:
        for index, listener in enumerate(self.bootstrap.static_resources.listeners):
            hcm = listener.filter_chains[0].filters[0].typed_config
            address = Address(listener.address.address, listener.address.port_value)
            hcm_path = f"static_resources.listeners[{index}].filter_chains[0].filters[0].typed_config"
            context = FilterFactoryContext(
                stat_prefix=hcm.stat_prefix,
                route_config=hcm.route_config,
                server_state=self.drain_manager,
                stats_store=self.stats_store,
                local_cluster_name=self.bootstrap.node.cluster,
            )
            tls = listener.filter_chains[0].transport_socket
            ssl_context = ssl_context_for(tls) if tls is not None else None
            plan = _ListenerPlan(
                listener.name,
                address,
                _hcm_config(hcm, hcm_path, context, self.local_address, self.drain_manager),
                listener.per_connection_buffer_limit_bytes,
                ssl_context,
            )
            self._plans.append(plan)

    def _bind_listeners(self) -> None:
        for index, plan in enumerate(self._plans):
            address = plan.address
            for _worker in range(self.concurrency):
                try:
                    sock = create_listen_socket(address)
                except OSError as exc:
                    reason = os.strerror(exc.errno) if exc.errno else str(exc)
                    if exc.errno == errno.EADDRINUSE:
                        reason = "address already in use"
                    raise StartupError(
                        f"static_resources.listeners[{index}].address", f"cannot bind {address}: {reason}"
                    ) from None
                plan.sockets.append(sock)
                if address.port == 0:  # the other workers share the port the kernel picked
                    address = plan.address = Address(address.ip, sock.getsockname()[1])

    def _bind_admin(self) -> None:
        admin = self.bootstrap.admin
        if admin is None or admin.address is None:
            return
        address = Address(admin.address.address, admin.address.port_value)
        self._admin_logs = _access_logs(admin.access_log, "admin.access_log")
        try:
            self._admin_socket = create_listen_socket(address, reuse_port=False)
        except OSError as exc:
            reason = "address already in use" if exc.errno == errno.EADDRINUSE else os.strerror(exc.errno or 0)
            raise StartupError("admin.address", f"cannot bind {address}: {reason}") from None
        self.admin_address = Address(address.ip, self._admin_socket.getsockname()[1])

    def _start_admin(self) -> None:
        if self._admin_socket is None:
            return
        config = ConnectionManagerConfig(
            stat_prefix="admin",
            route_table=None,
            filter_factories=(AdminFilter.factory(AdminHandler(self)),),
            access_logs=self._admin_logs,
            local_address=self.local_address,
        )
        self._admin_handler = ConnectionHandlerImpl(self.main, self.cluster_manager)
        self._admin_handler.add_listener("admin", self._admin_socket, self.admin_address, config, 1024 * 1024)
        _log.info("admin serving on %s", self.admin_address)

    @property
    def draining(self) -> bool:
        return self._draining

    def _server_stats(self) -> list[Stat]:
        # server.uptime is live here; Envoy refreshes it at each stats flush (every 5 s).
        return [
            Stat("server.concurrency", GAUGE, self.concurrency, True),
            # Envoy's server.live: 0 once the server fails health checks.
            Stat("server.live", GAUGE, 0 if self._draining or self.drain_manager.health_check_failed else 1, True),
            Stat("server.uptime", GAUGE, int(time.monotonic() - self._started_at), True),
        ]

    def flush_stats(self) -> None:
        """Merge the workers' histograms into a new interval (the flush timer does it every
        ``stats_flush_interval``).  Main thread only."""
        self.stats_store.merge_histograms()
        if self._flush_timer is not None and not self._closed:
            self._flush_timer.enable_timer(self.bootstrap.stats_flush_interval)

    def stats(self) -> dict[str, int]:
        """Every stat with Envoy's name and its value, summed over the workers (see :mod:`pyevent_envoy.stats`)."""
        return {stat.name: stat.value for stat in self.stats_store.snapshot()}

    @property
    def listen_addresses(self) -> dict[str, Address]:
        """The bound address of each listener, by name (useful with port 0)."""
        return {plan.name: plan.address for plan in self._plans}

    # running

    def run(self) -> None:
        """Serve until a signal or :meth:`shutdown`; then stop everything.  Main thread only for signals."""
        main = self.main
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._signals.append(main.listen_for_signal(signum, self._on_signal))
        main.post(self._start_admin)
        main.post(lambda: self.cluster_manager.initialize(self._start_workers))
        self._flush_timer = main.create_timer(self.flush_stats)
        self._flush_timer.enable_timer(self.bootstrap.stats_flush_interval)
        try:
            main.run(RunType.RUN_UNTIL_EXIT)
        finally:
            self._release()

    def _start_workers(self) -> None:
        _log.info("all clusters initialized; starting %d worker(s)", self.concurrency)
        for index, worker in enumerate(self.workers):
            worker.start(lambda index=index: self._start_worker(index))

    def _start_worker(self, index: int) -> None:
        worker = self.workers[index]
        handler = ConnectionHandlerImpl(worker.dispatcher, self.cluster_manager, self.stats_store)
        for plan in self._plans:
            handler.add_listener(plan.name, plan.sockets[index], plan.address, plan.hcm_config, plan.buffer_limit, ssl_context=plan.ssl_context)
        self.handlers[index] = handler
        self.main.post(self._on_worker_started)

    def _on_worker_started(self) -> None:
        self._started_workers += 1
        if self._started_workers == self.concurrency:
            # Envoy's server.initialization_time_ms: from start-up until every worker serves.
            self._server_scope.initialization_time_ms.record_duration(time.monotonic() - self._created_at)
            for plan in self._plans:
                _log.info("listener %r serving on %s", plan.name, plan.address)
            if self._on_ready is not None:
                self._on_ready(self)

    # draining and stopping

    def _on_signal(self) -> None:
        if self._exit_when_drained:
            _log.warning("second signal: exiting now")
            self.main.exit()
            return
        self.drain(exit_when_drained=True)

    def drain(self, *, exit_when_drained: bool = True) -> None:
        """Stop accepting and ask every connection to finish.

        With ``exit_when_drained`` (signals), the server exits when no
        connection is left or on the deadline; without it (admin
        ``/drain_listeners``, as in Envoy) the process keeps running.
        """
        if exit_when_drained and not self._exit_when_drained:
            self._exit_when_drained = True
            self._drain_deadline = time.monotonic() + self.drain_time_s
            self._drain_timer = self.main.create_timer(self._check_drained)
            self._drain_timer.enable_timer(DRAIN_POLL_INTERVAL)
        if exit_when_drained:
            # Going away: fail health checks so that load balancers stop sending (Envoy's
            # /drain_listeners keeps passing them, and so does drain(exit_when_drained=False)).
            self.set_health_check_failed(True)
        if self._draining:
            return
        self._draining = True
        _log.info("draining (at most %g s)", self.drain_time_s)
        for index, worker in enumerate(self.workers):
            worker.dispatcher.post(lambda index=index: self._drain_worker(index))

    def set_health_check_failed(self, failed: bool) -> None:
        """Fail (or pass again) health checks: admin ``/healthcheck/fail`` and ``/ok``, and a drain before exiting.

        The health check filter then answers 503, ``/ready`` says DRAINING,
        and every response closes its connection (Envoy's drain manager
        counts a failed health check as draining).  Main thread; workers only read.
        """
        self.drain_manager.health_check_failed = failed

    def drain_listeners(self, *, graceful: bool = False, skip_exit: bool = False, inbound_only: bool = False) -> None:
        """Admin ``/drain_listeners``, as Envoy 1.40 does it (main thread).

        Starts the drain sequence (``drain_time_s``), during which responses
        close their connections with a growing probability
        (:class:`~pyevent_envoy.server.drain_manager.DrainManager`); the
        process keeps running and ``/ready`` stays LIVE.  The listeners stop
        accepting now; with ``graceful``, when the drain time is over (a
        later graceful call while draining changes nothing); with
        ``skip_exit``, never.  ``inbound_only`` drains only the listeners
        whose ``traffic_direction`` is INBOUND: none, as that field is not
        supported (Envoy leaves the same listeners alone: nothing happens).
        """
        if inbound_only:
            return
        if graceful or skip_exit:
            if not self.drain_manager.start_drain_sequence() or skip_exit:
                return
            self._listeners_stop_timer = self.main.create_timer(self._stop_listeners)
            self._listeners_stop_timer.enable_timer(self.drain_time_s)
            return
        self.drain_manager.start_drain_sequence()
        self._stop_listeners()

    def _stop_listeners(self) -> None:
        for index, worker in enumerate(self.workers):
            worker.dispatcher.post(lambda index=index: self._stop_worker_listeners(index))

    def _stop_worker_listeners(self, index: int) -> None:
        handler = self.handlers[index]
        if handler is not None:
            handler.stop_listeners()

    def _drain_worker(self, index: int) -> None:
        handler = self.handlers[index]
        if handler is not None:
            handler.stop_listeners()
            handler.drain()

    def _check_drained(self) -> None:
        active = sum(handler.num_connections for handler in self.handlers if handler is not None)
        if active == 0 or time.monotonic() >= self._drain_deadline:
            if active:
                _log.warning("drain time over with %d connection(s) left; closing them", active)
            self.main.exit()
            return
        self._drain_timer.enable_timer(DRAIN_POLL_INTERVAL)

    def shutdown(self) -> None:
        """Exit the main loop from any thread; :meth:`run` then stops everything."""
        self.main.exit()

    def add_shutdown_hook(self, hook: Callable[[], None]) -> None:
        """Run ``hook()`` on the main thread after the workers stopped (e.g. to close what runs on the main loop)."""
        self._shutdown_hooks.append(hook)

    def _shutdown_worker(self, index: int) -> None:
        handler = self.handlers[index]
        if handler is not None:
            handler.shutdown()
        tlcm = self.cluster_manager.thread_local_cluster_manager()
        if tlcm is not None:
            for name in tlcm.names():
                tlc = tlcm.get(name)
                for pool in list(tlc.conn_pools.values()):
                    pool.close()
        self.workers[index].dispatcher.clear_deferred_delete_list()

    def _release(self) -> None:
        if self._closed:
            return
        self._closed = True
        for index, worker in enumerate(self.workers):
            if worker.thread is not None:
                worker.dispatcher.post(lambda index=index: self._shutdown_worker(index))
        self.tls.shutdown_global_threading()
        for worker in self.workers:
            worker.stop()
        for plan in self._plans:
            for sock in plan.sockets:
                sock.close()
        if self._admin_handler is not None:
            self._admin_handler.shutdown()
        if self._admin_socket is not None:
            self._admin_socket.close()
        if self._listeners_stop_timer is not None:
            self._listeners_stop_timer.close()
            self._listeners_stop_timer = None
        if self._drain_timer is not None:
            self._drain_timer.close()
        if self._flush_timer is not None:
            self._flush_timer.close()
        for event in self._signals:
            event.close()
        for hook in self._shutdown_hooks:
            hook()
        self.cluster_manager.shutdown()
        self.tls.shutdown_thread()
        self.main.clear_deferred_delete_list()
        self.main.close()
