"""A Sphinx extension for the rendered book (``_config.yml``: ``sphinx.extra_extensions: deconvnet.book``)."""

from __future__ import annotations

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
