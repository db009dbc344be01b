// Incompatible with v1: `count` changes from Nat to Text. The planner refuses it; forced, moc's
// runtime traps in post_upgrade ("RTS error: Memory-incompatible program upgrade").
persistent actor {
  public type Color = { #red; #green };
  public type Shape = { name : Text; color : Color; sides : Nat };

  var count : Text = "";
  var shapes : [Shape] = [];
  var owner : Text = "nobody";

  public query func dump() : async Text { "count=" # count # " owner=" # owner };
};
