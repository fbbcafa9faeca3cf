"""The demo's web server: the built page, the LiteRT.js runtime, the model and its page manifest.

A threaded ``http.server`` (standard library; nothing is fetched at run time) with a fixed
route table. On localhost it speaks plain HTTP (a secure context already); on any other
address HTTPS with the per-machine certificate of :mod:`.cert`, the TLS handshake done in
each connection's own thread so that a phone refusing the certificate stalls nobody.
"""
from __future__ import annotations

import errno
import json
import queue
import socket
import ssl
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

from ..errors import EdgekitError
from ..stage_config import default
from .config import HTTPS_PORT, LOCAL_HOSTS, DemoConfig
from .model import DemoModel, load_demo_model

__all__ = ["DemoServer", "LOCAL_HOSTS", "STATIC", "WASM_FILES", "check_static", "exposure_line", "serve"]

#: the built page (web/ -> ``npm run build``): app.js, index.html, style.css and wasm/
STATIC = Path(__file__).with_name("static")
#: the LiteRT.js runtime files the page may load (no threads: they need cross-origin isolation)
WASM_FILES = ("litert_wasm_internal.js", "litert_wasm_internal.wasm", "litert_wasm_compat_internal.js",
              "litert_wasm_compat_internal.wasm", "litert_wasm_jspi_internal.js", "litert_wasm_jspi_internal.wasm")
PAGE_FILES = ("index.html", "app.js", "style.css")
MAX_POST = 16 * 2**20  # bench results: timings of every run
BUILD_HINT = "build it once from an edgekit source checkout: cd web && npm ci && npm run build"
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css",
         ".wasm": "application/wasm", ".json": "application/json", ".tflite": "application/octet-stream",
         ".png": "image/png"}


def check_static(folder: Path = STATIC) -> None:
    """One line when the built page or the LiteRT.js WASM files are missing."""
    missing = [f for f in PAGE_FILES if not (folder / f).is_file()] + \
              [f"wasm/{f}" for f in WASM_FILES if not (folder / "wasm" / f).is_file()]
    if missing:
        raise EdgekitError(f"the demo page is not built ({len(missing)} files missing in {folder}, e.g. "
                           f"{missing[0]}); {BUILD_HINT}")


def lan_address() -> str:
    """This machine's address on its local network (the route a UDP socket would take; nothing
    is sent), else 127.0.0.1."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("10.255.255.255", 1))
        return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"
    finally:
        s.close()


def _handler(model: DemoModel, static: Path, posted: queue.Queue) -> type[BaseHTTPRequestHandler]:
    manifest = json.dumps(model.page_manifest).encode()
    routes: dict[str, Path | bytes] = {"/": static / "index.html", "/model/manifest.json": manifest,
                                       "/model/model.tflite": model.path}
    routes.update({f"/{f}": static / f for f in PAGE_FILES})
    routes.update({f"/wasm/{f}": static / "wasm" / f for f in WASM_FILES})

    class Handler(BaseHTTPRequestHandler):
        server_version = "edgekit-demo"

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = self.path.split("?", 1)[0]
            target = routes.get(path)
            if target is None:
                self.send_error(HTTPStatus.NOT_FOUND)
                return
            body = target if isinstance(target, bytes) else target.read_bytes()
            suffix = ".json" if isinstance(target, bytes) else target.suffix
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", TYPES.get(suffix, "application/octet-stream"))
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            # cross-origin isolation: finer performance.now() for the latency figures (all same-origin)
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802: bench mode posts its timings here
            if self.path != "/api/bench" or "bench" not in model.page_manifest:
                self.send_error(HTTPStatus.NOT_FOUND)
                return
            size = int(self.headers.get("Content-Length") or 0)
            try:
                if not 0 < size <= MAX_POST:
                    raise ValueError(f"{size} bytes")
                doc = json.loads(self.rfile.read(size))
            except ValueError:
                self.send_error(HTTPStatus.BAD_REQUEST)
                return
            posted.put(doc)
            self.send_response(HTTPStatus.NO_CONTENT)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # quiet: the terminal shows the URL and QR
            pass

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    tls: ssl.SSLContext | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is not None:
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):  # e.g. a phone that has not accepted the certificate yet
                return
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a phone closing a connection mid-transfer is no error of the server


class DemoServer:
    """The demo server for ``model`` on ``host:port`` (HTTPS unless ``host`` is localhost);
    bound on construction (one line if the port is busy; port 0 picks a free one), served by
    :meth:`serve_forever`. In bench mode (a :func:`~.model.load_bench_model` model) the page
    posts its timings, which arrive in :attr:`posted`."""

    def __init__(self, model: str | Path | DemoModel, host: str = default(DemoConfig, "host"), port: int = HTTPS_PORT,
                 static: Path = STATIC, cert_dir: Path | None = None) -> None:
        check_static(static)
        self.model = model if isinstance(model, DemoModel) else load_demo_model(model)
        self.posted: queue.Queue = queue.Queue()  # what bench mode posts
        self.host, self.secure = host, host not in LOCAL_HOSTS
        tls = None
        if self.secure:
            from .cert import ensure_certificate

            cert, key = ensure_certificate([lan_address()] + ([host] if host not in ("0.0.0.0", "::") else []),
                                           cert_dir)
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.load_cert_chain(cert, key)
        _Server.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self.httpd = _Server((host, port), _handler(self.model, static, self.posted))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise EdgekitError(f"port {port} is already in use on {host}; choose another with --port") from exc
            if exc.errno == errno.EACCES:
                raise EdgekitError(f"no permission to listen on port {port}; use a port above 1023") from exc
            raise EdgekitError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from exc
        self.httpd.tls = tls
        self.port = self.httpd.server_address[1]

    @property
    def url(self) -> str:
        """The address a phone (or this machine's browser) opens."""
        host = lan_address() if self.host in ("0.0.0.0", "::") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"{'https' if self.secure else 'http'}://{host}:{self.port}/"

    def serve_forever(self) -> None:
        try:
            self.httpd.serve_forever()
        finally:
            self.httpd.server_close()

    def start(self) -> threading.Thread:
        """Serve in a background thread (for library callers); :meth:`stop` ends it."""
        thread = threading.Thread(target=self.serve_forever, daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.httpd.shutdown()


def exposure_line(server: DemoServer) -> str:
    """What a server on every interface means, said on start: who can reach it, the address to
    give the phone, and the option that keeps it on this machine."""
    return (f"listening on every network interface ({server.host} port {server.port}): any device on this "
            f"network can open the demo and download the model; give the phone {server.url}; "
            "--host 127.0.0.1 keeps it on this machine")


def serve(model: str | Path, host: str = default(DemoConfig, "host"), port: int | None = None,
          echo: Callable[[str], None] = print) -> None:
    """Serve the demo until interrupted, after printing the URL, the QR code and the one-time
    certificate step (default port 8443 for HTTPS, 8000 for HTTP on localhost)."""
    from .qr import terminal_qr

    cfg = DemoConfig(host=host, port=port)
    server = DemoServer(model, cfg.host, cfg.listen_port)
    m = server.model
    echo(f"edgekit demo: {m.path.name} ({len(m.page_manifest['labels'])} gestures: "
         f"{', '.join(m.page_manifest['labels'])})")
    if server.host in ("0.0.0.0", "::"):
        echo(exposure_line(server))
    if server.secure:
        echo(f"open {server.url} on a phone on the same network (once per phone: the browser warns about the "
             "self-signed certificate; choose Advanced -> Proceed)")
        qr = terminal_qr(server.url)
        if qr:
            echo(qr.rstrip("\n"))
    else:
        echo(f"open {server.url} in a browser on this machine (use --host 0.0.0.0 for a phone)")
    echo(f"serving at {server.url} (Ctrl-C stops)")
    server.serve_forever()
