persistent actor {
  var other : Text = "";
};
