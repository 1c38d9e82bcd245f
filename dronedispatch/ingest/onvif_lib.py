"""onvif-zeep-async, imported without its side effect on logging.

``onvif.client`` calls ``logging.basicConfig(level=INFO)`` when it is imported: in a process that has
not configured logging yet (the CLI configures it only after parsing its arguments, a test run never
does), that would give the root logger a stderr handler at INFO, and the process's own configuration
would then be ignored. A handler held on the root logger for the length of the import makes that call
a no-op. Import the library's names from here, not from ``onvif``.
"""

from __future__ import annotations

import logging

_root = logging.getLogger()
_guard = logging.NullHandler()
_root.addHandler(_guard)
try:
    from onvif import ONVIFCamera
    from onvif.exceptions import ONVIFError
    from onvif.util import is_auth_error, stringify_onvif_error
finally:
    _root.removeHandler(_guard)

__all__ = ["ONVIFCamera", "ONVIFError", "is_auth_error", "stringify_onvif_error"]
