;; A hand-written 64-bit canister (like moc output) for the durability tests: it changes every kind
;; of state in one message (heap, a mutable global, stable memory contents and size, the global
;; timer, optionally the heap size) and then traps, and it fills many stable pages in one message.
;; Arguments and replies are raw little-endian i64s (no Candid).
(module
  (import "ic0" "msg_arg_data_size" (func $arg_size (result i64)))
  (import "ic0" "msg_arg_data_copy" (func $arg_copy (param i64 i64 i64)))
  (import "ic0" "msg_reply_data_append" (func $reply_append (param i64 i64)))
  (import "ic0" "msg_reply" (func $reply))
  (import "ic0" "global_timer_set" (func $timer_set (param i64) (result i64)))
  (import "ic0" "stable64_size" (func $s_size (result i64)))
  (import "ic0" "stable64_grow" (func $s_grow (param i64) (result i64)))
  (import "ic0" "stable64_write" (func $s_write (param i64 i64 i64)))
  (import "ic0" "stable64_read" (func $s_read (param i64 i64 i64)))

  (memory (export "memory") i64 2)
  (global $counter (mut i64) (i64.const 0))

  ;; 0x100: reply scratch; 0x200: stable write source; 0x500: a heap word; 0x1000: argument
  (func $load_arg
    (call $arg_copy (i64.const 0x1000) (i64.const 0) (call $arg_size)))
  (func $arg0 (result i64) (i64.load (i64.const 0x1000)))
  (func $reply_i64 (param $v i64)
    (i64.store (i64.const 0x100) (local.get $v))
    (call $reply_append (i64.const 0x100) (i64.const 8))
    (call $reply))

  ;; setup: i64 timer -> counter = 7, heap word 0x500 = 11, stable grows by 1 page and its
  ;; first word = 13, timer = the argument; replies the previous timer
  (func (export "canister_update setup")
    (call $load_arg)
    (global.set $counter (i64.const 7))
    (i64.store (i64.const 0x500) (i64.const 11))
    (drop (call $s_grow (i64.const 1)))
    (i64.store (i64.const 0x200) (i64.const 13))
    (call $s_write (i64.const 0) (i64.const 0x200) (i64.const 8))
    (call $reply_i64 (call $timer_set (call $arg0))))

  ;; mutate_then_trap: i64 flags (1: also grow the heap by one page) -> changes everything, traps
  (func (export "canister_update mutate_then_trap")
    (call $load_arg)
    (global.set $counter (i64.add (global.get $counter) (i64.const 100)))
    (i64.store (i64.const 0x500) (i64.const 99))
    (drop (call $s_grow (i64.const 3)))
    (i64.store (i64.const 0x200) (i64.const 77))
    (call $s_write (i64.const 0) (i64.const 0x200) (i64.const 8))
    (call $s_write (i64.const 0x20000) (i64.const 0x200) (i64.const 8))
    (drop (call $timer_set (i64.const 1)))
    (if (i32.wrap_i64 (i64.and (call $arg0) (i64.const 1)))
      (then
        (drop (memory.grow (i64.const 1)))
        (i64.store (i64.const 0x20000) (i64.const 55))))
    (unreachable))

  ;; state -> counter ++ heap word 0x500 ++ stable64_size ++ first stable word (0 if none) ++ heap pages
  (func (export "canister_query state")
    (i64.store (i64.const 0x100) (global.get $counter))
    (i64.store (i64.const 0x108) (i64.load (i64.const 0x500)))
    (i64.store (i64.const 0x110) (call $s_size))
    (i64.store (i64.const 0x118) (i64.const 0))
    (if (i64.gt_u (call $s_size) (i64.const 0))
      (then (call $s_read (i64.const 0x118) (i64.const 0) (i64.const 8))))
    (i64.store (i64.const 0x120) (memory.size))
    (call $reply_append (i64.const 0x100) (i64.const 40))
    (call $reply))

  ;; fill_stable: i64 n -> grows stable memory by n pages and writes (page number + 1) as the
  ;; first word of every page; replies the previous size
  (func (export "canister_update fill_stable")
    (local $old i64) (local $p i64) (local $end i64)
    (call $load_arg)
    (local.set $old (call $s_grow (call $arg0)))
    (local.set $p (local.get $old))
    (local.set $end (i64.add (local.get $old) (call $arg0)))
    (block $done
      (loop $l
        (br_if $done (i64.ge_u (local.get $p) (local.get $end)))
        (i64.store (i64.const 0x200) (i64.add (local.get $p) (i64.const 1)))
        (call $s_write (i64.shl (local.get $p) (i64.const 16)) (i64.const 0x200) (i64.const 8))
        (local.set $p (i64.add (local.get $p) (i64.const 1)))
        (br $l)))
    (call $reply_i64 (local.get $old)))

  ;; page_word: i64 page -> the first word of that stable page
  (func (export "canister_query page_word")
    (call $load_arg)
    (call $s_read (i64.const 0x100) (i64.shl (call $arg0) (i64.const 16)) (i64.const 8))
    (call $reply_append (i64.const 0x100) (i64.const 8))
    (call $reply))
)
