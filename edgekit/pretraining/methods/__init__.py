"""Self-supervised methods, one module each, registered in :mod:`.base`: SimCLR, MoCo v2, BYOL."""
from . import byol, moco, simclr  # noqa: F401  (registration)
from .base import Settings, SSLMethod, get_method, list_methods, register_method, resolve_settings

__all__ = ["SSLMethod", "Settings", "get_method", "list_methods", "register_method", "resolve_settings"]
