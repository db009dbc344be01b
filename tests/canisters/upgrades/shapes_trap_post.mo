// Compatible with v1, but its postupgrade traps: the upgrade is rolled back.
import Prim "mo:⛔";

persistent actor {
  public type Color = { #red; #green };
  public type Shape = { name : Text; color : Color; sides : Nat };

  var count : Nat = 0;
  var shapes : [Shape] = [];
  var owner : Text = "nobody";

  system func postupgrade() {
    owner := "clobbered by a failed upgrade";
    Prim.trap("postupgrade refuses on purpose");
  };

  public query func dump() : async Text { "count=" # debug_show count # " owner=" # owner };
};
