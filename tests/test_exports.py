"""The public surface: each symbol exported once, from where it is defined, with a sane ``__module__``."""

import collections
import importlib
import inspect
import pkgutil

import pytest

import pyevent_envoy
import pyevent_envoy.event
import pyevent_envoy.testing

PACKAGES = [pyevent_envoy, pyevent_envoy.event, pyevent_envoy.testing]


def _submodules(package):
    return [
        importlib.import_module(f"{package.__name__}.{info.name}")
        for info in pkgutil.iter_modules(package.__path__)
        if not info.name.startswith("_")
    ]


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_exports_all_has_no_duplicates_and_every_name_resolves(package):
    names = package.__all__
    assert [name for name, count in collections.Counter(names).items() if count > 1] == []
    for name in names:
        assert hasattr(package, name), f"{package.__name__}.__all__ names missing {name!r}"


@pytest.mark.parametrize("package", [pyevent_envoy.event, pyevent_envoy.testing], ids=lambda p: p.__name__)
def test_exports_every_public_module_declares_all(package):
    for module in _submodules(package):
        assert isinstance(getattr(module, "__all__", None), list), f"{module.__name__} has no __all__"
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.__all__ names missing {name!r}"


@pytest.mark.parametrize("package", [pyevent_envoy.event, pyevent_envoy.testing], ids=lambda p: p.__name__)
def test_exports_each_public_symbol_exported_once_with_sane_module(package):
    exported = {name: getattr(package, name) for name in package.__all__}
    # Nothing public in the package namespace is left out of __all__ (submodules aside).
    public = {
        name
        for name, value in vars(package).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public == set(exported)
    # Each object is exported under one name only.
    by_identity = collections.Counter(id(value) for value in exported.values())
    assert [name for name, value in exported.items() if by_identity[id(value)] > 1] == []
    for name, value in exported.items():
        if not (inspect.isclass(value) or inspect.isfunction(value)):
            continue
        # Defined in a submodule of this package, under the same name, and listed in its __all__.
        module_name = value.__module__
        assert module_name.startswith(package.__name__ + "."), f"{name}.__module__ == {module_name!r}"
        module = importlib.import_module(module_name)
        assert getattr(module, name) is value
        assert name in module.__all__, f"{module_name}.__all__ lacks {name}"


def test_exports_top_level_errors_come_from_pyevent_envoy_errors():
    for name in ("LibeventError", "PyEventEnvoyError"):
        assert getattr(pyevent_envoy, name).__module__ == "pyevent_envoy.errors"
    from pyevent_envoy.errors import DispatcherClosedError, LibeventError, PyEventEnvoyError

    assert issubclass(LibeventError, (PyEventEnvoyError, OSError))
    assert issubclass(DispatcherClosedError, (PyEventEnvoyError, RuntimeError))


@pytest.mark.parametrize(
    "interface, impl, reference",
    [
        ("Dispatcher", "DispatcherImpl", "ReferenceDispatcher"),
        ("Timer", "TimerImpl", "ReferenceTimer"),
        ("SchedulableCallback", "SchedulableCallbackImpl", "ReferenceSchedulableCallback"),
        ("FileEvent", "FileEventImpl", "ReferenceFileEvent"),
        ("SignalEvent", "SignalEventImpl", "ReferenceSignalEvent"),
    ],
)
def test_exports_implementations_derive_from_their_interface(interface, impl, reference):
    from pyevent_envoy.testing import reference_dispatcher

    base = getattr(pyevent_envoy.event, interface)
    assert inspect.isabstract(base)
    assert issubclass(getattr(pyevent_envoy.event, impl), base)
    assert issubclass(getattr(reference_dispatcher, reference), base)
    assert not inspect.isabstract(getattr(pyevent_envoy.event, impl))
    assert not inspect.isabstract(getattr(reference_dispatcher, reference))
