"""Sphinx configuration of the Ruuhka documentation (`make docs`)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE / "_ext")]

from ruuhka import __version__  # noqa: E402

project = "Ruuhka"
author = "Ruuhka contributors"
copyright = "Ruuhka contributors, MIT licence"
release = __version__
version = __version__

extensions = ["myst_parser", "ruuhka_reference"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "_ext", "Thumbs.db", ".DS_Store", "**/README.md"]
root_doc = "index"

myst_enable_extensions = ["colon_fence", "deflist", "fieldlist", "attrs_inline"]
# Headings get anchors so pages can link to each other's sections: [x](page.md#heading).
myst_heading_anchors = 3

html_theme = "furo"
html_title = "Ruuhka"
html_static_path = ["_static"]
html_favicon = "../web/static/icon.svg"
html_logo = "../web/static/icon.svg"
html_theme_options = {"navigation_with_keys": True}
html_show_sourcelink = False
html_copy_source = False
# Every link in the docs is to a page of their own or to a full web address.
nitpicky = True


class _EmptyGlob(logging.Filter):
    """Each section's toctree lists its pages in reading order, then `*` for pages
    added later; while every page is listed by name that glob matches nothing, on
    purpose. (Sphinx gives this warning no type, so suppress_warnings cannot.)"""

    def filter(self, record: logging.LogRecord) -> bool:
        return "didn't match any documents" not in str(record.msg)


def setup(app: object) -> None:
    logging.getLogger("sphinx.sphinx.directives.other").addFilter(_EmptyGlob())
