"""Publishing the reproduction: the chapters' helpers (``page``), their figures (``plot``), executing them
(``runner``), the claims table (``claims``), the learning study's read-back (``study``), the PDF (``pdf``) and
the cost page (``cost``).

A chapter imports this package: it re-exports ``page``'s helpers, and ``setup`` makes it the Sphinx extension
named in ``_config.yml``.
"""

from deconvnet.book.extension import setup
from deconvnet.book.page import (
    glue_text,
    load_result,
    results_dir,
    save_result,
    show_code,
    shown_path,
    start_chapter,
)

__all__ = ["glue_text", "load_result", "results_dir", "save_result", "setup", "show_code", "shown_path",
           "start_chapter"]
