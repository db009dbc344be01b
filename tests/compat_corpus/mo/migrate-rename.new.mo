// expect: compatible
(with migration = func (old : { var count : Nat }) : { var total : Int } = { var total = old.count })
persistent actor {
  var total : Int = 0;
  public func inc() : async () { total += 1 };
};
