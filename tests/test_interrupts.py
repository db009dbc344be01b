"""Ctrl-C stops work between messages, never inside one (persist.interrupts).

The unit tests send the process a real SIGINT; the end-to-end ones interrupt a real Motoko canister's
long update (the ledger example loading accounts) through the API and through the CLI, and a snapshot
export half-way. (The graph copy interrupted through the CLI is in test_readme and test_cli_safety, the
pipeline's workers in test_pipeline.)"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from persist import call, install, open_store
from persist.candid import decode_args, encode_args
from persist.interrupts import checkpoint, deferred, immediate, pending

ROOT = Path(__file__).resolve().parent.parent
LEDGER = ROOT / "examples" / "ledger" / "ledger.wasm"
runner = CliRunner()


def ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.05)  # Python runs the handler at the main thread's next bytecode; give it one


@contextmanager
def ctrl_c_later(seconds: float) -> Iterator[None]:
    """Ctrl-C from another thread after ``seconds``, while the main thread is busy in the block
    (never after it: a test that fails early must not interrupt the next one)."""
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        timer.join()


@pytest.fixture(autouse=True)
def _default_handler() -> Iterator[None]:
    before = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_a_first_ctrl_c_waits_for_the_next_checkpoint() -> None:
    notices: list[str] = []
    with pytest.raises(KeyboardInterrupt), deferred(notice=lambda: notices.append("stopping")):
        ctrl_c()
        assert pending() and notices == ["stopping"]  # recorded and announced, not raised
        checkpoint_reached = True
        checkpoint()
        checkpoint_reached = False
    assert checkpoint_reached and not pending()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_second_ctrl_c_raises_at_once() -> None:
    reached = []
    with pytest.raises(KeyboardInterrupt), deferred():
        ctrl_c()
        ctrl_c()
        reached.append("after the second")
    assert reached == [] and not pending()


def test_a_ctrl_c_no_checkpoint_took_is_raised_when_the_block_ends() -> None:
    done = []
    with pytest.raises(KeyboardInterrupt), deferred():
        ctrl_c()
        done.append("the work went on to its end")
    assert done == ["the work went on to its end"] and not pending()


def test_an_error_in_the_block_wins_over_a_pending_ctrl_c() -> None:
    with pytest.raises(ValueError), deferred():
        ctrl_c()
        raise ValueError("the block's own error")
    assert not pending()


def test_a_question_is_interrupted_at_once() -> None:
    with deferred():
        with pytest.raises(KeyboardInterrupt), immediate():
            ctrl_c()
        assert not pending()
        ctrl_c()  # deferred again once the question is answered
        assert pending()
        with pytest.raises(KeyboardInterrupt), immediate():  # a pending Ctrl-C is taken on entry
            pass
    assert not pending()


def test_a_notice_that_fails_does_not_raise_where_the_signal_landed() -> None:
    def broken() -> None:
        raise OSError("stderr is closed")

    with pytest.raises(KeyboardInterrupt), deferred(notice=broken):
        ctrl_c()  # the handler ran here; its notice failed, and nothing was raised in this frame
        assert pending()
        checkpoint()


def test_outside_the_main_thread_nothing_changes() -> None:
    seen: list[object] = []

    def worker() -> None:
        with deferred():
            seen.append(signal.getsignal(signal.SIGINT))

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == [signal.default_int_handler]
    checkpoint()  # nothing pending: a no-op


def _count(url: str) -> int:
    with open_store(url) as store:
        return int(decode_args(call(store, "ledger", "count").reply, None)[0])


def test_ctrl_c_during_a_long_update_lets_it_commit(sqlite_url: str) -> None:
    """The update runs for seconds; a Ctrl-C in the middle of it does not tear it (in the middle of
    Wasm or of its commit): the message commits, then the work stops."""
    with open_store(sqlite_url) as store:
        install(store, "ledger", LEDGER.read_bytes())
        arg = encode_args("(100000 : nat, 1 : nat)", None)
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt), ctrl_c_later(0.5), deferred():
            call(store, "ledger", "load", arg)
        assert time.monotonic() - t0 > 0.5  # the Ctrl-C came while the update ran
        assert int(decode_args(call(store, "ledger", "count").reply, None)[0]) == 100_000
    assert _count(sqlite_url) == 100_000  # committed, in a store that still opens


def test_the_cli_says_it_stops_after_the_current_message(sqlite_url: str) -> None:
    with open_store(sqlite_url) as store:
        install(store, "ledger", LEDGER.read_bytes())
    t0 = time.monotonic()
    with ctrl_c_later(1.0):  # the command is well inside the update by then (it runs for seconds)
        res = runner.invoke(app, ["--db", sqlite_url, "call", "ledger", "load", "(100000, 1)"])
    assert time.monotonic() - t0 > 1.0
    assert res.exit_code == 130, res.output
    assert "stopping after the current message; press Ctrl-C again to stop at once" in res.stderr
    assert res.stderr.strip().splitlines()[-1] == (
        "error: interrupted; committed messages stay committed, queued ones run with the next command")
    assert _count(sqlite_url) == 100_000


def test_ctrl_c_during_an_export_leaves_no_directory_and_no_noise(sqlite_url: str, tmp_path: Path) -> None:
    """A snapshot export stops at its next block on Ctrl-C: the unfinished directory is removed, and the
    page reader it abandoned closes quietly even after the store is closed under it (no "Exception
    ignored" from a cursor of a closed connection when the reader is collected)."""
    import gc
    import sys

    from persist.api.snapshot_transfer import export_snapshot

    store = open_store(sqlite_url)
    install(store, "ledger", LEDGER.read_bytes())
    call(store, "ledger", "load", encode_args("(20000 : nat, 1 : nat)", None))
    store.live.clear()  # the export reads the pages from SQL, as a fresh process would
    sent: list[str] = []

    def progress(file: str, done: int, total: int) -> None:
        if done and not sent:
            sent.append(file)
            ctrl_c()

    target = tmp_path / "export"
    unraisable: list[object] = []
    before, sys.unraisablehook = sys.unraisablehook, unraisable.append
    try:
        with pytest.raises(KeyboardInterrupt) as interrupted, deferred():
            export_snapshot(store, "ledger", target, on_progress=progress)
        store.close()  # while the traceback still holds the abandoned reader
        del interrupted
        gc.collect()
    finally:
        sys.unraisablehook = before
    assert sent and not target.exists()
    assert [(type(u.exc_value).__name__, str(u.exc_value)) for u in unraisable] == []
    assert _count(sqlite_url) == 20_000  # the store is intact
