// The rarer system APIs the Motoko runtime can reach, kept apart from info.mo so that a host
// without them can still run info.mo: the ic0 functions named below are imported only by this
// canister. Also: `system func inspect` (exports canister_inspect_message) and `call_raw`.
import Prim "mo:⛔";

persistent actor ExtraInfo {
  var inspected : Nat = 0; // never persists: inspect_message state changes are discarded
  var burned : Nat = 0;

  // ic0.msg_method_name_size / msg_method_name_copy / accept_message:
  // ingress calls to `refused` are rejected before they run; everything else is accepted.
  system func inspect({
    caller : Principal;
    arg : Blob;
    msg : {
      #refused : () -> ();
      #rawCall : () -> Blob;
      #burn : () -> Nat;
      #rootKey : () -> ();
      #subnet : () -> ();
      #env : () -> Text;
      #envNames : () -> ();
      #signer : () -> ();
      #costs : () -> ();
      #stats : () -> ();
    };
  }) : Bool {
    ignore (caller, arg);
    inspected += 1;
    switch msg {
      case (#refused _) false;
      case _ true;
    };
  };

  public func refused() : async Text { "inspect_message let this through" };

  // A dynamic call by method name with raw Candid bytes: calls this canister's own `stats` with
  // `arg` (use the empty argument list, blob "DIDL\00\00") and returns the raw reply.
  public func rawCall(arg : Blob) : async Blob {
    await Prim.call_raw(Prim.principalOfActor(ExtraInfo), "stats", arg);
  };

  // ic0.cycles_burn128
  public func burn(amount : Nat) : async Nat {
    let b = Prim.cyclesBurn<system>(amount);
    burned += b;
    b;
  };

  // ic0.root_key_size / root_key_copy
  public query func rootKey() : async Blob { Prim.rootKey() };

  // ic0.subnet_self_size / subnet_self_copy
  public query func subnet() : async Principal { Prim.canisterSubnet() };

  // ic0.env_var_* (canister environment variables; need the `system` capability: update methods)
  public func env(name : Text) : async ?Text { Prim.envVar<system>(name) };
  public func envNames() : async [Text] { Prim.envVarNames<system>() };

  // ic0.msg_caller_info_* (the signer of the caller's delegation, if any)
  public func signer() : async Blob { Prim.callerInfoSigner<system>() };

  // ic0.cost_call / cost_create_canister / cost_http_request (system-reported cycle costs)
  public query func costs() : async { call : Nat; createCanister : Nat; httpRequest : Nat } {
    {
      call = Prim.costCall(10, 100);
      createCanister = Prim.costCreateCanister();
      httpRequest = Prim.costHttpRequest(100, 1000);
    };
  };

  public query func stats() : async { inspected : Nat; burned : Nat } { { inspected; burned } };
};
