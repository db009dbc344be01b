// Version 4: chain [Init, AddAccounts, CountToInt, DropOwner] (a dropped field); with Fails
// appended it is the version whose upgrade traps.
persistent actor {
  var count : Int;
  var accounts : [(Text, Nat)];

  public func dec() : async Int { count -= 1; count };
  public func clearAccounts() : async () { accounts := [] };
  public query func state() : async Text {
    "count=" # debug_show count # " accounts=" # debug_show accounts;
  };
};
