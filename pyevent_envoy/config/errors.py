"""Configuration errors.

Every problem found in a bootstrap is a :class:`ConfigError` carrying the
YAML path of the offending value (``static_resources.clusters[0].name``) and
the reason.  The loader reports all problems of a configuration at once, as
Envoy's ``--mode validate`` does, in a :class:`ConfigErrors`, itself a
:class:`ConfigError` so one ``except ConfigError`` catches both.
"""

from __future__ import annotations

from typing import Iterable

from pyevent_envoy.errors import PyEventEnvoyError

__all__ = ["ConfigError", "ConfigErrors"]


class ConfigError(PyEventEnvoyError, ValueError):
    """One problem in a configuration.

    Attributes:
        path: where the problem is, as a dotted YAML path with list indices
            (``static_resources.listeners[0].address``); ``""`` for the
            configuration as a whole.
        reason: what is wrong there.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.path = path
        self.reason = reason

    @property
    def errors(self) -> tuple[ConfigError, ...]:
        """Every error this exception stands for: here just itself."""
        return (self,)

    def __reduce__(self):  # keep pickling working despite the two-argument constructor
        return (ConfigError, (self.path, self.reason))


class ConfigErrors(ConfigError):
    """All the problems found in one configuration.

    ``str()`` lists each error as ``path: reason``, one a line.  ``path`` and
    ``reason`` are those of the first error.
    """

    def __init__(self, errors: Iterable[ConfigError]) -> None:
        errs = tuple(errors)
        if not errs:
            raise ValueError("ConfigErrors needs at least one error")
        flat: list[ConfigError] = []
        for err in errs:
            flat.extend(err.errors)
        self._errors = tuple(flat)
        first = self._errors[0]
        PyEventEnvoyError.__init__(self, "\n".join(str(e) for e in self._errors))
        self.path = first.path
        self.reason = first.reason

    @property
    def errors(self) -> tuple[ConfigError, ...]:
        return self._errors

    def __len__(self) -> int:
        return len(self._errors)

    def __iter__(self):
        return iter(self._errors)

    def __reduce__(self):
        return (ConfigErrors, (self._errors,))
