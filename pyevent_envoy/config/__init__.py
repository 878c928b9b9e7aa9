"""Configuration: Envoy's v3 bootstrap YAML, the subset pyevent-envoy supports.

:func:`load_bootstrap` reads ``-c envoy.yaml`` (and ``--config-yaml``) into a
validated :class:`Bootstrap`, or raises :class:`ConfigErrors` listing every
problem with its YAML path.  A field pyevent-envoy does not support is an
error, never silently ignored.

The model classes are in :mod:`pyevent_envoy.config.bootstrap`; durations are
parsed by :mod:`pyevent_envoy.config.durations`.
"""

from pyevent_envoy.config.bootstrap import *  # noqa: F401,F403 - the model is the package's API
from pyevent_envoy.config.bootstrap import __all__ as _model_all
from pyevent_envoy.config.durations import format_duration as format_duration
from pyevent_envoy.config.durations import parse_duration as parse_duration
from pyevent_envoy.config.errors import ConfigError as ConfigError
from pyevent_envoy.config.errors import ConfigErrors as ConfigErrors
from pyevent_envoy.config.loader import load_bootstrap as load_bootstrap
from pyevent_envoy.config.loader import merge_config as merge_config
from pyevent_envoy.config.loader import parse_config_text as parse_config_text

__all__ = [
    "ConfigError",
    "ConfigErrors",
    "format_duration",
    "load_bootstrap",
    "merge_config",
    "parse_config_text",
    "parse_duration",
    *_model_all,
]
