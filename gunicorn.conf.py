"""gunicorn's settings for Deskbook: gunicorn reads ``gunicorn.conf.py`` from the
directory it starts in, so start it from the checkout (see the README).

Garbage collection. The app's modules (SQLAlchemy's mappers, compiled templates,
Babel's data, the search schema) are some 300,000 objects that live as long as the
process; Python's collector would walk them again at every full collection, and a
request allocates enough (ORM rows, template output) to set off a young-generation
collection every few hundred objects. Frozen once the app is loaded, they are left
out of every collection (and the pages a forked worker shares with the master stay
shared); a larger first threshold makes the young collections fewer. Garbage still
goes: frozen objects are only those alive at the freeze.
"""

import gc

# Young objects allocated (less those freed) before a young collection: Python's
# default is 700. A request allocates tens of thousands; the next two thresholds
# (collections of the previous generation before the next one's) stay Python's.
YOUNG_THRESHOLD = 7000


def _freeze() -> None:
    gc.collect()
    gc.freeze()


def when_ready(_server) -> None:
    """In the master, after ``--preload`` loaded the app, before it forks."""
    _freeze()


def post_worker_init(_worker) -> None:
    """In each worker, once its app is loaded (with or without ``--preload``)."""
    _freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *gc.get_threshold()[1:])
