// Version 3: chain [Init, AddAccounts, CountToInt] (Nat -> Int).
persistent actor {
  var count : Int;
  var owner : Text;
  var accounts : [(Text, Nat)];

  public func dec() : async Int { count -= 1; count };
  public func clearAccounts() : async () { accounts := [] };
  public func setOwner(o : Text) : async () { owner := o };
  public query func getOwner() : async Text { owner };
  public query func state() : async Text {
    "count=" # debug_show count # " owner=" # owner # " accounts=" # debug_show accounts;
  };
};
