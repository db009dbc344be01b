"""cli/params.py: option values coerced without Pydantic come out exactly as Typer's own coercion gives them.

A small Typer app is run twice on the same command lines, once as Typer builds it and once with
``install_fast_coercion``; the values the command receives, its output and exit code, and the
error messages for bad values must be the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
import typer
import typer.main
from typer.core import TyperGroup
from typer.testing import CliRunner

from cli.params import FastCoercion, install_fast_coercion


class FastGroup(TyperGroup):
    """A root command that installs the fast coercion before parsing, as cli.app's does."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        install_fast_coercion(self, ["--help"])
        return super().main(*args, **kwargs)


def _app(seen: list[dict[str, Any]], *, fast: bool = False) -> typer.Typer:
    app = typer.Typer(add_completion=False, rich_markup_mode=None, **({"cls": FastGroup} if fast else {}))

    @app.command()
    def run(
        name: Annotated[str, typer.Argument()],
        extra: Annotated[str | None, typer.Argument()] = None,
        mode: Annotated[Literal["idl", "raw"], typer.Option("--mode")] = "idl",
        count: Annotated[int, typer.Option("--count", min=1)] = 3,
        path: Annotated[Path | None, typer.Option("--path")] = None,
        scale: Annotated[float | None, typer.Option("--scale")] = None,
        tags: Annotated[list[str] | None, typer.Option("--tag")] = None,
        flag: Annotated[bool, typer.Option("--flag")] = False,
    ) -> None:
        seen.append({"name": name, "extra": extra, "mode": mode, "count": count, "path": path, "scale": scale,
                     "tags": tags, "flag": flag})
        typer.echo(f"{name!r} {extra!r} {mode!r} {count!r} {path!r} {scale!r} {tags!r} {flag!r}")

    @app.command()
    def other(value: Annotated[str, typer.Argument()]) -> None:
        typer.echo(value)

    return app


CASES = [
    ["run", "x"],
    ["run", "x", "y", "--mode", "raw", "--count", "5", "--path", "a/b", "--scale", "1.5", "--tag", "t", "--flag"],
    ["run", "\udcff", "--mode", "bogus"],  # an undecodable byte as argv carries it, and a wrong choice
    ["run", "x", "--count", "0"],
    ["run", "x", "--count", "many"],
    ["run", "x", "--scale", "nan?"],
    ["run"],
    ["run", "--help"],
    ["other", "v"],
]


@pytest.mark.parametrize("args", CASES)
def test_same_values_and_errors_as_typer(args: list[str]) -> None:
    plain_seen: list[dict[str, Any]] = []
    fast_seen: list[dict[str, Any]] = []
    plain = _app(plain_seen)
    fast = _app(fast_seen, fast=True)
    runner = CliRunner()
    a = runner.invoke(plain, args)
    b = runner.invoke(fast, args)
    assert (b.exit_code, b.stdout, b.stderr) == (a.exit_code, a.stdout, a.stderr)
    assert fast_seen == plain_seen


def test_plain_values_skip_typer_adapters() -> None:
    command = typer.main.get_command(_app([]))
    install_fast_coercion(command, ["--help"])
    run = command.commands["run"]  # type: ignore[attr-defined]
    by_name = {p.name: p for p in run.params}
    for name in ("name", "extra", "mode", "count", "path"):
        assert isinstance(by_name[name]._runtime_param, FastCoercion)
    coercer = by_name["mode"]._runtime_param
    assert coercer.coerce("raw", by_name["mode"], None) == "raw"
    assert isinstance(by_name["mode"]._runtime_param, FastCoercion)  # no adapter was needed
    by_name["count"]._runtime_param.coerce("5", by_name["count"], None)
    assert not isinstance(by_name["count"]._runtime_param, FastCoercion)  # Typer's own, kept
