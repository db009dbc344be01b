"""Plain option values without Pydantic: what Typer's coercion costs a command, avoided where it is a no-op.

Typer (0.29) coerces every parameter through a Pydantic ``TypeAdapter`` that it builds on first
use: importing Pydantic and building the adapters of one command took 70-150 ms of a
``graphcopy call`` (more than the call itself). For most values the adapter changes nothing: a
``str`` option given a string, an option left at ``None``, a ``Literal`` option given one of its
choices. :func:`install_fast_coercion` gives each parameter a coercer that returns those values as
they are and hands every other value (numbers, paths, lists, a wrong choice) to Typer's own
adapter, built then as before, so conversions and error messages are Typer's.

It sets Typer's per-parameter cache (``_runtime_param``, which Typer fills lazily); a Typer without
that attribute is left alone and coerces as it always does.
"""

from __future__ import annotations

import types
import typing
from typing import Any

_HOOK = "_runtime_param"


class FastCoercion:
    """A parameter's coercer: plain values as they are, the rest through Typer's adapter."""

    def __init__(self, param: Any) -> None:
        self.param = param
        descriptor = param.type_descriptor
        annotation = descriptor.annotation
        custom = getattr(descriptor.parameter_info, "parser", None) is not None  # a parser: always Typer's way
        self.plain_str = annotation is str and not custom
        self.choices: tuple[Any, ...] = typing.get_args(annotation) if typing.get_origin(annotation) is \
            typing.Literal and not custom else ()
        self.multi = bool(param.multiple or param.nargs == -1)

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        if not self.multi:
            if value is None:
                return None  # what Typer returns for a missing single value, before any adapter
            if isinstance(value, str) and (self.plain_str or value in self.choices):
                return value
        return self._typer_coercion().coerce(value, param=param, ctx=ctx)

    def _typer_coercion(self) -> Any:
        """Typer's own coercer for this parameter (built now, and kept in place of this one)."""
        setattr(self.param, _HOOK, None)
        return self.param.get_runtime_param()


def install_fast_coercion(command: Any, help_names: list[str]) -> None:
    """Give every Typer parameter of ``command`` and its subcommands a :class:`FastCoercion`.

    ``help_names``: the help option's names (the root's ``help_option_names``); Click makes each
    command's help option on first use and keeps it, so it is made here, from the same names."""
    params = list(getattr(command, "params", ()))
    get_help = getattr(command, "get_help_option", None)
    if get_help is not None:
        help_option = get_help(types.SimpleNamespace(help_option_names=help_names))
        if help_option is not None:
            params.append(help_option)
    for param in params:
        if getattr(param, _HOOK, ...) is None and hasattr(param, "type_descriptor") and hasattr(
                param, "get_runtime_param"):
            setattr(param, _HOOK, FastCoercion(param))
    for sub in (getattr(command, "commands", None) or {}).values():
        install_fast_coercion(sub, help_names)
