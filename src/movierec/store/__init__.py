"""Precomputed recommendations in one SQLite file, replaced atomically.

Writing: ``write_store`` builds the whole database in a temporary file beside ``path``
(same directory, so the rename stays on one file system), with ``synchronous=OFF`` and no
rollback journal while it fills (``atomic.replacing``): nobody else can see that file, and
a crash leaves only a ``.NAME.tmp-PID-HEX`` file behind, never a broken store. Before the
swap it switches the file to ``journal_mode=DELETE`` (so no ``-wal``/``-shm``/``-journal``
file belongs to it), closes it, fsyncs it, renames it over ``path`` and fsyncs the
directory. Any
``-wal``/``-shm``/``-journal`` file left next to ``path`` by some earlier writer describes
the *old* database and would corrupt the new one if SQLite ever replayed it, so those are
deleted right after the rename. A reader therefore sees either the whole previous store or
the whole new one; an interrupted write leaves the previous store untouched. (The next write
removes the temporary files of writers that were killed.)
``merge_stores`` builds one store the same way from part stores written in parallel (disjoint
users), copying their rows with SQL.
There is no WAL at any point: nothing ever writes to a store file that readers can see, so
WAL's reader/writer concurrency buys nothing, and a read-only WAL database would need a
writable ``-shm`` file beside it.

Reading: a store file is never modified after it is renamed into place (a new one replaces
it), so ``Store`` opens it read-only with ``immutable=1``: no locks, no journal look-ups.
An open connection keeps reading the file it opened even after a rename replaced it (the
inode lives until the last descriptor closes), which is what lets ``reload_if_changed``
swap to a new file while in-flight reads finish on the old one. Do not edit a store file in
place with another tool while a server reads it; write a new one.

Validation: every file is checked when it is opened, before it serves anything (the three
tables and their columns, the meta values' JSON types and ranges, and a probe of one user's
rows and one movie). ``Store.open`` raises ``StoreError`` naming the file and the problem; a
new file that fails the check during ``reload_if_changed`` is logged once (one line) and
never swapped in, and the store already open keeps serving. The check reads a handful of
rows, so a file damaged deeper than the probe reaches is not caught here: the writer is
what guarantees the rest.

Schema::

    recs(user_id INTEGER, rank INTEGER, movie_id INTEGER, score REAL, because TEXT,
         PRIMARY KEY (user_id, rank)) WITHOUT ROWID      -- rank 1 is the best
    movies(id INTEGER PRIMARY KEY, title TEXT, year INTEGER, genres TEXT)
    meta(key TEXT PRIMARY KEY, value TEXT)              -- values are JSON

``because`` holds up to ``topk.BECAUSE`` raw movie ids of the user's own movies that
account most for the row ("12,345,6789"; "" for none). ``meta`` always has ``k`` (rows per
user at most: the store's depth, which may exceed the k a request asks for; a reader
filtering rows falls back to the model when fewer than k remain), ``users``, ``rows`` and
``version`` (``schema.VERSION``, 2). A version 1 store (no ``because``) is refused at open
with one line saying to write it again with ``movierec batch``.

Modules: ``schema`` (tables, columns, side files, ``StoreError``); ``write`` (writing and
merging); ``check`` (the open-time check); ``read`` (``Store``, its generations, reloads).
"""

from movierec.store.read import Store
from movierec.store.schema import StoreError, StoreNotFoundError
from movierec.store.write import Block, StoreSummary, merge_stores, write_store, write_store_chunks

__all__ = [
    "Block",
    "Store",
    "StoreError",
    "StoreNotFoundError",
    "StoreSummary",
    "merge_stores",
    "write_store",
    "write_store_chunks",
]
