"""Starting the CLI loads only what it needs: pandas (a dependency of dagster-aws) stays out."""

from __future__ import annotations

import subprocess
import sys


def test_definitions_do_not_import_pandas() -> None:
    # pandas costs ~0.5 s and ~36 MB in every run; pyarrow pulls it in on the first conversion
    # of a Python value (pa.array, pa.scalar, literals in Arrow expressions).
    code = (
        "import sys, pg_metadata.cli.main, pg_metadata.definitions; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pandas')[:3])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
