// expect: type-mismatch
(with migration = func (old : { var x : Nat }) : { var x : Text } = { var x = debug_show (old.x) })
persistent actor {
  var x : Text = "";
};
