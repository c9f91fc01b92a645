"""Help texts from module docstrings, as plain text.

The docstrings are written for readers of the source (reStructuredText: ````secc run````,
``::`` before a literal block); ``--help`` shows the first paragraph without that markup.
"""

from __future__ import annotations

import re

_LITERAL = re.compile(r"``([^`]+)``")


def plain(text: str) -> str:
    """``text`` without reStructuredText markup: ````x```` -> ``x``, a closing ``::`` -> ``:``."""
    text = _LITERAL.sub(r"\1", text)
    return re.sub(r"::(\s|$)", r":\1", text)


def summary(doc: str | None) -> str:
    """The first paragraph of a module docstring, as one plain line for ``description=``."""
    first = (doc or "").strip().split("\n\n")[0]
    return plain(" ".join(line.strip() for line in first.splitlines()))
