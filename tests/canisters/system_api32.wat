;; A hand-written canister with a 32-bit memory (wasm32), for the deprecated 32-bit stable memory
;; API (ic0.stable_*), for the stable64 API on a 32-bit heap, and for System API checks that the
;; 64-bit system_api.wat does not make (availability traps, call construction misuse, instruction
;; counting of a variable amount of work, a query that never ends).
;; Arguments and replies are raw little-endian bytes (no Candid): "i32 x" means 4 bytes, "i64 x"
;; means 8 bytes. Every i64 reply is signed where the API can return -1.
(module
  (import "ic0" "msg_arg_data_size" (func $arg_size (result i32)))
  (import "ic0" "msg_arg_data_copy" (func $arg_copy (param i32 i32 i32)))
  (import "ic0" "msg_caller_size" (func $caller_size (result i32)))
  (import "ic0" "msg_caller_copy" (func $caller_copy (param i32 i32 i32)))
  (import "ic0" "msg_reply_data_append" (func $reply_append (param i32 i32)))
  (import "ic0" "msg_reply" (func $reply))
  (import "ic0" "msg_reject_code" (func $reject_code (result i32)))
  (import "ic0" "msg_cycles_refunded128" (func $refunded (param i32)))
  (import "ic0" "canister_self_size" (func $self_size (result i32)))
  (import "ic0" "canister_self_copy" (func $self_copy (param i32 i32 i32)))
  (import "ic0" "call_new" (func $call_new (param i32 i32 i32 i32 i32 i32 i32 i32)))
  (import "ic0" "call_on_cleanup" (func $call_on_cleanup (param i32 i32)))
  (import "ic0" "call_data_append" (func $call_data_append (param i32 i32)))
  (import "ic0" "call_with_best_effort_response" (func $call_best_effort (param i32)))
  (import "ic0" "call_perform" (func $call_perform (result i32)))
  (import "ic0" "global_timer_set" (func $timer_set (param i64) (result i64)))
  (import "ic0" "performance_counter" (func $perf (param i32) (result i64)))
  (import "ic0" "debug_print" (func $print (param i32 i32)))
  (import "ic0" "trap" (func $trap (param i32 i32)))
  (import "ic0" "stable_size" (func $s32_size (result i32)))
  (import "ic0" "stable_grow" (func $s32_grow (param i32) (result i32)))
  (import "ic0" "stable_write" (func $s32_write (param i32 i32 i32)))
  (import "ic0" "stable_read" (func $s32_read (param i32 i32 i32)))
  (import "ic0" "stable64_size" (func $s64_size (result i64)))
  (import "ic0" "stable64_grow" (func $s64_grow (param i64) (result i64)))
  (import "ic0" "stable64_write" (func $s64_write (param i64 i64 i64)))
  (import "ic0" "stable64_read" (func $s64_read (param i64 i64 i64)))

  (memory (export "memory") 2)
  (table (export "table") 2 funcref)
  (elem (i32.const 0) $on_reply $on_reject)

  ;; 0x100: reply scratch; 0x1000: argument; 0x8000: read buffer (up to 0x18000);
  ;; 0x600: strings
  (data (i32.const 0x600) "echo")     ;; 4 bytes
  (data (i32.const 0x610) "wasm32!")  ;; 7 bytes

  (func $load_arg (result i32)
    (local $n i32)
    (local.set $n (call $arg_size))
    (call $arg_copy (i32.const 0x1000) (i32.const 0) (local.get $n))
    (local.get $n))
  (func $reply_i64 (param $v i64)
    (i64.store (i32.const 0x100) (local.get $v))
    (call $reply_append (i32.const 0x100) (i32.const 8))
    (call $reply))
  (func $a32 (param $i i32) (result i32) (i32.load (i32.add (i32.const 0x1000) (i32.shl (local.get $i) (i32.const 2)))))
  (func $a64 (param $i i32) (result i64) (i64.load (i32.add (i32.const 0x1000) (i32.shl (local.get $i) (i32.const 3)))))

  ;; --- plain messages on a 32-bit heap
  (func (export "canister_update echo")
    (local $n i32)
    (local.set $n (call $load_arg))
    (call $print (i32.const 0x610) (i32.const 7))
    (call $reply_append (i32.const 0x1000) (local.get $n))
    (call $reply))
  (func (export "canister_query caller")
    (call $caller_copy (i32.const 0x100) (i32.const 0) (call $caller_size))
    (call $reply_append (i32.const 0x100) (call $caller_size))
    (call $reply))
  (func (export "canister_query self")
    (call $self_copy (i32.const 0x100) (i32.const 0) (call $self_size))
    (call $reply_append (i32.const 0x100) (call $self_size))
    (call $reply))
  (func (export "canister_query heap_pages") (call $reply_i64 (i64.extend_i32_u (memory.size))))

  ;; --- the 32-bit stable memory API
  ;; s32_grow: i32 n -> i64 (signed) previous size or -1
  (func (export "canister_update s32_grow")
    (drop (call $load_arg))
    (call $reply_i64 (i64.extend_i32_s (call $s32_grow (call $a32 (i32.const 0))))))
  (func (export "canister_query s32_size") (call $reply_i64 (i64.extend_i32_u (call $s32_size))))
  ;; s32_write: i32 offset ++ bytes
  (func (export "canister_update s32_write")
    (local $n i32)
    (local.set $n (call $load_arg))
    (call $s32_write (call $a32 (i32.const 0)) (i32.const 0x1004) (i32.sub (local.get $n) (i32.const 4)))
    (call $reply))
  ;; s32_read: i32 offset ++ i32 length -> the bytes
  (func (export "canister_query s32_read")
    (drop (call $load_arg))
    (call $s32_read (i32.const 0x8000) (call $a32 (i32.const 0)) (call $a32 (i32.const 1)))
    (call $reply_append (i32.const 0x8000) (call $a32 (i32.const 1)))
    (call $reply))
  ;; s32_read_raw: i32 dst ++ i32 offset ++ i32 length (no reply data)
  (func (export "canister_query s32_read_raw")
    (drop (call $load_arg))
    (call $s32_read (call $a32 (i32.const 0)) (call $a32 (i32.const 1)) (call $a32 (i32.const 2)))
    (call $reply))
  ;; s32_write_raw: i32 offset ++ i32 src ++ i32 length
  (func (export "canister_update s32_write_raw")
    (drop (call $load_arg))
    (call $s32_write (call $a32 (i32.const 0)) (call $a32 (i32.const 1)) (call $a32 (i32.const 2)))
    (call $reply))
  ;; s32_grow_write_trap: i32 n -> grow by n, write "wasm32!" at the old end, then trap
  (func (export "canister_update s32_grow_write_trap")
    (local $old i32)
    (drop (call $load_arg))
    (local.set $old (call $s32_grow (call $a32 (i32.const 0))))
    (call $s32_write (i32.shl (local.get $old) (i32.const 16)) (i32.const 0x610) (i32.const 7))
    (unreachable))

  ;; --- the stable64 API on a 32-bit heap
  (func (export "canister_update s64_grow")
    (drop (call $load_arg))
    (call $reply_i64 (call $s64_grow (call $a64 (i32.const 0)))))
  (func (export "canister_query s64_size") (call $reply_i64 (call $s64_size)))
  ;; s64_write: i64 offset ++ bytes
  (func (export "canister_update s64_write")
    (local $n i32)
    (local.set $n (call $load_arg))
    (call $s64_write (call $a64 (i32.const 0)) (i64.const 0x1008)
                     (i64.extend_i32_u (i32.sub (local.get $n) (i32.const 8))))
    (call $reply))
  ;; s64_read: i64 offset ++ i64 length -> the bytes
  (func (export "canister_query s64_read")
    (drop (call $load_arg))
    (call $s64_read (i64.const 0x8000) (call $a64 (i32.const 0)) (call $a64 (i32.const 1)))
    (call $reply_append (i32.const 0x8000) (i32.wrap_i64 (call $a64 (i32.const 1))))
    (call $reply))
  ;; s64_read_raw: i64 dst ++ i64 offset ++ i64 length (no reply data)
  (func (export "canister_query s64_read_raw")
    (drop (call $load_arg))
    (call $s64_read (call $a64 (i32.const 0)) (call $a64 (i32.const 1)) (call $a64 (i32.const 2)))
    (call $reply))

  ;; --- performance counter and instruction limits
  ;; perf_twice: i32 n -> i64 counter before ++ i64 counter after a loop of n iterations
  (func (export "canister_query perf_twice")
    (local $i i32) (local $before i64)
    (drop (call $load_arg))
    (local.set $before (call $perf (i32.const 0)))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (call $a32 (i32.const 0))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (i64.store (i32.const 0x100) (local.get $before))
    (i64.store (i32.const 0x108) (call $perf (i32.const 1)))
    (call $reply_append (i32.const 0x100) (i32.const 16))
    (call $reply))
  (func (export "canister_query perf_bad_type") (drop (call $perf (i32.const 2))))
  (func (export "canister_query spin_query") (loop $l (br $l)))

  ;; --- System API functions used where the interface spec does not allow them (each must trap)
  (func (export "canister_update reject_code_in_update") (drop (call $reject_code)))
  (func (export "canister_update refunded_in_update") (call $refunded (i32.const 0x100)))
  (func (export "canister_query timer_in_query") (drop (call $timer_set (i64.const 0))))

  ;; --- call construction misuse; i32 selector:
  ;; 0 call_data_append without call_new, 1 call_on_cleanup twice,
  ;; 2 call_with_best_effort_response twice, 3 call_perform without call_new,
  ;; 4 a valid call to self "echo" with data "wasm32!" (replies what the callee replied)
  (func $new_call
    (call $self_copy (i32.const 0x700) (i32.const 0) (call $self_size))
    (call $call_new (i32.const 0x700) (call $self_size) (i32.const 0x600) (i32.const 4)
                    (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 0)))
  (func (export "canister_update call_misuse")
    (local $sel i32)
    (drop (call $load_arg))
    (local.set $sel (call $a32 (i32.const 0)))
    (if (i32.eq (local.get $sel) (i32.const 0))
      (then (call $call_data_append (i32.const 0x610) (i32.const 7))))
    (if (i32.eq (local.get $sel) (i32.const 1))
      (then
        (call $new_call)
        (call $call_on_cleanup (i32.const 1) (i32.const 0))
        (call $call_on_cleanup (i32.const 1) (i32.const 0))))
    (if (i32.eq (local.get $sel) (i32.const 2))
      (then
        (call $new_call)
        (call $call_best_effort (i32.const 5))
        (call $call_best_effort (i32.const 5))))
    (if (i32.eq (local.get $sel) (i32.const 3))
      (then (drop (call $call_perform))))
    (if (i32.eq (local.get $sel) (i32.const 4))
      (then
        (call $new_call)
        (call $call_data_append (i32.const 0x610) (i32.const 7))
        (drop (call $call_perform)))))

  ;; reply callback: reply [msg_reject_code (i64, 0 in a reply callback)] ++ the callee's reply
  (func $on_reply (param $env i32)
    (local $n i32)
    (i64.store (i32.const 0x100) (i64.extend_i32_u (call $reject_code)))
    (call $reply_append (i32.const 0x100) (i32.const 8))
    (local.set $n (call $arg_size))
    (call $arg_copy (i32.const 0x1000) (i32.const 0) (local.get $n))
    (call $reply_append (i32.const 0x1000) (local.get $n))
    (call $reply))
  (func $on_reject (param $env i32)
    (call $trap (i32.const 0x610) (i32.const 7)))
)
