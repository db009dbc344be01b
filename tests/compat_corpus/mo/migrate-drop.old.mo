persistent actor {
  var a : Nat = 0;
  var b : Text = "";
  public func get() : async Text { b # debug_show a };
};
