;; A canister for the dirty-tracking tests: a big heap with a pattern on every 4 KiB, and one
;; message (an update that may trap, or a query) that writes all over it -- by Wasm stores, by the
;; host (the argument copy) and by the stable-memory helper (stable64_read into the heap).
;; Arguments are raw little-endian i64s.
(module
  (import "ic0" "msg_arg_data_size" (func $arg_size (result i64)))
  (import "ic0" "msg_arg_data_copy" (func $arg_copy (param i64 i64 i64)))
  (import "ic0" "msg_reply_data_append" (func $reply_append (param i64 i64)))
  (import "ic0" "msg_reply" (func $reply))
  (import "ic0" "trap" (func $trap (param i64 i64)))
  (import "ic0" "stable64_grow" (func $s_grow (param i64) (result i64)))
  (import "ic0" "stable64_write" (func $s_write (param i64 i64 i64)))
  (import "ic0" "stable64_read" (func $s_read (param i64 i64 i64)))
  (memory i64 2)
  (data (i64.const 32768) "scribble")

  (func $load_arg (call $arg_copy (i64.const 0) (i64.const 0) (call $arg_size)))
  (func $a (param $i i64) (result i64) (i64.load (i64.shl (local.get $i) (i64.const 3))))

  ;; a0 = heap pages: grow to a0 pages and put a word on every 4 KiB from page 1 on; one stable
  ;; page of 0x77 bytes for the helper to copy later.
  (func (export "canister_update fill")
    (local $off i64) (local $end i64)
    (call $load_arg)
    (if (i64.gt_u (call $a (i64.const 0)) (memory.size))
      (then (drop (memory.grow (i64.sub (call $a (i64.const 0)) (memory.size))))))
    (local.set $end (i64.shl (memory.size) (i64.const 16)))
    (local.set $off (i64.const 65536))
    (block $done (loop $l
      (br_if $done (i64.ge_u (local.get $off) (local.get $end)))
      (i64.store (local.get $off) (i64.xor (local.get $off) (i64.const 0x5DEECE66D)))
      (local.set $off (i64.add (local.get $off) (i64.const 4096)))
      (br $l)))
    (drop (call $s_grow (i64.const 1)))
    (memory.fill (i64.const 1024) (i32.const 0x77) (i64.const 4096))
    (call $s_write (i64.const 0) (i64.const 1024) (i64.const 4096))
    (call $reply))

  ;; a0 = first page, a1 = step, a2 = value, a3 = 1: trap at the end. Writes a2 into every a1-th
  ;; page from a0 (a different 4 KiB of each page), then the host copies the argument onto the last
  ;; page and the helper copies stable bytes onto the one before it.
  (func $scribble
    (local $p i64) (local $pages i64)
    (call $load_arg)
    (local.set $pages (memory.size))
    (local.set $p (call $a (i64.const 0)))
    (block $done (loop $l
      (br_if $done (i64.ge_u (local.get $p) (local.get $pages)))
      (i64.store (i64.add (i64.shl (local.get $p) (i64.const 16))
                          (i64.shl (i64.and (local.get $p) (i64.const 15)) (i64.const 12)))
                 (call $a (i64.const 2)))
      (local.set $p (i64.add (local.get $p) (call $a (i64.const 1))))
      (br $l)))
    (call $arg_copy (i64.sub (i64.shl (local.get $pages) (i64.const 16)) (i64.const 4096))
                    (i64.const 0) (call $arg_size))
    (call $s_read (i64.sub (i64.shl (local.get $pages) (i64.const 16)) (i64.const 70000))
                  (i64.const 0) (i64.const 4096))
    (if (i64.eq (call $a (i64.const 3)) (i64.const 1))
      (then (call $trap (i64.const 32768) (i64.const 8))))
    (call $reply_append (i64.const 0) (i64.const 8))
    (call $reply))
  (func (export "canister_update scribble") (call $scribble))
  (func (export "canister_query peek") (call $scribble))

  ;; a0 = address: the i64 there
  (func (export "canister_query word")
    (call $load_arg)
    (i64.store (i64.const 16) (i64.load (call $a (i64.const 0))))
    (call $reply_append (i64.const 16) (i64.const 8))
    (call $reply)))
