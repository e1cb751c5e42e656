"""The tag filter above a list (``tag_filter`` in templates/tags/_macros.html): where
each tag chip links to. The customer list, the pool, the notes list and search use it."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from flask import url_for

from services import tags


def toggle_tag_url(endpoint: str, args: dict, selected_ids: Iterable[int]) -> Callable[[int], str]:
    """A function: tag id → the URL of ``endpoint`` with the list's other arguments
    ``args`` kept, that tag added to or removed from ``selected_ids``, and paging
    back to the first page. Tag ids are sorted, so one filter has one URL."""
    kept = {name: value for name, value in args.items() if name not in ("tag", "page")}
    selected = list(selected_ids)

    def url_for_tag(tag_id: int) -> str:
        return url_for(endpoint, **kept, tag=sorted(tags.toggled(selected, tag_id)))

    return url_for_tag
