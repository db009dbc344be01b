// System information, one method per system API the Motoko runtime reaches (see the comments for
// the ic0 function behind each). Also counts installs/upgrades and shows transient vs stable state.
import Prim "mo:⛔";

persistent actor Info {
  var upgrades : Nat = 0; // stable: survives upgrades
  var lastCaller : ?Principal = null;
  var certified : Blob = "";
  transient let startedAt : Nat64 = Prim.time(); // transient: re-initialised on install and upgrade
  transient var transientCalls : Nat = 0;

  system func postupgrade() {
    upgrades += 1;
  };

  // ic0.time
  public query func time() : async Nat64 { Prim.time() };

  // ic0.msg_caller_size / msg_caller_copy
  public shared query ({ caller }) func whoami() : async Principal { caller };

  // ic0.is_controller
  public shared query ({ caller }) func amController() : async Bool { Prim.isController(caller) };

  public query func isController(p : Principal) : async Bool { Prim.isController(p) };

  // ic0.canister_self_size / canister_self_copy
  public query func self() : async Principal { Prim.principalOfActor(Info) };

  // ic0.performance_counter (0: instructions in this message, 1: in this call context)
  public query func performanceCounter(counter : Nat32) : async Nat64 {
    Prim.performanceCounter(counter);
  };

  // Burns some instructions between two reads of the instruction counter; returns both.
  public func work(iterations : Nat) : async (Nat64, Nat64) {
    let before = Prim.performanceCounter(0);
    var x = 0;
    var i = 0;
    while (i < iterations) { x := (x * 31 + i) % 1_000_003; i += 1 };
    transientCalls += x % 2;
    (before, Prim.performanceCounter(0));
  };

  // ic0.canister_cycle_balance128
  public query func cyclesBalance() : async Nat { Prim.cyclesBalance() };

  // ic0.msg_cycles_available128 / msg_cycles_accept128: accepts everything attached to the call.
  public func acceptAll() : async { available : Nat; accepted : Nat } {
    let available = Prim.cyclesAvailable();
    { available; accepted = Prim.cyclesAccept<system>(available) };
  };

  // ic0.msg_cycles_refunded128 (after a self-call carrying `amount` cycles, all accepted by acceptAll)
  public func refundAfterSelfCall(amount : Nat) : async { accepted : Nat; refunded : Nat } {
    Prim.cyclesAdd<system>(amount);
    let r = await Info.acceptAll();
    { accepted = r.accepted; refunded = Prim.cyclesRefunded() };
  };

  // ic0.canister_version
  public query func canisterVersion() : async Nat64 { Prim.canisterVersion() };

  // ic0.in_replicated_execution: false in a query called as a query, true in an update.
  public query func replicatedQuery() : async Bool { Prim.isReplicatedExecution() };
  public func replicatedUpdate() : async Bool { Prim.isReplicatedExecution() };

  // ic0.certified_data_set / data_certificate_present / data_certificate_size / data_certificate_copy
  public func setCertified(data : Blob) : async () {
    certified := data;
    Prim.setCertifiedData(data);
  };

  public query func certificate() : async ?Blob { Prim.getCertificate() };

  // ic0.msg_deadline (0 unless the call is a best-effort call)
  public query func deadline() : async Nat64 { Prim.replyDeadline() };

  // ic0.debug_print
  public func print(t : Text) : async () { Prim.debugPrint(t) };

  // ic0.trap
  public func trap(t : Text) : async () { Prim.trap(t) };

  // Records the caller (an update with the caller's principal).
  public shared ({ caller }) func touch() : async Nat {
    lastCaller := ?caller;
    transientCalls += 1;
    transientCalls;
  };

  // Memory as the runtime sees it (no system call: runtime counters).
  public query func rts() : async {
    version : Text;
    memorySize : Nat;
    heapSize : Nat;
    totalAllocation : Nat;
    reclaimed : Nat;
    maxLiveSize : Nat;
    stableMemorySize : Nat;
    callbackTableCount : Nat;
  } {
    {
      version = Prim.rts_version();
      memorySize = Prim.rts_memory_size();
      heapSize = Prim.rts_heap_size();
      totalAllocation = Prim.rts_total_allocation();
      reclaimed = Prim.rts_reclaimed();
      maxLiveSize = Prim.rts_max_live_size();
      stableMemorySize = Prim.rts_stable_memory_size();
      callbackTableCount = Prim.rts_callback_table_count();
    };
  };

  public query func state() : async {
    upgrades : Nat;
    lastCaller : ?Principal;
    certified : Blob;
    startedAt : Nat64;
    transientCalls : Nat;
  } {
    { upgrades; lastCaller; certified; startedAt; transientCalls };
  };
};
