// An inline migration that converts `count` (Nat -> Int) and discards `owner`.
(
  with migration = func(old : { var count : Nat; var owner : Text }) : { var count : Int } {
    { var count = old.count };
  }
)
persistent actor {
  var count : Int = 0;

  public func dec() : async Int { count -= 1; count };
  public query func state() : async Text { "count=" # debug_show count };
};
