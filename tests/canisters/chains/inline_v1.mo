// The inline migration form (`with migration`, .most 3.0.0), before: two stable variables.
persistent actor {
  var count : Nat = 0;
  var owner : Text = "";

  public func inc() : async Nat { count += 1; count };
  public func setOwner(o : Text) : async () { owner := o };
  public query func state() : async Text { "count=" # debug_show count # " owner=" # owner };
};
