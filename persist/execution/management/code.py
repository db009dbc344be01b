"""Management methods about a canister's code: ``install_code`` in every mode,
``install_chunked_code`` from a chunk store, ``uninstall_code``, and the chunk store itself
(``upload_chunk``, ``stored_chunks``, ``clear_chunk_store``).

Installing runs the canister's Wasm (``persist.execution.installer``), so these handlers commit
through the installer: the call is answered inside the transaction that installs the module
(``on_commit``). A trap in ``canister_init`` or an upgrade hook becomes the replica's reject for it
(``IC0503: Error from Canister <target>: …``), and the target's log keeps the failed run's prints.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from persist.errors import CanisterTrapError, InvalidModuleError, UpgradeOptionError
from persist.execution import installer, rejects
from persist.execution.installer import Requester
from persist.execution.management.request import Reply, Request, canister_arg, require_controller, target
from persist.execution.rejects import IcError, doc_help, trap_description
from persist.host.module import parse_module
from persist.session import Store
from persist.store import chunks, db, events

__all__ = ["CHUNK_LIMIT", "MAX_CHUNK", "clear_chunk_store", "install_chunked_code", "install_code", "stored_chunks",
           "uninstall_code", "upload_chunk"]

MAX_CHUNK = 1024 * 1024
#: The chunk store holds at most 100 chunks (100 MiB, the replica's ``wasm_chunk_store_max_size``).
CHUNK_LIMIT = 100
_CHUNK_HELP = doc_help("Use the `stored_chunks` API to check which hashes are present or top up the canister "
                       "if it is low on cycles.", "wasm-chunk-store-error")

Finish = Callable[[sa.Connection, Reply], None]


def _chunk_error(message: str) -> IcError:
    return IcError(rejects.CANISTER_CONTRACT_VIOLATION, f"Error from Wasm chunk store: {message}.\n{_CHUNK_HELP}")


def _rust_bytes(data: bytes) -> str:
    """A byte slice as Rust's ``{:?}`` prints it."""
    return "[" + ", ".join(str(b) for b in data) + "]"


def _chunk_owner(conn: sa.Connection, req: Request, key: str = "canister_id") -> sa.Row[Any]:
    """The canister whose chunk store is meant: its controllers and the canister itself may use it."""
    row = target(conn, canister_arg(req, key))
    if req.caller.to_text() != row.principal:
        require_controller(row, req)
    return row


def upload_chunk(conn: sa.Connection, store: Store, req: Request) -> Reply:
    """``upload_chunk``: at most 1 MiB, at most 100 chunks; the reply is the chunk's sha256."""
    row = _chunk_owner(conn, req)
    data: bytes = req.arg["chunk"]
    if len(data) > MAX_CHUNK:
        raise _chunk_error(f"Wasm chunk size {len(data)} exceeds the maximum chunk size of {MAX_CHUNK}")
    digest = hashlib.sha256(data).digest()
    if digest not in chunks.get_chunks(conn, row.id, [digest]) and chunks.chunk_count(conn, row.id) >= CHUNK_LIMIT:
        raise _chunk_error(f"Wasm chunk store has already reached maximum capacity of {CHUNK_LIMIT * MAX_CHUNK} "
                           f"bytes or the maximum number of entries, {CHUNK_LIMIT}")
    chunks.put_chunk(conn, row.id, data)
    return Reply({"hash": digest})


def stored_chunks(conn: sa.Connection, store: Store, req: Request) -> Reply:
    """``stored_chunks``: the hashes in the canister's chunk store."""
    row = _chunk_owner(conn, req)
    return Reply([{"hash": h} for h in chunks.chunk_hashes(conn, row.id)])


def clear_chunk_store(conn: sa.Connection, store: Store, req: Request) -> Reply:
    """``clear_chunk_store``: empty it."""
    row = _chunk_owner(conn, req)
    chunks.clear_chunks(conn, row.id)
    return Reply()


def uninstall_code(conn: sa.Connection, store: Store, req: Request) -> Reply:
    """``uninstall_code``: the canister becomes empty (``persist.execution.installer.uninstall``)."""
    row = target(conn, canister_arg(req))
    require_controller(row, req)
    installer.uninstall(store, conn, row, Requester(req.caller, req.origin))
    return Reply()


def _mode(req: Request) -> tuple[str, bool, str | None]:
    """(mode, skip_pre_upgrade, wasm_memory_persistence) of an install_code(-like) argument."""
    mode = req.arg["mode"]
    name = next(iter(mode))
    options = mode[name] or {}
    persistence = options.get("wasm_memory_persistence")
    return name, bool(options.get("skip_pre_upgrade")), next(iter(persistence)) if persistence else None


def _install(store: Store, req: Request, row: sa.Row[Any], wasm: bytes, arg: bytes, finish: Finish) -> None:
    """Install, reinstall or upgrade ``row`` with ``wasm``, answering the call in the commit."""
    mode, skip, persistence = _mode(req)
    principal = row.principal
    try:
        parse_module(wasm)
        store.runtime.load_module(wasm)
    except InvalidModuleError as exc:
        raise IcError(rejects.CANISTER_INVALID_WASM,
                      f"Error from Canister {principal}: Canister's Wasm module is not valid: {exc}") from exc
    requester = Requester(req.caller, req.origin)
    try:
        if mode in ("install", "reinstall"):
            if mode == "install" and row.module_hash is not None:
                help_ = doc_help("Check that you want to overwrite the canister and, if so, use mode='reinstall'.",
                                 "canister-not-empty")
                raise IcError(rejects.CANISTER_NON_EMPTY,
                              f"Canister {principal} cannot be installed because the canister is not empty. Try "
                              f"installing with mode='reinstall' instead.\n{help_}")
            installer.install(store, row, wasm, name=row.name, arg=arg, mode=mode, requester=requester,
                              on_commit=lambda conn: finish(conn, Reply()))
            return
        if row.module_hash is None:
            raise rejects.no_wasm_module_error(principal)
        installer.upgrade(store, row, wasm, arg=arg, skip_pre_upgrade=skip, wasm_memory_persistence=persistence,
                          requester=requester, on_commit=lambda conn: finish(conn, Reply()))
    except UpgradeOptionError as exc:
        raise IcError(rejects.CANISTER_CONTRACT_VIOLATION, str(exc)) from exc
    except CanisterTrapError as exc:
        with db.transaction(store.engine) as conn:
            events.append_logs(conn, row.id, exc.logs, capacity=store.limits.log_memory_limit)
        code, description = trap_description(principal, exc.trap or str(exc))
        raise IcError(code, description) from exc


def install_code(store: Store, req: Request, finish: Finish) -> None:
    """``install_code``: modes install (an empty canister), reinstall and upgrade (with
    ``skip_pre_upgrade`` and ``wasm_memory_persistence``); controllers only; atomic."""
    with db.read_transaction(store.engine) as conn:
        row = target(conn, canister_arg(req))
        require_controller(row, req)
    _install(store, req, row, req.arg["wasm_module"], req.arg["arg"], finish)


def install_chunked_code(store: Store, req: Request, finish: Finish) -> None:
    """``install_chunked_code``: the module is the concatenation of chunks of the store canister's
    chunk store (the target's by default), checked against ``wasm_module_hash``."""
    with db.read_transaction(store.engine) as conn:
        row = target(conn, canister_arg(req, "target_canister"))
        require_controller(row, req)
        store_id = req.arg.get("store_canister")
        holder = _chunk_owner(conn, req, "store_canister") if store_id is not None else row
        hashes = [h["hash"] for h in req.arg["chunk_hashes_list"]]
        for h in hashes:
            if len(h) != 32:
                raise _chunk_error("Chunk hash is invalid. The length is not 32")
        found = chunks.get_chunks(conn, holder.id, hashes)
    for h in hashes:
        if h not in found:
            raise _chunk_error(f"Chunk hash {_rust_bytes(h)} was not found")
    wasm = b"".join(found[h] for h in hashes)
    expected: bytes = req.arg["wasm_module_hash"]
    actual = hashlib.sha256(wasm).digest()
    if actual != expected:
        raise _chunk_error(f"Wasm module hash {_rust_bytes(actual)} does not match given hash "
                           f"WasmHash({_rust_bytes(expected)})")
    _install(store, req, row, wasm, req.arg["arg"], finish)
