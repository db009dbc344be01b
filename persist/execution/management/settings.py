"""Canister settings: checking a ``canister_settings`` record, keeping what was set, and the
``definite_canister_settings`` that ``canister_status`` reports.

Honoured: ``controllers`` (who may control the canister), ``environment_variables`` (what
``ic0.env_var_*`` read), ``log_visibility`` (``fetch_canister_logs``), ``snapshot_visibility``
(``list_canister_snapshots``) and ``status_visibility`` (``canister_status``). Accepted, kept and
reported, but with no effect on a local host (no scheduler shares, no memory accounting, no
metering): ``compute_allocation``, ``memory_allocation``, ``freezing_threshold``,
``reserved_cycles_limit``, ``wasm_memory_limit``, ``wasm_memory_threshold``,
``minimum_incoming_canister_call_cycles``. Limits and defaults are the replica's
(``MAX_CONTROLLERS`` 10, ``MAX_ENVIRONMENT_VARIABLES`` 20 of at most 128-byte names and values;
freezing threshold 2,592,000 s, reserved cycles limit 5T, Wasm memory limit 3 GiB).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import sqlalchemy as sa

from persist.execution import rejects
from persist.execution.rejects import IcError, doc_help
from persist.principal import Principal
from persist.store.canisters import controllers_of, env_vars_of, settings_of

__all__ = [
    "DEFAULTS",
    "apply_settings",
    "definite_settings",
    "env_vars_hash",
    "validate_settings",
]

MAX_CONTROLLERS = 10
MAX_ENV_VARS = 20
MAX_ENV_NAME = 128
MAX_ENV_VALUE = 128
MAX_VIEWERS = 10
#: What ``canister_status`` reports for a setting nobody set.
DEFAULTS: dict[str, Any] = {
    "compute_allocation": 0,
    "memory_allocation": 0,
    "freezing_threshold": 2_592_000,
    "reserved_cycles_limit": 5_000_000_000_000,
    "minimum_incoming_canister_call_cycles": 0,
    "log_visibility": {"controllers": None},
    "snapshot_visibility": {"controllers": None},
    "status_visibility": {"controllers": None},
    "wasm_memory_limit": 3 * 1024**3,
    "wasm_memory_threshold": 0,
}
_BOUNDS = {
    "compute_allocation": 100,
    "memory_allocation": 2**64 - 1,
    "freezing_threshold": 2**64 - 1,
    "reserved_cycles_limit": 2**128 - 1,
    "minimum_incoming_canister_call_cycles": 2**128 - 1,
    "wasm_memory_limit": 2**48,
    "wasm_memory_threshold": 2**48,
}
_VISIBILITY = ("log_visibility", "snapshot_visibility", "status_visibility")


def _invalid(message: str) -> IcError:
    help_ = doc_help("Apply the described changes to make the settings valid.", "invalid-settings")
    return IcError(rejects.CANISTER_CONTRACT_VIOLATION, f"Could not validate the settings: {message} \n{help_}")


def validate_settings(settings: dict[str, Any] | None) -> dict[str, Any]:
    """The fields of a ``canister_settings`` record that are set, as they will be stored (JSON-ready),
    or the replica's rejection."""
    out: dict[str, Any] = {}
    for key, value in (settings or {}).items():
        if value is None:
            continue
        if key == "controllers":
            if len(value) > MAX_CONTROLLERS:
                raise _invalid(f"Invalid settings: 'controllers' length exceeds maximum size allowed of "
                               f"{MAX_CONTROLLERS}.")
            out[key] = sorted({p.to_text() for p in value}, key=lambda t: Principal.from_text(t).raw)
        elif key == "environment_variables":
            out[key] = _env_vars(value)
        elif key in _VISIBILITY:
            viewers = value.get("allowed_viewers") if isinstance(value, dict) else None
            if viewers is not None:
                if len(viewers) > MAX_VIEWERS:
                    raise _invalid(f"Invalid settings: '{key}' allowed viewers length exceeds maximum size "
                                   f"allowed of {MAX_VIEWERS}.")
                out[key] = {"allowed_viewers": [p.to_text() for p in viewers]}
            else:
                out[key] = {next(iter(value)): None}
        elif key in _BOUNDS:
            if int(value) > _BOUNDS[key]:
                raise _invalid(f"Invalid settings: '{key}' must be at most {_BOUNDS[key]}, got {value}.")
            out[key] = int(value)
        else:  # a field a newer interface adds: kept as given
            out[key] = value
    return out


def _env_vars(pairs: list[dict[str, str]]) -> list[list[str]]:
    if len(pairs) > MAX_ENV_VARS:
        raise IcError(rejects.INVALID_MANAGEMENT_PAYLOAD,
                      f"Too many environment variables: {len(pairs)} (max: {MAX_ENV_VARS})")
    seen: dict[str, str] = {}
    for pair in pairs:
        name, value = pair["name"], pair["value"]
        if len(name.encode()) > MAX_ENV_NAME:
            raise IcError(rejects.INVALID_MANAGEMENT_PAYLOAD, f'Environment variable name "{name}" exceeds the '
                          f"maximum allowed length of {MAX_ENV_NAME}.")
        if len(value.encode()) > MAX_ENV_VALUE:
            raise IcError(rejects.INVALID_MANAGEMENT_PAYLOAD, f'Environment variable value "{value}" exceeds the '
                          f"maximum allowed length of {MAX_ENV_VALUE}.")
        seen[name] = value  # the replica keeps a map: a repeated name keeps its last value
    return [[k, seen[k]] for k in sorted(seen)]


def apply_settings(row: sa.Row[Any] | None, validated: dict[str, Any]) -> dict[str, Any]:
    """The row values that store ``validated`` over the canister's current settings."""
    current = settings_of(row) if row is not None else {}
    values: dict[str, Any] = {}
    env = validated.pop("environment_variables", None)
    if env is not None:
        values["environment_variables"] = json.dumps(env)
    controllers = validated.pop("controllers", None)
    if controllers is not None:
        values["controllers"] = json.dumps(controllers)
    current.update(validated)
    values["settings"] = json.dumps(current) if current else None
    return values


def _visibility(value: dict[str, Any]) -> dict[str, Any]:
    if "allowed_viewers" in value:
        return {"allowed_viewers": [Principal.from_text(p) for p in value["allowed_viewers"] or []]}
    return {next(iter(value)): None}


def definite_settings(row: sa.Row[Any]) -> dict[str, Any]:
    """``definite_canister_settings`` of the canister: what was set, the defaults for the rest."""
    current = {**DEFAULTS, **settings_of(row)}
    out: dict[str, Any] = {key: current[key] for key in DEFAULTS}
    for key in _VISIBILITY:
        out[key] = _visibility(current[key])
    out["controllers"] = [Principal(c) for c in sorted(controllers_of(row))]
    out["environment_variables"] = [{"name": k, "value": v} for k, v in env_vars_of(row)]
    return out


def env_vars_hash(pairs: list[list[str]]) -> bytes:
    """The spec's "hash of map" of the environment variables (``https-interface.md``: sha256 of the
    sorted concatenation of sha256(name) · sha256(value) pairs), for the creation history entry."""
    parts = sorted(hashlib.sha256(k.encode()).digest() + hashlib.sha256(v.encode()).digest() for k, v in pairs)
    return hashlib.sha256(b"".join(parts)).digest()
