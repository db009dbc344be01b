// A canister whose heap grows on demand, for the upgrade benchmark (bench/upgrade.py).
//
// `grow(mib)` adds about `mib` MiB of stable data: blocks of 128 KiB (a record holding a mutable
// array of 16,384 small Nats, a Text label and a link to the previous block), so the heap is a
// real object graph (many objects, shared links), not one big blob. `digest` folds every value.
import Prim "mo:⛔";

persistent actor {
  type Block = { id : Nat; label_ : Text; data : [var Nat]; prev : ?Block };

  var blocks : [Block] = [];
  var last : ?Block = null;

  transient let WORDS = 16_384; // 128 KiB of 8-byte words per block

  public func grow(mib : Nat) : async Nat {
    let first = blocks.size();
    let more = mib * 8;
    var prev = last;
    let fresh = Prim.Array_tabulate<Block>(
      more,
      func k {
        let id = first + k;
        let data = Prim.Array_init<Nat>(WORDS, 0);
        var i = 0;
        while (i < WORDS) { data[i] := (id * 31 + i) % 1_000_000; i += 1 };
        let b = { id; label_ = "block-" # debug_show id; data; prev };
        prev := ?b;
        b;
      },
    );
    let old = blocks;
    blocks := Prim.Array_tabulate<Block>(old.size() + more, func j = if (j < old.size()) old[j] else fresh[j - old.size()]);
    last := prev;
    blocks.size();
  };

  public query func digest() : async Nat {
    var acc = 0;
    for (b in blocks.vals()) {
      acc := (acc * 31 + b.id + b.label_.size()) % 1_000_000_007;
      for (x in b.data.vals()) acc := (acc + x) % 1_000_000_007;
      switch (b.prev) { case (?p) acc := (acc + p.id) % 1_000_000_007; case null {} };
    };
    acc;
  };

  public query func count() : async Nat { blocks.size() };
};
