"""Deferred deletion (Envoy's ``envoy/event/deferred_deletable.h``)."""

from __future__ import annotations

__all__ = ["DeferredDeletable"]


class DeferredDeletable:
    """Something that can be handed to :meth:`Dispatcher.deferred_delete`.

    Deriving from this class is optional: the dispatcher calls
    ``delete_is_pending()`` and ``close()`` when the object has them.  This is
    how a connection or a stream destroys itself from inside its own callback
    without tearing down state that the callback is still using.
    """

    __slots__ = ()

    def delete_is_pending(self) -> None:
        """Called at once, inside :meth:`Dispatcher.deferred_delete`."""

    def close(self) -> None:
        """Called later in the same loop iteration, after the current callback returns."""
