persistent actor {
  var count : Nat = 0;
  public func inc() : async () { count += 1 };
};
