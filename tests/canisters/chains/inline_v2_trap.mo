// An inline migration that traps: the upgrade must change nothing.
import Prim "mo:prim";

(
  with migration = func(old : { var count : Nat }) : { var count : Int } {
    if (old.count > 0) { Prim.trap("inline migration: refusing to convert count") };
    { var count = old.count };
  }
)
persistent actor {
  var count : Int = 0;
  var owner : Text = "";

  public query func state() : async Text { "count=" # debug_show count # " owner=" # owner };
};
