"""Whoosh's internals are used in one module of services/search only.

services/search/whoosh_internals.py is the adapter: it alone may import Whoosh's
private modules (codecs, readers, writers, the TOC) and reach into objects'
private members. Every other module of the package uses the adapter and Whoosh's
public API, the modules and names listed in ``whoosh_internals.PUBLIC_WHOOSH``.
So a whoosh-reloaded upgrade can break only the adapter, which the contract test
(test_search_contract.py) checks against Whoosh's own searcher.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from services.search.whoosh_internals import PUBLIC_WHOOSH

PACKAGE = Path(__file__).resolve().parents[2] / "services" / "search"
ADAPTER = "whoosh_internals.py"
# Private-looking names that are a library's documented API, with where it says so.
DOCUMENTED = {
    "_get_current_object": "Flask: the documented way to reach the app behind current_app from another thread",
}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _whoosh_modules(tree: ast.AST) -> dict[str, str]:
    """Local names bound to whoosh modules (``from whoosh import index`` → index: whoosh.index)."""
    bound = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "whoosh":
            bound.update({alias.asname or alias.name: f"whoosh.{alias.name}" for alias in node.names})
        elif isinstance(node, ast.Import):
            bound.update({(alias.asname or alias.name): alias.name for alias in node.names
                          if alias.name.startswith("whoosh.") and alias.asname})
    return bound


def _allowed(module: str, name: str | None = None) -> bool:
    if module not in PUBLIC_WHOOSH:
        return False
    names = PUBLIC_WHOOSH[module]
    return name is None or (not _private(name) and (names is None or name in names))


def violations(source: str) -> list[str]:
    """What in ``source`` (a module other than the adapter) reaches below Whoosh's
    public API or into another object's private members, as readable lines."""
    tree = ast.parse(source)
    found = []
    modules = _whoosh_modules(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if (alias.name == "whoosh" or alias.name.startswith("whoosh.")) and not _allowed(alias.name):
                    found.append(f"line {node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "whoosh":
            for alias in node.names:
                ok = _allowed(f"whoosh.{alias.name}") if node.module == "whoosh" else _allowed(node.module, alias.name)
                if not ok:
                    found.append(f"line {node.lineno}: from {node.module} import {alias.name}")
        elif isinstance(node, ast.Attribute):
            owner = node.value.id if isinstance(node.value, ast.Name) else None
            if owner in modules and not _allowed(modules[owner], node.attr):
                found.append(f"line {node.lineno}: {owner}.{node.attr} ({modules[owner]})")
            elif _private(node.attr) and owner not in ("self", "cls") and node.attr not in DOCUMENTED:
                found.append(f"line {node.lineno}: .{node.attr} of {ast.unparse(node.value)}")
    return found


def _modules():
    return sorted(path for path in PACKAGE.glob("*.py") if path.name != ADAPTER)


@pytest.mark.parametrize("path", _modules(), ids=lambda path: path.name)
def test_only_the_adapter_reaches_below_whooshs_public_api(path):
    assert violations(path.read_text(encoding="utf-8")) == []


def test_the_adapter_exists_and_is_the_one_that_does():
    adapter = (PACKAGE / ADAPTER).read_text(encoding="utf-8")
    assert violations(adapter)  # it would fail the check: the check looks where it should


@pytest.mark.parametrize("source", [
    "from whoosh.codec.whoosh3 import W3LeafMatcher",
    "from whoosh.index import TOC",
    "from whoosh import writing",
    "import whoosh.reading as reading",
    "from whoosh import index\nindex.TOC.read(storage, 'MAIN', 1)",
    "matcher._maxid",
    "ix._read_toc()",
    "store._idle.clear()",
])
def test_the_check_catches_each_way_in(source):
    assert violations(source)


@pytest.mark.parametrize("source", [
    "from whoosh import columns, fields, index\nindex.open_dir(path)\nfields.Schema()",
    "from whoosh.index import create_in",
    "self._cache",
    "cls._made",
    "obj.__class__",
    "current_app._get_current_object()",
])
def test_the_check_lets_the_public_api_through(source):
    assert violations(source) == []


def test_index_fields_keep_the_module_an_index_on_disk_names_them_by():
    """Whoosh pickles the schema, field classes by module path, into every index: a
    field class moved to another module makes existing indexes unreadable."""
    from services.search import store

    for schema in (store.customer_schema(), store.note_schema()):
        for name in schema.names():
            assert type(schema[name]).__module__ in ("services.search.store", "whoosh.fields"), name
