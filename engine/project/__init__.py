"""The project: ``tradepost.yaml`` read and checked, the one place a run is configured from."""

from __future__ import annotations

from engine._config import ConfigError, Project, SourceConfig, VtexAccount, load_project

__all__ = ["ConfigError", "Project", "SourceConfig", "VtexAccount", "load_project"]
