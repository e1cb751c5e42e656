"""The tag filter above a list (``tag_filter`` in templates/tags/_macros.html): where
each tag chip links to. The customer list, the pool, the notes list and search use it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from urllib.parse import urlencode

from flask import url_for

from services import tags


def toggle_tag_url(endpoint: str, args: dict, selected_ids: Iterable[int]) -> Callable[[int], str]:
    """A function: tag id → the URL of ``endpoint`` with the list's other arguments
    ``args`` kept, that tag added to or removed from ``selected_ids``, and paging
    back to the first page. Tag ids are sorted, so one filter has one URL."""
    kept = {name: value for name, value in args.items() if name not in ("tag", "page")}
    selected = list(selected_ids)
    # Built once: a list shows a chip per tag, and only the tags differ between them
    # (url_for puts list arguments last, so appending them gives the same URL).
    base = url_for(endpoint, **kept)
    joiner = "&" if "?" in base else "?"

    def url_for_tag(tag_id: int) -> str:
        chosen = sorted(tags.toggled(selected, tag_id))
        return f"{base}{joiner}{urlencode([('tag', i) for i in chosen])}" if chosen else base

    return url_for_tag
