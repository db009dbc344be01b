// expect: drop-stable-variable
persistent actor {
  var zero : Nat = 0;
  var four : [var (Int, Text)] = [var];
  var three2 : [var (Int, Text)] = [var];
};
