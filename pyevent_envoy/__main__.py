"""``python -m pyevent_envoy``: the same as the ``pyevent-envoy`` command."""

import sys

from pyevent_envoy.server.cli import main

sys.exit(main())
