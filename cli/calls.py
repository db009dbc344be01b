"""Talking to a canister: call (with dfx's flags and output formats) and logs (as dfx prints them)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from cli.app import app
from cli.common import (
    BLOCKED_TRAP,
    JsonOpt,
    errors,
    fail,
    opened,
    print_json,
    print_line,
    read_file,
    read_text_argument,
    with_spinner,
)
from persist.errors import CandidError, CanisterTrapError, InvalidArgumentError
from persist.interrupts import immediate

Output = Literal["pp", "idl", "json", "raw", "hex"]
ArgType = Literal["idl", "raw"]

ArgumentFileOpt = Annotated[str | None, typer.Option(
    "--argument-file", "--args-file", metavar="FILE",
    help="Read the argument from FILE ('-' is stdin) instead of the command line.", show_default=False)]
ArgTypeOpt = Annotated[ArgType, typer.Option(
    "--type", "--argument-type", help="How the argument is written: idl (Candid text) or raw (hex bytes).")]
ArgOpt = Annotated[str | None, typer.Option(
    "--arg", "--argument", help="Init (or post_upgrade) argument in Candid text, e.g. '(42 : nat)'.",
    show_default=False)]


def candid_argument(text: str | None, file: str | None, arg_type: str, types: Any, *, default: str = "()") -> bytes:
    """The Candid bytes of an argument given as text or in a file, as Candid text (typed by
    ``types`` when known) or raw hex (dfx's ``--type raw``)."""
    from persist.candid import encode_args

    if text is not None and file is not None:
        raise InvalidArgumentError("give the argument on the command line or with --argument-file, not both")
    if file is not None:
        text = read_text_argument(file)
    if arg_type == "raw":
        try:
            return bytes.fromhex((text or "").strip())
        except ValueError:
            raise InvalidArgumentError("--type raw needs the argument as hex bytes, e.g. 4449444c0000") from None
    return encode_args(text if text is not None else default, types)


def init_argument(data: bytes, arg: str | None, argument_file: str | None, arg_type: str) -> bytes | None:
    """The init / post_upgrade argument as Candid bytes, typed by the module's init arguments
    (None when none is given: the callee's default, ``()``)."""
    from persist import api
    from persist.host.module import parse_module

    if arg is None and argument_file is None:
        return None
    iface = api.module_interface(parse_module(data))
    return candid_argument(arg, argument_file, arg_type, iface.init_args if iface is not None else None)


def _print_reply(reply: bytes, rets: Any, output: str, committed: bool) -> None:
    """The reply in the asked format; a reply that is not Candid is shown as hex, with a warning,
    and never as an error: the call ran (and an update committed)."""
    from persist.candid import format_args, format_args_idl, format_args_json

    if output in ("raw", "hex"):
        print_line(reply.hex())
        return
    try:
        text = {"pp": format_args, "idl": format_args_idl, "json": format_args_json}[output](reply, rets)
    except CandidError as exc:
        done = "the update was committed" if committed else "the query changed nothing"
        print_line(f"warning: the reply is not Candid ({exc}); printed as hex; {done}", stderr=True)
        print_line(reply.hex())
        return
    print_line(text)


def _reply_json(reply: bytes, rets: Any) -> dict[str, Any]:
    from persist.candid import decode_args, format_args, values_to_json

    doc: dict[str, Any] = {"reply_hex": reply.hex()}
    try:
        doc["reply"] = format_args(reply, rets)
        doc["value"] = values_to_json(decode_args(reply, rets), rets)
    except CandidError as exc:
        doc.update(reply=None, value=None, warning=f"the reply is not Candid: {exc}")
    return doc


@app.command()
def call(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Canister name or principal.")],
    method: Annotated[str, typer.Argument(help="Method to call (update or query, as the module exports it).")],
    args: Annotated[str | None, typer.Argument(
        help="Arguments in Candid text, e.g. '(42 : nat, \"x\")' (default: ()).", show_default=False)] = None,
    query: Annotated[bool, typer.Option("--query", help="Call it as a query (refused if it is an update).")] = False,
    update: Annotated[bool, typer.Option("--update", help="Call it as an update (refused if it is a query).")]
        = False,
    argument_file: ArgumentFileOpt = None,
    arg_type: ArgTypeOpt = "idl",
    candid: Annotated[Path | None, typer.Option(
        "--candid", metavar="FILE.did", show_default=False,
        help="Type arguments and reply with this .did file (for modules without a candid:service section).")]
        = None,
    output: Annotated[Output, typer.Option(
        "--output", "-o", help="Reply format: pp (dfx's default), idl (one line), json (dfx's JSON), "
                               "raw or hex (the bytes).")] = "pp",
    as_json: JsonOpt = False,
) -> None:
    """Call a canister method; the reply is printed in Candid text (or as --output says)."""
    from persist import api

    if query and update:
        raise fail("--query and --update contradict each other", 2)
    with opened(ctx) as store, errors():
        did = read_file(candid).decode("utf-8", "replace") if candid is not None else None
        iface = api.interface(store, name, did=did)
        sig = iface.methods.get(method) if iface is not None else None
        arg_bytes = candid_argument(args, argument_file, arg_type, sig.args if sig else None)
        kind = "query" if query else "update" if update else None
        try:
            res = with_spinner(f"calling {name}.{method}…", as_json,
                               lambda: api.call(store, name, method, arg_bytes, kind=kind))
        except CanisterTrapError as exc:
            if BLOCKED_TRAP in str(exc):
                raise fail(f"{exc} ({_migration_hint(store, name)})", exc.exit_code) from None
            raise
        rets = sig.rets if sig else None
        if as_json:
            print_json({"method": method, "kind": res.kind, **_reply_json(res.reply, rets), "logs": res.logs})
            return
        for line in res.logs:
            print_line(f"{name}: {line}", stderr=True)
        _print_reply(res.reply, rets, output, committed=res.kind == "update")


def _migration_hint(store: Any, name: str) -> str:
    """What to run when a canister refuses messages because of its graph-copy migration."""
    from migrate.record import read, resume_command

    command = resume_command(name, read(store, name)) or f"graphcopy upgrade {name} --resume"
    return f"a graph-copy migration is in progress: finish it with `{command}`"


# --------------------------------------------------------------------------------------------- logs


def rfc3339(ns: int) -> str:
    """A timestamp as dfx prints log lines (RFC 3339, UTC, the fraction without trailing zeros)."""
    seconds, frac = divmod(ns, 1_000_000_000)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + "Z"


def parse_since(value: str) -> int:
    """dfx's ``--since``: a duration in s, m, h or d (seconds without a unit), as nanoseconds."""
    v = value.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (v[:-1], v[-1]) if v and v[-1].isalpha() else (v, "s")
    if unit not in units or not number.isdigit():
        raise InvalidArgumentError(f"invalid --since {value!r}: a number with the unit s, m, h or d (e.g. 90s, 5m)")
    return int(number) * units[unit] * 1_000_000_000


def parse_since_time(value: str) -> int:
    """dfx's ``--since-time``: nanoseconds since the epoch, or an RFC 3339 time."""
    v = value.strip()
    if v.isdigit():
        return int(v)
    import re

    m = re.fullmatch(r"(.*?T\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)", v)
    if m is None:
        raise InvalidArgumentError(f"invalid --since-time {value!r}: nanoseconds since the epoch, or RFC 3339 "
                                   "(e.g. 2021-05-06T19:17:10.000000002Z)")
    try:
        base = datetime.fromisoformat(m.group(1) + (m.group(3).replace("Z", "+00:00")))
    except ValueError:
        raise InvalidArgumentError(f"invalid --since-time {value!r}") from None
    return int(base.timestamp()) * 1_000_000_000 + int((m.group(2) or "0").ljust(9, "0"))


def log_line(line: Any) -> str:
    """One log record as dfx prints it: ``[seq. time]: message`` (``[TRAP]: ...`` for a trap, and
    ``(bytes) 0x...`` for text dfx would have to escape)."""
    from persist.candid.quoting import escape_text

    message = str(line.message)
    if "\\u{" in escape_text(message, debug=True):
        message = "(bytes) 0x" + message.encode("utf-8", "surrogatepass").hex()
    if line.kind == "trap":
        message = f"[TRAP]: {message}"
    return f"[{line.seq}. {rfc3339(int(line.time_ns))}]: {message}"


@app.command()
def logs(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Canister name or principal.")],
    tail: Annotated[int | None, typer.Option("--tail", "-n", help="Only the last N lines.", min=1)] = None,
    since: Annotated[str | None, typer.Option(
        "--since", help="Only lines newer than this long ago (s, m, h, d: 90s, 5m, 2h).", show_default=False)]
        = None,
    since_time: Annotated[str | None, typer.Option(
        "--since-time", help="Only lines newer than this time (nanoseconds, or RFC 3339).", show_default=False)]
        = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option("--interval", min=0.1, help="Seconds between polls with --follow.")]
        = 2.0,
    as_json: JsonOpt = False,
) -> None:
    """Show a canister's log (debug prints and traps), as `dfx canister logs` prints it."""
    from persist import api

    if sum(x is not None for x in (tail, since, since_time)) > 1:
        raise fail("--tail, --since and --since-time exclude each other", 2)
    after_ns = None
    with errors():
        if since is not None:
            after_ns = time.time_ns() - parse_since(since)
        elif since_time is not None:
            after_ns = parse_since_time(since_time)
    with opened(ctx) as store, errors():
        lines = api.logs(store, name, tail=tail, since_ns=after_ns)
        if as_json and not follow:
            print_json(lines)
            return
        last = 0
        for line in lines:
            _emit(line, as_json)
            last = int(line.seq)
        try:
            while follow:
                with immediate():  # Ctrl-C ends --follow at once while it waits (persist.interrupts)
                    time.sleep(interval)
                for line in api.logs(store, name, after_seq=last):
                    _emit(line, as_json)
                    last = int(line.seq)
        except KeyboardInterrupt:
            return


def _emit(line: Any, as_json: bool) -> None:
    if as_json:
        import json

        from cli.common import to_jsonable

        print_line(json.dumps(to_jsonable(line), ensure_ascii=False))
    else:
        print_line(log_line(line))
