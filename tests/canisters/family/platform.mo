// Management canister methods a local host serves or refuses, as a canister sees them.
import Prim "mo:⛔";

persistent actor Platform {
  type KeyId = { curve : { #secp256k1 }; name : Text };

  transient let ic = actor "aaaaa-aa" : actor {
    raw_rand : () -> async Blob;
    sign_with_ecdsa : { message_hash : Blob; derivation_path : [Blob]; key_id : KeyId } -> async { signature : Blob };
    http_request : {
      url : Text;
      max_response_bytes : ?Nat64;
      method : { #get; #head; #post };
      headers : [{ name : Text; value : Text }];
      body : ?Blob;
      transform : ?{
        function : shared query ({ response : { status : Nat; headers : [{ name : Text; value : Text }]; body : Blob }; context : Blob }) -> async { status : Nat; headers : [{ name : Text; value : Text }]; body : Blob };
        context : Blob;
      };
    } -> async { status : Nat; headers : [{ name : Text; value : Text }]; body : Blob };
    canister_status : { canister_id : Principal } -> async { cycles : Nat; module_hash : ?Blob; status : { #running; #stopping; #stopped } };
    deposit_cycles : { canister_id : Principal } -> async ();
    no_such_method : () -> async ();
  };

  func failure(e : Error) : Text { debug_show (Prim.errorCode(e)) # " " # Prim.errorMessage(e) };

  public func randomBytes() : async Nat { (await ic.raw_rand()).size() };

  public func sign() : async Text {
    try {
      ignore await ic.sign_with_ecdsa({ message_hash = "\00"; derivation_path = []; key_id = { curve = #secp256k1; name = "key_1" } });
      "signed";
    } catch e { failure(e) };
  };

  public func outcall() : async Text {
    try {
      ignore await ic.http_request({ url = "https://example.com/"; max_response_bytes = null; method = #get; headers = []; body = null; transform = null });
      "fetched";
    } catch e { failure(e) };
  };

  public func unknown() : async Text {
    try { await ic.no_such_method(); "ok" } catch e { failure(e) };
  };

  // The balance seen here, and through canister_status, after depositing `amount` into `target`.
  public func deposit(target : Principal, amount : Nat) : async (Nat, Nat) {
    Prim.cyclesAdd<system>(amount);
    await ic.deposit_cycles({ canister_id = target });
    (Prim.cyclesBalance(), (await ic.canister_status({ canister_id = Prim.principalOfActor(Platform) })).cycles);
  };
};
