"""The IC management canister, ``aaaaa-aa``: what canisters (and the store's user) call to create
and control canisters.

Calls reach it from canisters through the message queue (``persist.execution.routing`` queues a
``management`` message; the scheduler runs :func:`persist.execution.management.dispatch.execute`)
and from users through :func:`persist.execution.management.dispatch.call_from_user` (``graphcopy
call aaaaa-aa METHOD ARGS``, typed by the real interface, :mod:`.interface`). The methods are
grouped by what they touch: :mod:`.lifecycle` (create, settings, start, stop, delete, status,
info, cycles, logs, randomness, the subnet), :mod:`.code` (install, uninstall, the chunk store),
:mod:`.snapshots` (take, load, list, delete), :mod:`.unsupported` (what a local host cannot serve:
threshold keys, HTTP outcalls, Bitcoin, snapshot transfer). :mod:`.request` holds what a call
carries and the checks every method shares (the replica's texts), :mod:`.settings` the canister
settings.
"""
