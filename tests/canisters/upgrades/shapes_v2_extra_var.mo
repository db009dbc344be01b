// Version 2: adds a stable variable (`note`, initialised on upgrade); everything else as in v1.
import Prim "mo:⛔";

persistent actor {
  public type Color = { #red; #green };
  public type Shape = { name : Text; color : Color; sides : Nat };

  var count : Nat = 0;
  var shapes : [Shape] = [];
  var owner : Text = "nobody";
  var note : Text = "added in v2";

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

  public query func getNote() : async Text { note };
};
