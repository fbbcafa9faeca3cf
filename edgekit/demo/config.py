"""``DemoConfig``: the options of ``edgekit demo`` (and :func:`edgekit.demo.server.serve`), validated.

Torch- and server-free, so the CLI reads its defaults from here without importing the server.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import EdgekitError
from ..numbers import positive_int
from ..stage_config import check_numbers

#: addresses served over plain HTTP (a secure context already); any other gets HTTPS
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
#: the port when none is given: HTTPS (phones open the camera only on secure pages), HTTP on localhost
HTTPS_PORT, HTTP_PORT = 8443, 8000
#: the largest TCP port
MAX_PORT = 65535


@dataclass
class DemoConfig:
    """Where to listen: ``host`` (every interface by default, so a phone on the network reaches
    it; a :data:`LOCAL_HOSTS` address keeps it on this machine over plain HTTP) and ``port``
    (None: :data:`HTTPS_PORT`, or :data:`HTTP_PORT` on localhost; :attr:`listen_port`)."""

    host: str = "0.0.0.0"
    port: int | None = None

    #: each number's check (:func:`~edgekit.stage_config.check_numbers`; the CLI's option types)
    CHECKS: ClassVar[dict[str, Any]] = {"port": positive_int}

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host.strip():
            raise EdgekitError(f"host must be an address such as 0.0.0.0 or 127.0.0.1, got {self.host!r}")
        check_numbers(self)
        if self.port is not None and self.port > MAX_PORT:
            raise EdgekitError(f"port must be at most {MAX_PORT}, got {self.port}")

    @property
    def listen_port(self) -> int:
        """:attr:`port`, else the default of the scheme :attr:`host` gets."""
        if self.port is not None:
            return self.port
        return HTTP_PORT if self.host in LOCAL_HOSTS else HTTPS_PORT
