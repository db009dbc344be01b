// Upgrade tests, version 1: a few stable variables of different kinds.
//
// The later versions (shapes_v2 ... ) change these in ways EOP allows (a new variable, Nat -> Int,
// a new variant tag) or does not allow (Nat -> Text); every version answers `dump` the same way,
// so a test can compare the data before and after an upgrade.
import Prim "mo:⛔";

persistent actor {
  public type Color = { #red; #green };
  public type Shape = { name : Text; color : Color; sides : Nat };

  var count : Nat = 0;
  var shapes : [Shape] = [];
  var owner : Text = "nobody";

  func append(s : Shape) {
    let old = shapes;
    shapes := Prim.Array_tabulate<Shape>(old.size() + 1, func i = if (i < old.size()) old[i] else s);
  };

  public func add(name : Text, color : Color, sides : Nat) : async Nat {
    append({ name; color; sides });
    count += sides;
    shapes.size();
  };

  public func setOwner(o : Text) : async () { owner := o };

  public query func dump() : async Text {
    var out = "count=" # debug_show count # " owner=" # owner;
    for (s in shapes.vals()) out #= " " # s.name # ":" # debug_show s.color # ":" # debug_show s.sides;
    out;
  };

  public query func total() : async Nat { count };
};
