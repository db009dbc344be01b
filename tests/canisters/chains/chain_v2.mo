// Version 2: chain [Init, AddAccounts] (a new field).
import Prim "mo:prim";

persistent actor {
  var count : Nat;
  var owner : Text;
  var accounts : [(Text, Nat)];

  public func inc() : async Nat { count += 1; count };
  public func setOwner(o : Text) : async () { owner := o };
  public query func getOwner() : async Text { owner };
  public func addAccount(name : Text, amount : Nat) : async () {
    let n = accounts.size();
    accounts := Prim.Array_tabulate<(Text, Nat)>(n + 1, func i = if (i < n) accounts[i] else (name, amount));
  };
  public query func state() : async Text {
    "count=" # debug_show count # " owner=" # owner # " accounts=" # debug_show accounts;
  };
};
