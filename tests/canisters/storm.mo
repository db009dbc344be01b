// A canister that floods its own queue: every `storm` message sends itself `width` more, so its
// queue never empties (the scheduling tests: a flood slows only the canister that makes it).
persistent actor Storm {
  var storms : Nat = 0;

  public func storm(width : Nat) : async () {
    storms += 1;
    var i = 0;
    while (i < width) {
      ignore Storm.storm(width);
      i += 1;
    };
  };

  public query func count() : async Nat { storms };
};
