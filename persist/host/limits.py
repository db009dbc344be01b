"""Execution limits of a store; the defaults are the IC's."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LOG_RECORD_OVERHEAD", "Limits"]

_MIB = 1024 * 1024
#: What a log record costs on top of its text: ``size_of::<CanisterLogRecord>()`` (an index, a
#: timestamp and the content's vector: 40 bytes; rs/types/types/src/canister_log.rs).
LOG_RECORD_OVERHEAD = 40


@dataclass
class Limits:
    """Per-store execution limits; the defaults are the IC's (resource-limits.md, and the dfinity/ic
    constants named below). Every one may be lowered (or raised) for a store: ``open_store(url,
    limits=Limits(max_ingress_bytes=...))``."""

    update_instructions: int = 40_000_000_000
    query_instructions: int = 5_000_000_000
    install_instructions: int = 300_000_000_000
    stable_memory_max_bytes: int = 500 * 1024**3
    # An ingress message's argument (and method name): MAX_INGRESS_BYTES_PER_MESSAGE_APP_SUBNET, 2 MiB
    # (rs/limits/src/lib.rs); larger ones are refused before anything runs, as the replica's HTTP
    # endpoint refuses them (413).
    max_ingress_bytes: int = 2 * _MIB
    # A call to another canister (method name and argument, ic0.call_data_append): the canisters of
    # a store share one subnet, where the replica allows MAX_INTER_CANISTER_PAYLOAD_IN_BYTES (2 MiB)
    # times MULTIPLIER_MAX_SIZE_LOCAL_SUBNET (5) (rs/types/types/src/messages.rs,
    # rs/embedders/src/wasmtime_embedder/system_api.rs).
    max_request_bytes: int = 5 * 2 * _MIB
    # A reply in replicated execution (updates, callbacks, calls from canisters):
    # MAX_INTER_CANISTER_PAYLOAD_IN_BYTES, 2 MiB.
    max_response_bytes: int = 2 * _MIB
    # A query call's reply: MAX_NON_REPLICATED_QUERY_REPLY_SIZE, 3 MiB (system_api.rs).
    max_query_response_bytes: int = 3 * _MIB
    # A canister's log: the replica keeps the newest records that fit in
    # DEFAULT_AGGREGATE_LOG_MEMORY_LIMIT (4 KiB; a canister may raise its own to
    # MAX_AGGREGATE_LOG_MEMORY_LIMIT, 2 MiB), and one message logs at most MAX_DELTA_LOG_MEMORY_LIMIT
    # (2 MiB); a record counts its text plus 40 bytes (rs/types/types/src/canister_log.rs).
    log_memory_limit: int = 4 * 1024
    log_message_limit: int = 2 * _MIB
    # Multiplies what ic0.performance_counter reports; >1 makes budget-driven runtimes (Motoko's
    # incremental graph copy) end their increments sooner. 1.0 is the IC.
    performance_counter_scale: float = 1.0
