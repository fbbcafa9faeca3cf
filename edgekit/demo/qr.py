"""The demo URL as a QR code in the terminal, for a phone's camera app to open."""
from __future__ import annotations

import io

__all__ = ["terminal_qr"]


def terminal_qr(url: str) -> str:
    """``url`` as a QR code drawn with text half-blocks (two module rows per line), or ``""``
    when segno is not installed (the URL is printed anyway)."""
    try:
        import segno
    except ImportError:
        return ""
    buf = io.StringIO()
    segno.make(url, error="l").terminal(out=buf, compact=True, border=2)
    return buf.getvalue()
