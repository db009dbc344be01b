;; A hand-written canister for the IC's message and log limits: it replies, prints and calls with
;; sizes its caller chooses. Arguments are raw little-endian i64s (no Candid).
(module
  (import "ic0" "msg_arg_data_size" (func $arg_size (result i64)))
  (import "ic0" "msg_arg_data_copy" (func $arg_copy (param i64 i64 i64)))
  (import "ic0" "msg_reply_data_append" (func $reply_append (param i64 i64)))
  (import "ic0" "msg_reply" (func $reply))
  (import "ic0" "msg_reject" (func $reject (param i64 i64)))
  (import "ic0" "msg_reject_code" (func $reject_code (result i32)))
  (import "ic0" "msg_reject_msg_size" (func $reject_msg_size (result i64)))
  (import "ic0" "msg_reject_msg_copy" (func $reject_msg_copy (param i64 i64 i64)))
  (import "ic0" "canister_self_size" (func $self_size (result i64)))
  (import "ic0" "canister_self_copy" (func $self_copy (param i64 i64 i64)))
  (import "ic0" "call_new" (func $call_new (param i64 i64 i64 i64 i64 i64 i64 i64)))
  (import "ic0" "call_data_append" (func $call_data_append (param i64 i64)))
  (import "ic0" "call_perform" (func $call_perform (result i32)))
  (import "ic0" "debug_print" (func $print (param i64 i64)))

  ;; 0x100: scratch; 0x200: self id; 0x1000: argument; 0x8000: method names; 0x10000..: payload
  (memory (export "memory") i64 512)
  (table (export "table") 2 funcref)
  (elem (i32.const 0) $on_reply $on_reject)
  (data (i64.const 0x8000) "size")   ;; 4 bytes

  (func $load_arg
    (call $arg_copy (i64.const 0x1000) (i64.const 0) (call $arg_size)))
  (func $arg (param $i i64) (result i64) (i64.load (i64.add (i64.const 0x1000) (i64.mul (local.get $i) (i64.const 8)))))
  (func $reply_i64 (param $v i64)
    (i64.store (i64.const 0x100) (local.get $v))
    (call $reply_append (i64.const 0x100) (i64.const 8))
    (call $reply))

  ;; reply(n): reply with n bytes
  (func $reply_n
    (call $load_arg)
    (call $reply_append (i64.const 0x10000) (call $arg (i64.const 0)))
    (call $reply))
  (export "canister_update reply" (func $reply_n))
  (export "canister_query reply_query" (func $reply_n))

  ;; size(): the size of the argument
  (func $size (call $reply_i64 (call $arg_size)))
  (export "canister_update size" (func $size))

  ;; print(count, size): print `count` times a text of `size` bytes ('a'..), then reply
  (func $print_n
    (local $i i64)
    (call $load_arg)
    (memory.fill (i64.const 0x10000) (i32.const 97) (call $arg (i64.const 1)))
    (block $done
      (loop $next
        (br_if $done (i64.ge_u (local.get $i) (call $arg (i64.const 0))))
        ;; the record's first byte counts the prints mod 26, so that each record is told apart
        (i64.store8 (i64.const 0x10000) (i64.add (i64.const 97) (i64.rem_u (local.get $i) (i64.const 26))))
        (call $print (i64.const 0x10000) (call $arg (i64.const 1)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $next)))
    (call $reply_i64 (local.get $i)))
  (export "canister_update print" (func $print_n))

  ;; reject(n): reject with a message of n bytes
  (func $reject_n
    (call $load_arg)
    (memory.fill (i64.const 0x10000) (i32.const 120) (call $arg (i64.const 0)))
    (call $reject (i64.const 0x10000) (call $arg (i64.const 0))))
  (export "canister_update reject" (func $reject_n))

  ;; call_self(n): call own "size" with an n-byte argument; reply with its reply (or reject with
  ;; the reject's message)
  (func $call_self
    (call $load_arg)
    (call $self_copy (i64.const 0x200) (i64.const 0) (call $self_size))
    (call $call_new (i64.const 0x200) (call $self_size) (i64.const 0x8000) (i64.const 4)
                    (i64.const 0) (i64.const 0) (i64.const 1) (i64.const 0))
    (call $call_data_append (i64.const 0x10000) (call $arg (i64.const 0)))
    (drop (call $call_perform)))
  (export "canister_update call_self" (func $call_self))
  ;; forward(n): ask own "reply" for n bytes and reply with them (or reject with the reject's message)
  (func $forward
    (call $load_arg)
    (call $self_copy (i64.const 0x200) (i64.const 0) (call $self_size))
    (call $call_new (i64.const 0x200) (call $self_size) (i64.const 0x8100) (i64.const 5)
                    (i64.const 0) (i64.const 0) (i64.const 1) (i64.const 0))
    (call $call_data_append (i64.const 0x1000) (i64.const 8))
    (drop (call $call_perform)))
  (data (i64.const 0x8100) "reply")
  (export "canister_update forward" (func $forward))

  (func $on_reply (param $env i64)
    (local $n i64)
    (local.set $n (call $arg_size))
    (call $arg_copy (i64.const 0x20000) (i64.const 0) (local.get $n))
    (call $reply_append (i64.const 0x20000) (local.get $n))
    (call $reply))
  (func $on_reject (param $env i64)
    (local $n i64)
    (local.set $n (call $reject_msg_size))
    (call $reject_msg_copy (i64.const 0x20000) (i64.const 0) (local.get $n))
    (call $reject (i64.const 0x20000) (local.get $n)))
)
