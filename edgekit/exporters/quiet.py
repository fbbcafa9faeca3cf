"""Keep converters' and runtimes' chatter out of normal output; ``edgekit -v`` shows it.

litert-torch imports TensorFlow, whose C++ side writes absl and oneDNN notices straight
to file descriptor 2; the LiteRT interpreter announces its XNNPACK delegate the same way;
torch logs pytree deprecations when torchao registers its types; the ONNX exporter and
the quantizers print progress. Little of it goes through Python's ``warnings`` or a
logger edgekit could turn down, so it is silenced where it is written: for the duration
of a conversion or a parity check, the process's stdout and stderr descriptors point at
a temporary file, which is discarded. edgekit's own messages are logged outside these
blocks. With ``-v`` (edgekit's logger at INFO) nothing is redirected.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings
from typing import Iterator


@contextlib.contextmanager
def third_party_output(logger: logging.Logger) -> Iterator[None]:
    """Discard what third-party code writes to stdout/stderr inside the block, unless
    ``logger`` is enabled for INFO (verbose)."""
    if logger.isEnabledFor(logging.INFO):
        yield
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = (os.dup(1), os.dup(2))
    try:
        with tempfile.TemporaryFile() as sink, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                for stream in (sys.stdout, sys.stderr):
                    stream.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
    finally:
        for fd in saved:
            os.close(fd)
