"""The ``pyevent-envoy`` command: Envoy's command line for the supported subset.

::

    pyevent-envoy -c envoy.yaml [--config-yaml YAML] [--concurrency N]
                  [-l LEVEL] [--mode serve|validate] [--drain-time-s S]

Without ``-c`` or ``--config-yaml`` it runs the built-in default
configuration (:mod:`pyevent_envoy.server.default_config`) in front of a demo
upstream it starts itself.  Every configuration error is reported with its
YAML path before anything binds; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Optional, Sequence

from pyevent_envoy import __version__
from pyevent_envoy.config import ConfigError, load_bootstrap
from pyevent_envoy.network.address import Address
from pyevent_envoy.server.log_levels import LEVELS
from pyevent_envoy.server.malloc_tuning import tune_malloc

__all__ = ["main"]

#: Envoy's level names (and its ``warn`` alias), as ``-l`` takes them.
_LOG_LEVELS = {**LEVELS, "warn": logging.WARNING}


def _default_concurrency() -> int:
    """1 on GIL builds (more threads add no CPU for Python work); the cores when free-threaded."""
    gil_enabled = getattr(sys, "_is_gil_enabled", lambda: True)()
    return 1 if gil_enabled else max(1, os.cpu_count() or 1)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyevent-envoy",
        description="Envoy's HTTP/1.1 reverse proxy, in Python on libevent, configured with Envoy's v3 YAML.",
    )
    parser.add_argument("-c", "--config-path", help="the bootstrap configuration (YAML or JSON)")
    parser.add_argument("--config-yaml", help="YAML merged over --config-path, as Envoy merges it")
    parser.add_argument(
        "--concurrency", type=int, default=None, help="worker threads (default: 1 with the GIL, else the CPU count)"
    )
    parser.add_argument("-l", "--log-level", default="info", choices=sorted(_LOG_LEVELS), help="log level")
    parser.add_argument("--mode", default="serve", choices=("serve", "validate"), help="validate: check and exit")
    parser.add_argument("--drain-time-s", type=float, default=600.0, help="how long SIGTERM/SIGINT may drain")
    parser.add_argument(
        "--base-id", type=int, default=None, help="accepted for Envoy compatibility (no hot restart here)"
    )
    parser.add_argument("--disable-hot-restart", action="store_true", help="accepted for Envoy compatibility")
    parser.add_argument("--version", action="version", version=f"pyevent-envoy {__version__}")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=_LOG_LEVELS[args.log_level],
        format="[%(asctime)s][%(threadName)s][%(levelname)s][%(name)s] %(message)s",
        stream=sys.stderr,
    )
    if args.mode == "serve":
        tune_malloc()  # process-wide, so done by the command, not by the library
    concurrency = args.concurrency if args.concurrency is not None else _default_concurrency()
    if concurrency < 1:
        print(f"error: --concurrency must be at least 1, got {concurrency}", file=sys.stderr)
        return 1

    demo = None
    if args.config_path is None and args.config_yaml is None:
        from pyevent_envoy.server.default_config import default_config_yaml
        from pyevent_envoy.server.demo_upstream import DemoUpstream

        if args.mode == "serve":
            demo = DemoUpstream(Address("127.0.0.1", 0))
            config_text = default_config_yaml(demo.address.port)
        else:
            config_text = default_config_yaml(8080)
        load_args = {"yaml_text": config_text}
    else:
        load_args = {"path": args.config_path, "yaml_text": args.config_yaml}

    try:
        bootstrap = load_bootstrap(**load_args)
    except ConfigError as exc:
        print(f"error: invalid configuration:\n{exc}", file=sys.stderr)
        if demo is not None:
            demo.close()
        return 1
    except OSError as exc:
        print(f"error: cannot read the configuration: {exc}", file=sys.stderr)
        return 1

    if args.mode == "validate":
        if args.config_path:
            name = args.config_path
        elif args.config_yaml:
            name = "--config-yaml"
        else:
            name = "default"
        print(f"configuration '{name}' OK")
        return 0

    from pyevent_envoy.server.server import Server, StartupError

    def on_ready(server: Server) -> None:
        for name, address in server.listen_addresses.items():
            print(f"pyevent-envoy: listener {name!r} on http://{address}/", file=sys.stderr, flush=True)
        if demo is not None:
            address = next(iter(server.listen_addresses.values()))
            print(
                f"pyevent-envoy: default configuration, proxying to the demo upstream on {demo.address}\n"
                f"try:  curl -i http://{address}/      (Ctrl-C to stop)",
                file=sys.stderr,
                flush=True,
            )

    try:
        server = Server(bootstrap, concurrency=concurrency, drain_time_s=args.drain_time_s, on_ready=on_ready)
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if demo is not None:
            demo.close()
        return 1
    if demo is not None:
        demo.start(server.main)
        server.add_shutdown_hook(demo.close)
    server.run()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
