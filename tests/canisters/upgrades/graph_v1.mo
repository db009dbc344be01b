// Graph-copy tests, version 1: a big object graph for Motoko's incremental graph copy.
//
// `fill(n, m)` builds a mutable array of n Nats (the tests use 100,000) and m nested records that
// share sub-objects (records point at one of a few shared tag arrays and at their predecessor),
// so a copy must preserve sharing, not just values. `digest` folds every stable value into one
// number; `sample(j)` shows one record in full; `prevVisits` checks sharing after a `visit`.
import Prim "mo:⛔";

persistent actor {
  public type Point = { x : Int; y : Int };
  public type Item = {
    id : Nat;
    name : Text;
    tags : [Text];
    where_ : Point;
    score : ?Int;
    kind : { #small; #large : Nat; #named : Text };
  };
  public type Node = {
    item : Item;
    var visits : Nat;
    prev : ?Node;
    blob : Blob;
  };

  let tagSets : [[Text]] = [[], ["a"], ["a", "b"], ["c", "d", "e"]];
  var numbers : [var Nat] = [var];
  var nodes : [Node] = [];
  var last : ?Node = null;
  var fills : Nat = 0;
  var big : Nat = 1;

  func makeItem(i : Nat) : Item {
    {
      id = i;
      name = "item-" # debug_show i;
      tags = tagSets[i % 4];
      where_ = { x = i * 3; y = -i };
      score = if (i % 3 == 0) null else ?(i * i - 1000);
      kind = switch (i % 3) { case 0 #small; case 1 #large(i * 1_000_000_007); case _ #named("n" # debug_show (i % 97)) };
    };
  };

  public func fill(n : Nat, m : Nat) : async Nat {
    numbers := Prim.Array_init<Nat>(n, 0);
    var i = 0;
    while (i < n) { numbers[i] := (i * 7919) % 1_000_003; i += 1 };
    var prev : ?Node = null;
    nodes := Prim.Array_tabulate<Node>(
      m,
      func j {
        let node = { item = makeItem(j); var visits = j % 5; prev; blob = Prim.encodeUtf8("b" # debug_show j) };
        prev := ?node;
        node;
      },
    );
    last := prev;
    fills += 1;
    big := 2 ** 100 + n + m;
    n + m;
  };

  public func visit(j : Nat) : async Nat {
    nodes[j].visits += 1;
    nodes[j].visits;
  };

  func h(acc : Nat, x : Nat) : Nat { (acc * 1_000_003 + x) % 2_305_843_009_213_693_951 };
  func hi(acc : Nat, x : Int) : Nat { if (x < 0) h(h(acc, 1), Prim.abs(x)) else h(h(acc, 0), Prim.abs(x)) };
  func ht(acc : Nat, t : Text) : Nat { h(h(acc, t.size()), Prim.nat32ToNat(Prim.hashBlob(Prim.encodeUtf8(t)))) };

  public query func digest() : async Nat {
    var acc = h(fills, numbers.size());
    for (x in numbers.vals()) acc := h(acc, x);
    for (n in nodes.vals()) {
      let it = n.item;
      acc := ht(h(acc, it.id), it.name);
      for (t in it.tags.vals()) acc := ht(acc, t);
      acc := hi(hi(acc, it.where_.x), it.where_.y);
      acc := switch (it.score) { case null h(acc, 7); case (?s) hi(acc, s) };
      acc := switch (it.kind) { case (#small) h(acc, 1); case (#large k) h(h(acc, 2), k); case (#named t) ht(acc, t) };
      acc := h(h(acc, n.visits), n.blob.size());
      acc := switch (n.prev) { case null h(acc, 0); case (?p) h(acc, p.item.id + 1) };
    };
    h(acc, big % 1_000_000_007);
  };

  // Sharing survives a copy only if node j+1's `prev` is the very object nodes[j]: after
  // `visit(j)` this sees the new count through the other path.
  public query func prevVisits(j : Nat) : async Nat {
    switch (nodes[j].prev) { case (?p) p.visits; case null 0 };
  };

  public query func sample(j : Nat) : async (Item, Nat, Nat, Nat) {
    let n = nodes[j];
    (n.item, n.visits, numbers[j * 7 % numbers.size()], fills);
  };

  public query func sizes() : async (Nat, Nat) { (numbers.size(), nodes.size()) };
};
