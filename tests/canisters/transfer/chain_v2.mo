// Snapshot-transfer tests, version 2: `total : Nat` becomes `balance : Int` through a migration
// function, and `upgrades` counts the upgrades since (the migration sets it to 1).
import Prim "mo:⛔";

(with migration = func (old : { var total : Nat }) : { var balance : Int; var upgrades : Nat } =
  { var balance = old.total; var upgrades = 1 })
persistent actor {
  public type Entry = { name : Text; amount : Nat; tags : [Text] };

  var entries : [Entry] = [];
  var balance : Int = 0;
  var upgrades : Nat = 0;

  public func add(name : Text, amount : Nat) : async Int {
    let old = entries;
    let e : Entry = { name; amount; tags = ["v2"] };
    entries := Prim.Array_tabulate<Entry>(old.size() + 1, func i = if (i < old.size()) old[i] else e);
    balance += amount;
    balance
  };

  public func withdraw(amount : Nat) : async Int { balance -= amount; balance };

  public query func summary() : async { count : Nat; balance : Int; upgrades : Nat } {
    { count = entries.size(); balance; upgrades }
  };

  public query func entry(i : Nat) : async ?Entry { if (i < entries.size()) ?entries[i] else null };
};
