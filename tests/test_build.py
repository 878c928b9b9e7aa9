"""How the build finds libevent (``csrc/ffi_build.py``), without compiling anything.

A machine without libevent must get the install command, not a compiler
error; a prefix named by ``PYEVENT_ENVOY_LIBEVENT_PREFIX`` must win over
everything else and never silently fall back.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

FFI_BUILD = Path(__file__).resolve().parent.parent / "csrc" / "ffi_build.py"

pytestmark = pytest.mark.skipif(not FFI_BUILD.is_file(), reason="needs the source tree (csrc/ffi_build.py)")


@pytest.fixture
def ffi_build(monkeypatch):
    """csrc/ffi_build.py imported by path, with the discovery environment cleared."""
    for var in ("PYEVENT_ENVOY_LIBEVENT_PREFIX", "PKG_CONFIG", "PKG_CONFIG_PATH"):
        monkeypatch.delenv(var, raising=False)
    spec = importlib.util.spec_from_file_location("_pe_ffi_build_under_test", FFI_BUILD)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_prefix(root: Path, libdir: str = "lib") -> Path:
    """A fake libevent install: the header and both libraries, all empty files."""
    (root / "include" / "event2").mkdir(parents=True)
    (root / "include" / "event2" / "event.h").touch()
    (root / libdir).mkdir(parents=True)
    for name in ("libevent_core.so", "libevent_pthreads.so"):
        (root / libdir / name).touch()
    return root


def test_find_libevent_bad_prefix_names_the_install_command(ffi_build, monkeypatch, tmp_path):
    monkeypatch.setenv("PYEVENT_ENVOY_LIBEVENT_PREFIX", str(tmp_path / "nonexistent"))
    with pytest.raises(ffi_build.LibeventNotFound) as info:
        ffi_build.find_libevent()
    message = str(info.value)
    assert "apt-get install" in message
    assert "libevent-dev" in message
    assert "PYEVENT_ENVOY_LIBEVENT_PREFIX" in message
    assert str(tmp_path / "nonexistent") in message


def test_find_libevent_bad_prefix_does_not_fall_back(ffi_build, monkeypatch, tmp_path):
    # The header alone is not enough, and the system's libevent must not be used instead.
    (tmp_path / "include" / "event2").mkdir(parents=True)
    (tmp_path / "include" / "event2" / "event.h").touch()
    monkeypatch.setenv("PYEVENT_ENVOY_LIBEVENT_PREFIX", str(tmp_path))
    with pytest.raises(ffi_build.LibeventNotFound, match="apt-get install"):
        ffi_build.find_libevent()


def test_find_libevent_nothing_anywhere(ffi_build, monkeypatch, tmp_path):
    monkeypatch.setenv("PKG_CONFIG", "false")
    monkeypatch.setattr(ffi_build, "DEFAULT_PREFIXES", (str(tmp_path / "usr"), str(tmp_path / "usr" / "local")))
    with pytest.raises(ffi_build.LibeventNotFound) as info:
        ffi_build.find_libevent()
    message = str(info.value)
    assert "apt-get install" in message
    assert "dnf install" in message
    assert "brew install" in message


@pytest.mark.parametrize("libdir", ["lib", "lib64", "lib/x86_64-linux-gnu"])
def test_find_libevent_prefix(ffi_build, monkeypatch, tmp_path, libdir):
    prefix = make_prefix(tmp_path / "opt" / "libevent", libdir)
    monkeypatch.setenv("PYEVENT_ENVOY_LIBEVENT_PREFIX", str(prefix))
    found = ffi_build.find_libevent()
    assert found["include_dirs"] == [str(prefix / "include")]
    assert found["library_dirs"] == [str(prefix / libdir)]
    assert found["libraries"] == ["event_core", "event_pthreads"]
    # The module must load this libevent at run time without LD_LIBRARY_PATH.
    assert found["extra_link_args"] == [f"-Wl,-rpath,{prefix / libdir}"]


def test_find_libevent_default_prefixes_without_pkg_config(ffi_build, monkeypatch, tmp_path):
    prefix = make_prefix(tmp_path / "usr" / "local")
    monkeypatch.setenv("PKG_CONFIG", "false")
    monkeypatch.setattr(ffi_build, "DEFAULT_PREFIXES", (str(tmp_path / "usr"), str(prefix)))
    found = ffi_build.find_libevent()
    assert found["include_dirs"] == [str(prefix / "include")]


def _pkg_config_has_libevent() -> bool:
    exe = shutil.which("pkg-config") or shutil.which("pkgconf")
    if exe is None:
        return False
    args = [exe, "--atleast-version=2.1", "libevent_core", "libevent_pthreads"]
    return subprocess.run(args, capture_output=True, check=False).returncode == 0


@pytest.mark.skipif(not _pkg_config_has_libevent(), reason="pkg-config does not know libevent >= 2.1 here")
def test_find_libevent_pkg_config(ffi_build):
    found = ffi_build.find_libevent()
    assert found["how"].startswith("pkg-config")
    assert "event_core" in found["libraries"]
    assert "event_pthreads" in found["libraries"]
