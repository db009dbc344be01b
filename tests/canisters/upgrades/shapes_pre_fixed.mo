// shapes_trap_pre.mo without its trapping preupgrade hook: the module to upgrade to once the hook
// is skipped (skip_pre_upgrade). Its stable variables are those of shapes_trap_pre.mo.
import Prim "mo:⛔";

persistent actor {
  public type Color = { #red; #green };
  public type Shape = { name : Text; color : Color; sides : Nat };

  var count : Nat = 0;
  var shapes : [Shape] = [];
  var owner : Text = "nobody";
  var armed : Bool = true;

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

  public func disarm() : async () { armed := false };

  public query func dump() : async Text {
    var out = "count=" # debug_show count # " owner=" # owner;
    for (s in shapes.vals()) out #= " " # s.name # ":" # debug_show s.color # ":" # debug_show s.sides;
    out;
  };
};
