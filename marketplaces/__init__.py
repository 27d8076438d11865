"""Marketplace connectors, order channels, the VTEX source and their stand-ins.

Each subpackage implements the engine's public connector contract (:mod:`engine.connectors`) and
is declared as an entry point in ``pyproject.toml``, like any third-party plug-in; the engine
finds them only through that registry (``engine.connectors.connector_class`` and its siblings).
"""

from __future__ import annotations
