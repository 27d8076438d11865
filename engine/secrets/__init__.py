"""Secrets: read from the environment or files, and masked in every message that could show them.

A plug-in registers each secret it obtains (a token, a key) so that no log line, error or plan
output prints it, in any of its encodings.
"""

from __future__ import annotations

from engine.secrets._redact import RedactingFilter, check_header_value, forget, read_secret, redact, register

__all__ = ["RedactingFilter", "check_header_value", "forget", "read_secret", "redact", "register"]
