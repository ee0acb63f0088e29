"""Chapter sources: no outputs, one `parameters` cell defaulting to the quick preset, one per toc entry.

The sources themselves are executed by nbval (`pytest --nbval-lax notebooks`, part of `make test`).
"""

import json
from pathlib import Path

import pytest

from deconvnet.book.runner import chapters

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_source_has_no_outputs_and_a_quick_parameters_cell(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert not any(c.get("outputs") or c.get("execution_count") for c in code), "strip the outputs"
    params = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged `parameters`"
    assert 'preset = "quick"' in "".join(params[0]["source"])
    assert nb["cells"][0]["cell_type"] == "markdown" and "".join(nb["cells"][0]["source"]).startswith("# ")


def test_every_source_is_a_chapter_and_is_rendered():
    names = [c.name for c in chapters()]
    assert names == [p.stem for p in SOURCES]
    for name in names:
        assert (ROOT / "book" / f"{name}.ipynb").is_file(), f"{name} was never executed into book/"
