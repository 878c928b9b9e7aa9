"""HTTP: header maps and codecs (Envoy's ``source/common/http``).

- :class:`HeaderMap`: the ordered, case-insensitive header multimap.
- :mod:`pyevent_envoy.http.codec`: the sans-I/O HTTP/1.1 codec
  (:class:`~pyevent_envoy.http.codec.ServerConnectionImpl`,
  :class:`~pyevent_envoy.http.codec.ClientConnectionImpl`).

This package imports nothing from the event or network layers.
"""

from pyevent_envoy.http.header_map import PSEUDO_HEADERS as PSEUDO_HEADERS
from pyevent_envoy.http.header_map import HeaderMap as HeaderMap

__all__ = ["HeaderMap", "PSEUDO_HEADERS"]
