"""What a chapter calls: ``start_chapter`` first, then ``save_result`` / ``load_result`` for numbers that later
chapters and tables read, ``glue_text`` for numbers in the prose and ``show_code`` for the package's own code.

Re-exported by ``deconvnet.book``, so a chapter writes ``from deconvnet import book`` and ``book.glue_text(...)``.
Used by every chapter notebook; ``runner`` executes them.
"""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

import numpy as np
import torch

from deconvnet.config import Preset, get_preset
from deconvnet.files import atomic_path, work_root

ROOT = Path(__file__).resolve().parents[3]  # the repository: src/deconvnet/book/page.py -> ../../../
RESULTS = ROOT / "book" / "results"  # committed: what the rendered book shows
SCRATCH_RESULTS = work_root() / "runs" / "results"  # git-ignored: where interactive and nbval runs write
RESULTS_ENV = "DECONVNET_RESULTS_DIR"  # set by run_chapters so only book runs write book/results


def write_json(path: Path, data) -> None:
    """Write JSON atomically: readers see the old file or the new one, never half of one."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def shown_path(path: str | Path) -> str:
    """``path`` as a page may print it: relative to the repository or to the data home (``DECONVNET_HOME``)
    when inside one, else its file name; never a machine's absolute path (chapter 4's data cell)."""
    path = Path(path).absolute()
    for root in (ROOT, work_root()):
        if path.is_relative_to(root):
            return str(path.relative_to(root))
    return path.name


def start_chapter(preset: str) -> Preset:
    """First call of every chapter: resolve the preset, seed every generator, pick deterministic kernels.

    Progress bars stay quiet unless stderr is a terminal (papermill and nbval capture it).
    """
    cfg = get_preset(preset)
    random.seed(cfg.run.seed)
    np.random.seed(cfg.run.seed)  # noqa: NPY002 - seeds libraries that still draw from the legacy global state
    torch.manual_seed(cfg.run.seed)
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    if cfg.run.torch_device().type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    os.environ.setdefault("TQDM_DISABLE", "0" if sys.stderr.isatty() else "1")
    return cfg


def results_dir() -> Path:
    """``book/results`` inside a book run, else the git-ignored ``runs/results`` (tests, your own runs)."""
    return Path(os.environ.get(RESULTS_ENV, SCRATCH_RESULTS))


def save_result(name: str, data: dict, results: Path | None = None) -> Path:
    """Store a chapter's numbers as ``<results>/<name>.json`` so later chapters and tables read them.

    Only ``python -m deconvnet book`` writes the committed ``book/results``; a chapter run by hand or by the
    tests writes ``runs/results`` and leaves the committed numbers alone.
    """
    path = (results or results_dir()) / f"{name}.json"
    write_json(path, data)
    return path


def load_result(name: str, results: Path | None = None) -> dict:
    """A result saved by an earlier chapter: this run's first, else the committed one in ``book/results``."""
    for folder in (results or results_dir(), RESULTS):
        path = folder / f"{name}.json"
        if path.is_file():
            return json.loads(path.read_text())
    raise FileNotFoundError(f"no result {name}.json in {results or results_dir()} or {RESULTS}: run its chapter first")


def glue_text(name: str, text) -> None:
    """Glue ``text`` for ``{glue:md}`name``` in a chapter's markdown: shown as plain words and numbers.

    ``{glue:}`` shows a glued string as its Python repr, in quotes; a Markdown object pasted with
    ``{glue:md}`` reads as part of the sentence. Used by chapters 5 and 6.
    """
    from IPython.display import Markdown
    from myst_nb import glue

    glue(name, Markdown(str(text)), display=False)


def show_code(*objects):
    """The package's own source of ``objects`` (functions, classes, methods) as one highlighted block, each
    part headed by the file it lives in, so a page shows the code it teaches and cannot drift from it.

    Chapters put it in a cell tagged ``hide-input``: the reader sees the code, not the call that fetched it.
    """
    import inspect
    import textwrap

    from IPython.display import Code

    parts = []
    for obj in objects:
        path = Path(inspect.getsourcefile(obj)).resolve()
        where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
        parts.append(f"# {where}\n{textwrap.dedent(inspect.getsource(obj)).rstrip()}")
    return Code("\n\n\n".join(parts), language="python")
