"""The SQL store: everything graphcopy keeps durably, and nothing that runs a canister.

* :mod:`persist.store.db` -- URLs, engines with graphcopy's connection settings, transactions
  and the translation of driver errors, the Alembic hook-up (``migrations/``);
* :mod:`persist.store.schema` -- the schema as SQLAlchemy Core tables;
* :mod:`persist.store.pages` -- bulk I/O of 64 KiB heap and stable-memory pages;
* :mod:`persist.store.canisters` -- canister rows, ids, controllers and the controller check, modules;
* :mod:`persist.store.events` -- a canister's log lines and its history of installs and upgrades;
* :mod:`persist.store.snapshots` -- snapshot rows and their content-addressed page blobs;
* :mod:`persist.store.locks` -- migration-pipeline claims as the mutating entry points see them.

Every function here takes a SQLAlchemy ``Connection`` (or ``Engine``) and plain values and works in
the caller's transaction. The store imports nothing of graphcopy but ``persist.errors`` and
``persist.principal``: never the host (``persist.host``), execution, Candid, ``migrate`` or ``cli``.
"""
