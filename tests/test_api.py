"""The Python API mirrors the CLI, whatever was imported first."""
from __future__ import annotations

import subprocess
import sys


def test_stage_functions_survive_submodule_imports() -> None:
    code = (
        "import edgekit.training.loop, edgekit.exporters.parity, edgekit.benchmark.stats, edgekit.optimization.search, edgekit\n"
        "from edgekit.training.trainer import train\n"
        "import inspect\n"
        "for name in ('train', 'export', 'bench', 'prune', 'distill', 'evaluate', 'report', 'verify', 'optimize'):\n"
        "    assert callable(getattr(edgekit, name)), name\n"
        "try:\n"
        "    edgekit.train('no_such_arch', 'digits', '/nonexistent/x.pt')\n"
        "except edgekit.EdgekitError as e:\n"
        "    print('ERR', e)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "ERR unknown architecture 'no_such_arch'" in res.stdout
