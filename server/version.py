"""The package version, for health and OpenAPI."""

from __future__ import annotations

from importlib import metadata

try:
    VERSION = metadata.version("eql")
except metadata.PackageNotFoundError:  # running from a source tree
    VERSION = "0.0.0"
