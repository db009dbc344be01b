"""The Wasm helper that serves ``ic0.stable*`` over a host-owned 64-bit stable memory.

Motoko's graph copy calls ``stable64_write``/``stable64_read`` about once per word; served by a
Python host function each call costs microseconds, served by Wasm it costs nanoseconds (DESIGN.md,
"Stable memory is Wasm-native": 27 s against 0.025 s on the same copy). So the four functions are
Wasm: a small module that imports the canister's heap, the stable memory and two bytemaps (one byte
per 64 KiB stable page) and does the IC's bounds checks, growth limit and ``memory.copy``.

* ``dirty`` bytemap: set for every page written since the last commit; the host commits exactly
  those pages and clears the map.
* ``loaded`` bytemap: pages not yet read from SQL are 0. The first access to such a page calls
  the host's ``load_pages`` (the IC's "stable_read_first_access"), so opening a canister costs
  nothing per stable page. ``all_loaded`` short-circuits the check once everything is in memory.

Invariant kept by the host: every byte at or beyond ``size`` pages is zero, so growing never needs
to clear memory.
"""

from __future__ import annotations

FAIL_STABLE_OOB = 1
FAIL_HEAP_OOB = 2
FAIL_STABLE32_TOO_BIG = 3

FAIL_MESSAGES = {
    FAIL_STABLE_OOB: "stable memory out of bounds",
    FAIL_HEAP_OOB: "heap out of bounds",
    FAIL_STABLE32_TOO_BIG: "32-bit stable memory api used on a stable memory larger than 4GiB",
}

_TEMPLATE = r"""
(module
  (import "graphcopy" "heap" (memory $heap {heap_type} 0))
  (import "graphcopy" "stable" (memory $stable i64 0))
  (import "graphcopy" "dirty" (memory $dirty 0))
  (import "graphcopy" "loaded" (memory $loaded 0))
  (import "graphcopy" "load_pages" (func $load_pages (param i64 i64)))
  (import "graphcopy" "fail" (func $fail (param i32)))
  (global $size (export "size") (mut i64) (i64.const 0))
  (global $max (export "max") (mut i64) (i64.const 0))
  (global $all_loaded (export "all_loaded") (mut i32) (i32.const 1))
  (global $read_bytes (export "read_bytes") (mut i64) (i64.const 0))
  (global $written_bytes (export "written_bytes") (mut i64) (i64.const 0))

  ;; Make sure the pages [first, last] are in memory; one host call loads every missing one.
  (func $ensure_loaded (param $first i64) (param $last i64)
    (local $p i64)
    (if (global.get $all_loaded) (then (return)))
    (local.set $p (local.get $first))
    (block $done
      (loop $scan
        (if (i32.eqz (i32.load8_u $loaded (i32.wrap_i64 (local.get $p))))
          (then
            (call $load_pages (local.get $first) (i64.add (i64.sub (local.get $last) (local.get $first)) (i64.const 1)))
            (br $done)))
        (local.set $p (i64.add (local.get $p) (i64.const 1)))
        (br_if $scan (i64.le_u (local.get $p) (local.get $last))))))

  ;; Trap unless [off, off+len) lies inside the stable memory's current size.
  (func $check_stable (param $off i64) (param $len i64)
    (local $end i64)
    (local.set $end (i64.add (local.get $off) (local.get $len)))
    (if (i32.or (i64.lt_u (local.get $end) (local.get $off))
                (i64.gt_u (local.get $end) (i64.shl (global.get $size) (i64.const 16))))
      (then (call $fail (i32.const 1)) (unreachable))))

  ;; Trap unless [ptr, ptr+len) lies inside the heap.
  (func $check_heap (param $ptr i64) (param $len i64)
    (local $end i64)
    (local.set $end (i64.add (local.get $ptr) (local.get $len)))
    (if (i32.or (i64.lt_u (local.get $end) (local.get $ptr))
                (i64.gt_u (local.get $end) (i64.shl ({heap_size}) (i64.const 16))))
      (then (call $fail (i32.const 2)) (unreachable))))

  (func $size64 (export "stable64_size") (result i64) (global.get $size))

  (func $grow64 (export "stable64_grow") (param $n i64) (result i64)
    (local $old i64) (local $new i64) (local $cap i64) (local $need i32)
    (local.set $old (global.get $size))
    (if (i64.gt_u (local.get $n) (i64.sub (global.get $max) (local.get $old)))
      (then (return (i64.const -1))))
    (local.set $new (i64.add (local.get $old) (local.get $n)))
    (local.set $cap (memory.size $stable))
    (if (i64.gt_u (local.get $new) (local.get $cap))
      (then
        (if (i64.eq (memory.grow $stable (i64.sub (local.get $new) (local.get $cap))) (i64.const -1))
          (then (return (i64.const -1))))))
    ;; one bytemap byte per page: make both maps cover the new size
    (local.set $need (i32.wrap_i64 (i64.shr_u (i64.add (local.get $new) (i64.const 65535)) (i64.const 16))))
    (if (i32.gt_u (local.get $need) (memory.size $dirty))
      (then
        (if (i32.eq (memory.grow $dirty (i32.sub (local.get $need) (memory.size $dirty))) (i32.const -1))
          (then (return (i64.const -1))))))
    (if (i32.gt_u (local.get $need) (memory.size $loaded))
      (then
        (if (i32.eq (memory.grow $loaded (i32.sub (local.get $need) (memory.size $loaded))) (i32.const -1))
          (then (return (i64.const -1))))))
    ;; fresh pages are zero and have nothing in SQL: they count as loaded
    (memory.fill $loaded (i32.wrap_i64 (local.get $old)) (i32.const 1) (i32.wrap_i64 (local.get $n)))
    (global.set $size (local.get $new))
    (local.get $old))

  (func $write64 (export "stable64_write") (param $off i64) (param $src i64) (param $len i64)
    (local $first i64) (local $last i64)
    (call $check_heap (local.get $src) (local.get $len))
    (call $check_stable (local.get $off) (local.get $len))
    (if (i64.eqz (local.get $len)) (then (return)))
    (local.set $first (i64.shr_u (local.get $off) (i64.const 16)))
    (local.set $last (i64.shr_u (i64.sub (i64.add (local.get $off) (local.get $len)) (i64.const 1)) (i64.const 16)))
    (call $ensure_loaded (local.get $first) (local.get $last))
    (memory.fill $dirty (i32.wrap_i64 (local.get $first)) (i32.const 1)
                 (i32.wrap_i64 (i64.add (i64.sub (local.get $last) (local.get $first)) (i64.const 1))))
    (memory.copy $stable $heap (local.get $off) ({src_addr}) ({len_heap}))
    (global.set $written_bytes (i64.add (global.get $written_bytes) (local.get $len))))

  (func $read64 (export "stable64_read") (param $dst i64) (param $off i64) (param $len i64)
    (local $first i64) (local $last i64)
    (call $check_heap (local.get $dst) (local.get $len))
    (call $check_stable (local.get $off) (local.get $len))
    (if (i64.eqz (local.get $len)) (then (return)))
    (local.set $first (i64.shr_u (local.get $off) (i64.const 16)))
    (local.set $last (i64.shr_u (i64.sub (i64.add (local.get $off) (local.get $len)) (i64.const 1)) (i64.const 16)))
    (call $ensure_loaded (local.get $first) (local.get $last))
    (memory.copy $heap $stable ({dst_addr}) (local.get $off) ({len_heap}))
    (global.set $read_bytes (i64.add (global.get $read_bytes) (local.get $len))))

  ;; The deprecated 32-bit API: traps once the stable memory exceeds 4 GiB, as on the IC.
  (func $check32
    (if (i64.gt_u (global.get $size) (i64.const 65536)) (then (call $fail (i32.const 3)) (unreachable))))
  (func (export "stable_size") (result i32)
    (call $check32)
    (i32.wrap_i64 (global.get $size)))
  (func (export "stable_grow") (param $n i32) (result i32)
    (call $check32)
    (if (i64.gt_u (i64.add (global.get $size) (i64.extend_i32_u (local.get $n))) (i64.const 65536))
      (then (return (i32.const -1))))
    (i32.wrap_i64 (call $grow64 (i64.extend_i32_u (local.get $n)))))
  (func (export "stable_write") (param $off i32) (param $src i32) (param $len i32)
    (call $check32)
    (call $write64 (i64.extend_i32_u (local.get $off)) (i64.extend_i32_u (local.get $src))
                   (i64.extend_i32_u (local.get $len))))
  (func (export "stable_read") (param $dst i32) (param $off i32) (param $len i32)
    (call $check32)
    (call $read64 (i64.extend_i32_u (local.get $dst)) (i64.extend_i32_u (local.get $off))
                  (i64.extend_i32_u (local.get $len))))
)
"""


def helper_wat(heap_is_64: bool) -> str:
    """The helper module's text for a canister whose heap is a 64-bit (moc) or 32-bit memory."""
    # The stable64 API takes i64 heap addresses whatever the heap's index type; they are checked
    # against the heap size first, so narrowing them for a 32-bit heap is exact.
    if heap_is_64:
        return _TEMPLATE.format(
            heap_type="i64", heap_size="memory.size $heap",
            src_addr="local.get $src", dst_addr="local.get $dst", len_heap="local.get $len")
    # memory.copy between a 32-bit and a 64-bit memory takes an i32 length (the smaller index type).
    return _TEMPLATE.format(
        heap_type="", heap_size="i64.extend_i32_u (memory.size $heap)",
        src_addr="i32.wrap_i64 (local.get $src)", dst_addr="i32.wrap_i64 (local.get $dst)",
        len_heap="i32.wrap_i64 (local.get $len)")


STABLE_IMPORTS = ("stable64_size", "stable64_grow", "stable64_write", "stable64_read",
                  "stable_size", "stable_grow", "stable_write", "stable_read")
