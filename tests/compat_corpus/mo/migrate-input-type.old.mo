persistent actor {
  var x : Int = -1;
};
