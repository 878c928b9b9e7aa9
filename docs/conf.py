"""Sphinx configuration for pyevent-envoy.

Build with ``sphinx-build -W -b html docs docs/_build/html`` from the
repository root.  autodoc imports the package, so it must be installed (or
built in place) with its compiled ``pyevent_envoy._libevent`` extension.
Nothing here reaches the network: intersphinx is not used.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

try:
    import pyevent_envoy
except ImportError:  # not installed: use the checkout (built in place)
    sys.path.insert(0, str(ROOT))
    import pyevent_envoy

try:
    import pyevent_envoy.event  # noqa: F401  (needs the compiled extension)
except ImportError as exc:
    raise RuntimeError(
        "the docs import pyevent_envoy.event, which needs the compiled extension: "
        "install the package first (pip install -e .)"
    ) from exc

# -- Project -----------------------------------------------------------------

project = "pyevent-envoy"
author = "pyevent-envoy developers"
copyright = "pyevent-envoy developers"
release = pyevent_envoy.__version__
version = ".".join(release.split(".")[:2])

# -- General -----------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "examples"]
templates_path: list[str] = []
root_doc = "index"
language = "en"
pygments_style = "sphinx"
default_role = "literal"

# -- autodoc / napoleon -----------------------------------------------------

# Contracts live on the interfaces; an *Impl method without a docstring of
# its own is an override of a documented interface method, so it is not
# repeated on the implementation (autodoc would otherwise copy it).
autodoc_inherit_docstrings = False
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_class_signature = "mixed"
autodoc_preserve_defaults = True
autoclass_content = "class"

napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_include_init_with_doc = False
napoleon_use_rtype = False
napoleon_attr_annotations = True

# -- HTML ------------------------------------------------------------------------

html_theme = "alabaster"
html_title = f"pyevent-envoy {release}"
html_static_path: list[str] = []
html_theme_options = {
    "description": "Envoy's event-driven architecture on libevent, for Python",
    "fixed_sidebar": True,
    "show_relbars": True,
    # wide enough for the examples (at most 79 columns) and the module names in the sidebar
    "page_width": "1180px",
    "body_max_width": "none",
    "sidebar_width": "260px",
}
html_sidebars = {
    "**": ["about.html", "navigation.html", "relations.html", "searchbox.html"],
}


# -- Hooks ------------------------------------------------------------------------


_ORIGINAL_ATTRIBUTE_DOCSTRINGS: dict[str, list[str]] = {}


def _stash_attribute_docstring(app, what, name, obj, options, lines):
    """Remember an attribute's docstring as written (runs before napoleon)."""
    if what in ("attribute", "data", "property"):
        _ORIGINAL_ATTRIBUTE_DOCSTRINGS[name] = list(lines)


def _restore_attribute_docstring(app, what, name, obj, options, lines):
    """Undo napoleon on attribute docstrings (runs after it).

    Napoleon reads ``#: words: more words`` (and a property's first line)
    as ``type: description``, so "created and not closed: what a leak check
    expects" would lose its first half to a bogus type.  Attribute
    docstrings here are prose and their types come from annotations, so
    they are used as written.
    """
    if what in ("attribute", "data", "property"):
        original = _ORIGINAL_ATTRIBUTE_DOCSTRINGS.pop(name, None)
        if original is not None:
            lines[:] = original


def _import_object(modname, qualname):
    import importlib

    obj = importlib.import_module(modname)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _prefer_context(node, target, found):
    """Narrow ambiguous short names to the referring class (and its bases), then module."""
    modname = node.get("py:module")
    clsname = node.get("py:class")
    if modname and clsname:
        try:
            cls = _import_object(modname, clsname)
        except Exception:  # the reference context is not importable: no preference
            cls = None
        if isinstance(cls, type):
            for base in cls.__mro__:
                hits = {n: e for n, e in found.items() if n.endswith(f".{base.__name__}.{target}")}
                if len(hits) == 1:
                    return hits
    if modname:
        hits = {n: e for n, e in found.items() if n.startswith(modname + ".")}
        if len(hits) == 1:
            return hits
    return found


def _inherited_member(domain, target, objtypes):
    """``WorkerImpl.stop`` -> ``Worker.stop`` when only the interface documents it."""
    clsname, _, attr = target.rpartition(".")
    classes = [
        name for name, entry in domain.objects.items()
        if (name == clsname or name.endswith("." + clsname)) and not entry.aliased and entry.objtype in ("class", "exception")
    ]
    if len(classes) != 1:
        return {}
    modname, _, qualname = classes[0].rpartition(".")
    try:
        cls = _import_object(modname, qualname)
    except Exception:  # not importable: leave the reference unresolved
        return {}
    for base in getattr(cls, "__mro__", ())[1:]:
        hits = {
            name: entry for name, entry in domain.objects.items()
            if name.endswith(f".{base.__name__}.{attr}") and not entry.aliased
            and (not objtypes or entry.objtype in objtypes)
        }
        if len(hits) == 1:
            return hits
    return {}


def _resolve_short_python_name(app, env, node, contnode):
    """Resolve ``:class:`Timer``` and friends to the one documented object of that name.

    Docstrings name classes the way their module imports them (``Timer``,
    ``Dispatcher.post``), while the reference documents them under their
    public package (``pyevent_envoy.event.Timer``).  Sphinx's exact lookup
    misses those; this finds the unique documented object whose name ends
    with the target, preferring the referring class and its bases.
    Anything still ambiguous or unknown stays plain text, as before.
    """
    if node.get("refdomain") != "py":
        return None
    from sphinx.util.nodes import make_refnode

    domain = env.get_domain("py")
    target = node["reftarget"].lstrip(".~")
    objtypes = set(domain.objtypes_for_role(node["reftype"]) or ())
    suffix = "." + target
    found = {
        name: entry
        for name, entry in domain.objects.items()
        if name.endswith(suffix) and not entry.aliased and (not objtypes or entry.objtype in objtypes)
    }
    if len(found) > 1:
        found = _prefer_context(node, target, found)
    elif not found and "." in target:
        found = _inherited_member(domain, target, objtypes)
    if len(found) != 1:
        return None
    ((name, entry),) = found.items()
    return make_refnode(app.builder, node["refdoc"], entry.docname, entry.node_id, contnode, name)


def setup(app):
    # napoleon's own handler runs at the default priority, 500
    app.connect("autodoc-process-docstring", _stash_attribute_docstring, priority=499)
    app.connect("autodoc-process-docstring", _restore_attribute_docstring, priority=501)
    app.connect("missing-reference", _resolve_short_python_name)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
