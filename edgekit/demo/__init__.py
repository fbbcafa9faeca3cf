"""``edgekit demo``: a streaming gesture model live on a phone's camera, in the browser.

A small local web server (:mod:`.server`) serves a page built from ``web/`` (its built
assets and the LiteRT.js WASM runtime live in ``static/``), an exported streaming
``.tflite`` and a page manifest (:mod:`.model`: the export manifest plus the names
LiteRT.js calls the tensors). Phones open the camera and WebGPU only on secure pages,
so the server speaks HTTPS with a per-machine self-signed certificate (:mod:`.cert`),
except on localhost; it prints the URL and a terminal QR code (:mod:`.qr`).
"""
from __future__ import annotations

__all__ = ["DemoModel", "DemoServer", "load_demo_model", "serve"]


def __getattr__(name: str):  # lazy: the CLI imports this package without the server's dependencies
    if name in ("DemoModel", "load_demo_model"):
        from . import model

        return getattr(model, name)
    if name in ("DemoServer", "serve"):
        from . import server

        return getattr(server, name)
    raise AttributeError(name)
