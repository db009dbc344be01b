// expect: compatible
persistent actor {
  var zero : Int = 0;
  var three : [var (Nat, Text)] = [var];
  var four : ?Text = null;
};
