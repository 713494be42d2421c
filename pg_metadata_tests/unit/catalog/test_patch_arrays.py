"""The view definitions read apart are merged into the tables rows as Arrow arrays built
from their buffers, the same arrays `pa.array` gives, without importing pandas."""

import subprocess
import sys

import pyarrow as pa
import pytest

from pg_metadata.catalog.reader import _arrow_array

SHAPES = [
    ([7, None, -3, 2**40], pa.int64()),
    ([True, None, False, True, True, False, None, True, False], pa.bool_()),
    (["SELECT 1", None, "", "é€ 𝄞 naïve", "x" * 10_000], pa.string()),
    ([], pa.string()),
    ([None, None], pa.int64()),
]


@pytest.mark.parametrize(("values", "type_"), SHAPES)
def test_arrays_are_what_pa_array_gives(values, type_):
    built = _arrow_array(values, type_)
    built.validate(full=True)
    assert built.equals(pa.array(values, type_))


def test_merging_definitions_does_not_import_pandas():
    code = (
        "import sys; from pg_metadata.catalog.reader import _patch_arrays; "
        "_patch_arrays({16384: ('SELECT 1', True), 16390: (None, None)}); "
        "print('pandas' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr
