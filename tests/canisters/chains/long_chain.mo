// A long chain: Init plus many generated steps (tests/canisters/chains/long_step.mo.in), each
// counting itself into `steps` and appending its number to `log`.
persistent actor {
  var steps : Nat;
  var log : [Nat];

  public query func state() : async (Nat, [Nat]) { (steps, log) };
};
