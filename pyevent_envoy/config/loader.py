"""Loading a bootstrap: ``-c envoy.yaml`` and ``--config-yaml``, as Envoy does.

The file (YAML, or JSON, which YAML reads too) is parsed, then the
``--config-yaml`` text is parsed and merged over it the way Envoy merges the
two protos: mappings merge field by field, lists are concatenated (so
``--config-yaml`` adds listeners and clusters), scalars are replaced, and
setting one member of a ``oneof`` (``admin.address.socket_address`` ...)
clears the others.  The result is validated as a whole and every problem is
reported in one :class:`~pyevent_envoy.config.errors.ConfigErrors`.

The YAML dialect follows Envoy's: no timestamps (``2024-01-01`` stays a
string), no ``<<`` merge keys, integers in decimal, hex (``0x1F90``) or
octal (``017620``) without ``_`` separators or ``1:30`` sexagesimals; a key
given twice is an error rather than a silent override.
"""

from __future__ import annotations

import os
import re
from typing import Any, Mapping, Optional, Union

import yaml

from pyevent_envoy.config._parse import parse_bootstrap
from pyevent_envoy.config.bootstrap import Bootstrap
from pyevent_envoy.config.errors import ConfigError, ConfigErrors

__all__ = ["load_bootstrap", "merge_config", "parse_config_text"]

_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_DROPPED_TAGS = {"tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:merge", _INT_TAG, _FLOAT_TAG}


class _YamlMap(dict):
    """A YAML mapping that remembers which of its keys were given more than once."""

    __slots__ = ("duplicates",)

    def __init__(self) -> None:
        super().__init__()
        self.duplicates: list[Any] = []


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, with scalars resolved as Envoy's YAML reader resolves them."""

    def construct_yaml_map(self, node):  # type: ignore[override]
        data = _YamlMap()
        yield data
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, "found an unhashable key", key_node.start_mark
                ) from None
            value = self.construct_object(value_node, deep=True)
            if key in data and key not in data.duplicates:
                data.duplicates.append(key)
            data[key] = value


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _INT_TAG,
    re.compile(r"^(?:[-+]?(?:0|[1-9][0-9]*)|[-+]?0x[0-9a-fA-F]+|[-+]?0[0-7]+)$"),
    list("-+0123456789"),
)
_Loader.add_implicit_resolver(
    _FLOAT_TAG,
    re.compile(
        r"^(?:[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?[0-9]+[eE][-+]?[0-9]+"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)
_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_yaml_map)


def parse_config_text(text: str, *, source: str = "") -> Any:
    """Parse YAML (or JSON) text into plain Python data, as the bootstrap reader expects.

    Raises:
        ConfigErrors: the text is not valid YAML.
    """
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        where = f" in {source}" if source else ""
        raise ConfigErrors([ConfigError("", f"invalid YAML{where}: {exc}")]) from None


# Members of the oneofs that --config-yaml can reach without going through a list.
_ONEOF_GROUPS = (
    frozenset({"socket_address", "pipe", "envoy_internal_address", "socketAddress", "envoyInternalAddress"}),
    frozenset({"port_value", "named_port", "portValue", "namedPort"}),
)


def merge_config(base: Any, overlay: Any) -> Any:
    """Merge ``overlay`` into ``base`` as protobuf's ``MergeFrom`` would; return the result.

    Mappings merge key by key, lists are concatenated, anything else in
    ``overlay`` replaces the value in ``base``; a ``null`` or an empty string
    in ``overlay`` leaves ``base``'s value alone (proto3 leaves unset fields
    alone).  Neither argument is modified.
    """
    if overlay is None:
        return base
    if isinstance(base, Mapping) and isinstance(overlay, Mapping):
        merged = _YamlMap()
        for k, v in base.items():
            merged[k] = v
        merged.duplicates.extend(getattr(base, "duplicates", ()))
        merged.duplicates.extend(k for k in getattr(overlay, "duplicates", ()) if k not in merged.duplicates)
        for key, value in overlay.items():
            if value is None or value == "":
                continue
            for group in _ONEOF_GROUPS:
                if key in group:
                    for other in group - {key}:
                        merged.pop(other, None)
            merged[key] = merge_config(merged[key], value) if key in merged else value
        return merged
    if isinstance(base, list) and isinstance(overlay, list):
        return base + overlay
    return overlay


def _read_file(path: Union[str, os.PathLike]) -> str:
    name = os.fspath(path)
    if name.endswith((".pb", ".pb_text")):
        raise ConfigErrors(
            [ConfigError("", f"{name}: binary and text-proto configurations are not supported; use YAML or JSON")]
        )
    try:
        with open(name, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise ConfigErrors([ConfigError("", f"unable to read configuration file {name!r}: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError:
        raise ConfigErrors([ConfigError("", f"configuration file {name!r} is not UTF-8 text")]) from None


def load_bootstrap(
    path: Optional[Union[str, os.PathLike]] = None,
    yaml_text: Optional[str] = None,
) -> Bootstrap:
    """Load and validate a bootstrap.

    Args:
        path: the configuration file (``-c`` / ``--config-path``).
        yaml_text: configuration text (``--config-yaml``), merged over the
            file's content when both are given.

    Returns:
        The validated :class:`~pyevent_envoy.config.bootstrap.Bootstrap`.

    Raises:
        ConfigErrors: the configuration is invalid or uses something
            pyevent-envoy does not support; it lists every problem found,
            each with its YAML path.
    """
    if path is None and yaml_text is None:
        raise ConfigErrors(
            [ConfigError("", "at least one of a configuration file path or configuration YAML text is required")]
        )
    data: Any = None
    if path is not None:
        data = parse_config_text(_read_file(path), source=os.fspath(path))
    if yaml_text is not None:
        overlay = parse_config_text(yaml_text, source="--config-yaml")
        if path is None or data is None:
            data = overlay
        elif overlay is not None and not isinstance(overlay, Mapping):
            raise ConfigErrors([ConfigError("", "--config-yaml: expected a mapping (Bootstrap)")])
        elif isinstance(data, Mapping) and overlay is not None:
            data = merge_config(data, overlay)
    bootstrap, errors = parse_bootstrap(data)
    if errors:
        raise ConfigErrors(errors)
    assert bootstrap is not None
    return bootstrap
