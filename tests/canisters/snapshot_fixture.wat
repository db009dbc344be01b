;; The canister of the hand-made snapshot directories in tests/fixtures/snapshot_dirs/.
;;
;; Its globals exercise the order in which an IC snapshot lists them (see
;; persist/snapshot_dir/globals.py): the module's own global exports first, in export order
;; (counter_global, then the immutable version_global), then the mutable globals it does not
;; export, by index ($hidden, $ratio, $scale); $unlisted (immutable, not exported) is not listed.
;; `state` replies with every global, heap word 0x100, the 5 heap bytes at 0x200 (a data segment
;; writes "hello" there at install; a snapshot's heap says otherwise) and stable word 0.
(module
  (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
  (import "ic0" "msg_reply" (func $reply))
  (import "ic0" "stable64_size" (func $ssize (result i64)))
  (import "ic0" "stable64_read" (func $sread (param i64 i64 i64)))
  (memory 2)
  (global $counter (mut i32) (i32.const 0))
  (global $hidden (mut i64) (i64.const 0))
  (global $version i32 (i32.const 7))
  (global $ratio (mut f64) (f64.const 0))
  (global $scale (mut f32) (f32.const 0))
  (global $unlisted i64 (i64.const 99))
  (export "memory" (memory 0))
  (export "counter_global" (global $counter))
  (export "version_global" (global $version))
  (data (i32.const 0x200) "hello")
  (func $state
    (i32.store (i32.const 0x1000) (global.get $counter))
    (i64.store (i32.const 0x1004) (global.get $hidden))
    (f64.store (i32.const 0x100c) (global.get $ratio))
    (f32.store (i32.const 0x1014) (global.get $scale))
    (i32.store (i32.const 0x1018) (global.get $version))
    (i64.store (i32.const 0x101c) (i64.load (i32.const 0x100)))
    (memory.copy (i32.const 0x1024) (i32.const 0x200) (i32.const 5))
    (i64.store (i32.const 0x1029) (i64.const 0))
    (if (i64.ne (call $ssize) (i64.const 0))
      (then (call $sread (i64.const 0x1029) (i64.const 0) (i64.const 8))))
    (call $append (i32.const 0x1000) (i32.const 49))
    (call $reply))
  (func $inc
    (global.set $counter (i32.add (global.get $counter) (i32.const 1)))
    (global.set $hidden (i64.add (global.get $hidden) (i64.const 1)))
    (i64.store (i32.const 0x100) (i64.add (i64.load (i32.const 0x100)) (i64.const 1)))
    (call $state))
  (export "canister_query state" (func $state))
  (export "canister_update inc" (func $inc)))
