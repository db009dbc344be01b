// expect: required-migration-input-missing
(with migration = func (old : { var count : Nat }) : { var total : Int } = { var total = old.count })
persistent actor {
  var other : Text = "";
  var total : Int = 0;
};
