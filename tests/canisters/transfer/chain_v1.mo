// Snapshot-transfer tests, version 1 of a canister that then upgrades with a migration function.
//
// A list of named entries and a running total; `summary` and `entry(i)` show everything.
import Prim "mo:⛔";

persistent actor {
  public type Entry = { name : Text; amount : Nat; tags : [Text] };

  var entries : [Entry] = [];
  var total : Nat = 0;

  public func add(name : Text, amount : Nat) : async Nat {
    let old = entries;
    let e : Entry = { name; amount; tags = if (amount % 2 == 0) ["even"] else ["odd", "v1"] };
    entries := Prim.Array_tabulate<Entry>(old.size() + 1, func i = if (i < old.size()) old[i] else e);
    total += amount;
    total
  };

  public query func summary() : async { count : Nat; total : Nat } { { count = entries.size(); total } };

  public query func entry(i : Nat) : async ?Entry { if (i < entries.size()) ?entries[i] else null };
};
