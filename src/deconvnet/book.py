"""The book's machinery: run chapters with papermill, record provenance, keep results as JSON.

``run_chapters`` executes ``notebooks/NN_name.ipynb`` in ``_toc.yml`` order with a preset, writes the
executed copy to ``book/NN_name.ipynb`` (atomically: a failed run leaves the old page in place), puts a
provenance line under each chapter's title, and records preset, data, device, versions, commit and wall time
in ``book/results/manifest.json``, from which ``book/provenance.md`` is regenerated. With ``voc_root`` (and
``sbd_root``) every chapter reads that real VOC 2012 tree instead of the generated SynthVOC (see
``datasets.use_voc``); with ``out`` the pages, their results and the provenance page go to that folder
instead of ``book/`` (a test's run leaves the committed book alone).

``start_chapter`` is the first call of every chapter: it seeds everything and quiets progress bars.
Notebook-facing only: no core module imports this one.
"""

from __future__ import annotations

import json
import os
import platform
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
import yaml

from .claims import write_claims_table
from .config import Preset, auto_preset_name, get_preset
from .files import atomic_path, check_folder, work_root

ROOT = Path(__file__).resolve().parents[2]  # the repository: src/deconvnet/book.py -> ../../
RESULTS = ROOT / "book" / "results"  # committed: what the rendered book shows
SCRATCH_RESULTS = work_root() / "runs" / "results"  # git-ignored: where interactive and nbval runs write
RESULTS_ENV = "DECONVNET_RESULTS_DIR"  # set by run_chapters so only book runs write book/results
CLAIMS_PAGE = "claims_table.md"  # the introduction's claims table, rewritten from the results after each chapter


@dataclass(frozen=True)
class Chapter:
    name: str  # e.g. "01_architecture"
    source: Path  # notebooks/01_architecture.ipynb, no outputs
    target: Path  # book/01_architecture.ipynb, executed


class ChapterFailed(RuntimeError):
    """A cell failed; the message names the notebook, the cell and the error."""


def chapters(root: Path = ROOT, out: Path | None = None) -> list[Chapter]:
    """The chapters in ``_toc.yml`` order: every toc entry with a source notebook in ``notebooks/``.

    Their executed copies go to ``book/``, or to ``out`` when given.
    """
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            if "file" in node or "root" in node:
                files.append(node.get("file") or node["root"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    found = []
    for entry in files:
        name = Path(entry).stem
        source = root / "notebooks" / f"{name}.ipynb"
        if source.is_file():
            found.append(Chapter(name, source, (out or root / "book") / f"{name}.ipynb"))
    return found


def select(all_chapters: list[Chapter], only: list[str] | None) -> list[Chapter]:
    """Chapters matching ``only`` (``01`` or ``01_architecture``); ``None`` means all of them.

    Unknown names are refused, and so is an empty selection (``--only`` with nothing after it), which
    would otherwise run the whole book.
    """
    if only is None:
        return all_chapters
    if not only:
        valid = ", ".join(c.name for c in all_chapters)
        raise ValueError(f"--only names no chapter; give one or more (e.g. --only 01), or leave --only out to run "
                         f"them all. Chapters: {valid}")
    picked = []
    for want in only:
        match = [c for c in all_chapters if c.name == want or c.name.split("_")[0] == want]
        if not match:
            valid = ", ".join(c.name for c in all_chapters)
            raise ValueError(f"unknown chapter {want!r}; valid chapters are: {valid}")
        picked += [c for c in match if c not in picked]
    return picked


def check_parameters(selected: list[Chapter], parameters: dict) -> None:
    """Refuse parameter names that some selected notebook's ``parameters`` cell does not define."""
    import papermill

    for chapter in selected:
        known = set(papermill.inspect_notebook(str(chapter.source)))
        unknown = sorted(set(parameters) - known)
        if unknown:
            raise ValueError(
                f"{chapter.source.name} has no parameter(s) {', '.join(unknown)}; "
                f"its parameters are: {', '.join(sorted(known)) or '(none)'}"
            )


def cpuinfo() -> dict[str, str]:
    """The first processor's fields in /proc/cpuinfo (empty off Linux); also read by ``make bench``."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields = {}
    for line in text.split("\n\n")[0].splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def device_description() -> str:
    """What the chapters run on: the GPU's name, or the CPU with its thread count."""
    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    model = cpuinfo().get("model name") or platform.processor() or platform.machine()
    return f"cpu ({model}, {torch.get_num_threads()} threads)"


def git_commit(root: Path = ROOT) -> str:
    """The checked-out commit, with ``+dirty`` when tracked files differ from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=True).stdout.strip()
        # book/ is what a run writes, so it does not count as a change to the code that ran
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!book"],
                               cwd=root, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def provenance(preset: str, seconds: float, root: Path = ROOT, data: str | None = None) -> dict:
    """One manifest entry: everything needed to say how a page's numbers were obtained.

    ``data`` names the dataset (``datasets.describe_data``); default: the generated SynthVOC.
    """
    from .datasets import describe_data

    return {
        "preset": preset,
        "data": data or describe_data(None),
        "device": device_description(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "commit": git_commit(root),
        "wall_time_s": round(seconds, 1),
        "executed": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _shown(path: Path) -> str:
    """A path relative to the repository when it is inside it."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def shown_path(path: str | Path) -> str:
    """``path`` as a page may print it: relative to the repository or to the data home (``DECONVNET_HOME``)
    when inside one, else its file name; never a machine's absolute path (chapter 4's data cell)."""
    path = Path(path).absolute()
    for root in (ROOT, work_root()):
        if path.is_relative_to(root):
            return str(path.relative_to(root))
    return path.name


def _provenance_cell(entry: dict):
    import nbformat

    text = (
        f"```{{admonition}} Provenance\n:class: note\nExecuted with preset **{entry['preset']}** on "
        f"{_data(entry)}, on {entry['device']}, torch {entry['torch']}, commit `{entry['commit']}`, in "
        f"{entry['wall_time_s']:.0f} s ({entry['executed']}). All runs: [provenance appendix](provenance.md).\n```"
    )
    cell = nbformat.v4.new_markdown_cell(text)
    cell.metadata["tags"] = ["provenance"]
    return cell


def _add_provenance(path: Path, entry: dict) -> None:
    """Put the provenance note right under the chapter's title (the first markdown cell)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nb.cells = [c for c in nb.cells if "provenance" not in c.metadata.get("tags", [])]
    first_md = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"), -1)
    nb.cells.insert(first_md + 1, _provenance_cell(entry))
    nbformat.write(nb, path)


def _data(entry: dict) -> str:
    """The dataset of a manifest entry; entries from before it was recorded were all made on SynthVOC."""
    return entry.get("data") or "SynthVOC (generated)"


def execute_chapter(chapter: Chapter, preset: str, parameters: dict, progress: bool, data: str | None = None) -> dict:
    """Run one chapter with papermill into a temporary file, then move it into ``book/`` (``chapter.target``)."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    start = time.perf_counter()
    try:
        with atomic_path(chapter.target) as tmp:
            papermill.execute_notebook(
                str(chapter.source), str(tmp), parameters={"preset": preset, **parameters},
                kernel_name="python3", progress_bar=progress, cwd=str(chapter.source.parent),
            )
            entry = provenance(preset, time.perf_counter() - start, ROOT, data)
            _add_provenance(tmp, entry)
    except PapermillExecutionError as err:
        raise ChapterFailed(f"{_shown(chapter.source)} failed in {_locate(chapter.source, err.source)}: "
                            f"{err.ename}: {err.evalue}") from None
    return entry


def _locate(source: Path, cell_source: str) -> str:
    """Name a failing cell by its place in the source notebook (papermill's numbering counts its own cell)."""
    import nbformat

    cells = nbformat.read(source, as_version=4).cells
    code = [c for c in cells if c.cell_type == "code"]
    for k, cell in enumerate(code, start=1):
        if cell.source.strip() == cell_source.strip():
            first = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
            return f"code cell {k} of {len(code)} (cell {cells.index(cell) + 1}, starting `{first[:60]}`)"
    return "the cell papermill injected (the parameters)"


def write_json(path: Path, data) -> None:
    """Write JSON atomically: readers see the old file or the new one, never half of one."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def update_manifest(name: str, entry: dict, results: Path = RESULTS) -> dict:
    """Record one chapter's run in ``manifest.json`` and regenerate the provenance page from it."""
    path = results / "manifest.json"
    manifest = json.loads(path.read_text()) if path.is_file() else {}
    manifest[name] = entry
    write_json(path, manifest)
    write_provenance_page(manifest, results.parent / "provenance.md")
    write_claims_table(results, results.parent / CLAIMS_PAGE)
    return manifest


def write_provenance_page(manifest: dict, path: Path) -> None:
    """The appendix page: one table row per chapter, straight from the manifest."""
    rows = [
        f"| {name} | {e['preset']} | {_data(e)} | {e['device']} | {e['torch']} | `{e['commit']}` | "
        f"{e['wall_time_s']:.0f} | {e['executed']} |"
        for name, e in sorted(manifest.items())
    ]
    text = "\n".join([
        "# Provenance",
        "",
        "Every chapter page was executed by `python -m deconvnet book` (papermill). This table is written by",
        "that command from `book/results/manifest.json`; do not edit it by hand.",
        "",
        "| chapter | preset | data | device | torch | commit | wall time (s) | executed |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Total execution time: {sum(e['wall_time_s'] for e in manifest.values()):.0f} s.",
        "",
    ])
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def run_chapters(preset: str = "auto", only: list[str] | None = None, parameters: dict | None = None,
                 progress: bool | None = None, voc_root: str | Path | None = None,
                 sbd_root: str | Path | None = None, out: str | Path | None = None) -> dict:
    """Execute the selected chapters in order. Everything is validated before the first one runs.

    ``voc_root`` / ``sbd_root``: a real VOC 2012 tree (and SBD) for every chapter, checked now; ``out``: the
    folder for the executed pages, ``results/`` and ``provenance.md`` (default: ``book/``).
    """
    from .datasets import describe_data, use_voc

    preset = auto_preset_name() if preset == "auto" else preset
    get_preset(preset)  # refuses unknown names with the list of valid ones
    parameters = parameters or {}
    if "preset" in parameters:
        raise ValueError("give the preset with --preset, not as a parameter")
    out = Path(out).expanduser().absolute() if out is not None else None
    results = out / "results" if out is not None else RESULTS
    selected = select(chapters() if out is None else chapters(out=out), only)
    check_parameters(selected, parameters)
    real = use_voc(voc_root, sbd_root)  # a folder that is no VOC tree is refused here; the kernels inherit it
    data = describe_data(real)
    for folder in sorted({c.target.parent for c in selected} | {results}):  # before the first (long) chapter
        check_folder(folder, f"the book's folder {_shown(folder)}",
                     f"the executed chapters and their results are written there: make it writable "
                     f"(chmod -R u+w {_shown(folder)}) or run from a checkout you can write to")
    progress = sys.stderr.isatty() if progress is None else progress
    os.environ[RESULTS_ENV] = str(results)  # inherited by the papermill kernels
    manifest = {}
    for chapter in selected:
        print(f"[book] {chapter.name}: executing with preset {preset} on {data} ...", flush=True)
        entry = execute_chapter(chapter, preset, parameters, progress, data)
        manifest = update_manifest(chapter.name, entry, results)
        print(f"[book] {chapter.name}: done in {entry['wall_time_s']:.0f} s -> {_shown(chapter.target)}")
    return manifest


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


# The header buttons that need the repository's address. ``_config.yml`` leaves them out, because
# jupyter-book refuses them without ``repository.url``; ``setup`` turns them on when the address is set.
REPOSITORY_BUTTONS = ("use_repository_button", "use_issues_button", "use_edit_page_button")


def repository_buttons(app, config) -> None:
    """``config-inited``: repository, issues, edit and launch buttons only when ``repository.url`` is set.

    The one setting is ``repository: url:`` in ``_config.yml`` (jupyter-book passes it on as the theme's
    ``repository_url``); while it is empty, no button links to a repository that does not exist.
    """
    options = config.html_theme_options
    url = str(options.get("repository_url") or "").strip()
    for key in REPOSITORY_BUTTONS:
        options[key] = bool(url)
    if not url:
        options.pop("repository_url", None)
        options.pop("launch_buttons", None)  # Binder and Colab open the notebook from the repository


def setup(app) -> dict:
    """A Sphinx extension (``_config.yml``: ``sphinx.extra_extensions``): see ``repository_buttons``."""
    app.connect("config-inited", repository_buttons)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
