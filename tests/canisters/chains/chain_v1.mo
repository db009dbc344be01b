// Version 1 of the test chain canister: chain [Init].
persistent actor {
  var count : Nat;
  var owner : Text;

  public func inc() : async Nat { count += 1; count };
  public func setOwner(o : Text) : async () { owner := o };
  public query func getOwner() : async Text { owner };
  public query func state() : async Text { "count=" # debug_show count # " owner=" # owner };
};
