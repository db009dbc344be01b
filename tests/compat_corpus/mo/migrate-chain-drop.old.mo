(with migration = func (old : { var one : [var Nat] }) : { var three : [var (Nat, Text)] } =
  { var three = [var (old.one.size(), "x")] })
persistent actor {
  var zero : Nat = 0;
  var three : [var (Nat, Text)] = [var];
};
