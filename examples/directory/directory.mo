// A directory of profiles: a canister to call, whose methods take and return records, variants,
// options, vectors, blobs, principals and big numbers (try `graphcopy call` and its `--output`s).
//
//   add(profile)          stores a profile; returns its id
//   get(id)               the entry, or null
//   find(owner)           every entry a principal owns
//   credit(id, amount)    adds an Int of any size to the balance: #ok with the entry, or #err
//   setRole(id, role)     changes the role (a variant); the entry, or null
//   avatar(id)            the avatar (a blob), if the profile has one
//   whoami()              the caller's principal
//   totals()              counts and sums (a Nat and an Int that outgrow 64 bits)
import Prim "mo:⛔";

persistent actor Directory {

  public type Role = { #admin; #member : { since : Nat64 }; #guest : Text };

  public type Profile = {
    name : Text;
    owner : Principal;
    role : Role;
    avatar : ?Blob;
    tags : [Text];
    balance : Int; // any size: 64 bits are not a limit
    karma : Nat;
  };

  public type Entry = { id : Nat; profile : Profile; changes : Nat };

  public type Totals = { entries : Nat; admins : Nat; balance : Int; karma : Nat };

  var entries : [Entry] = [];

  func lookup(id : Nat) : ?Entry {
    for (e in entries.vals()) { if (e.id == id) return ?e };
    null;
  };

  func put(e : Entry) {
    let old = entries;
    entries := Prim.Array_tabulate<Entry>(old.size(), func i = if (old[i].id == e.id) e else old[i]);
  };

  func append(list : [Entry], e : Entry) : [Entry] {
    Prim.Array_tabulate<Entry>(list.size() + 1, func i = if (i < list.size()) list[i] else e);
  };

  public func add(p : Profile) : async Nat {
    let id = entries.size();
    entries := append(entries, { id; profile = p; changes = 0 });
    Prim.debugPrint("added " # p.name # " as profile " # debug_show id);
    id;
  };

  public query func get(id : Nat) : async ?Entry { lookup(id) };

  public query func find(owner : Principal) : async [Entry] {
    var found : [Entry] = [];
    for (e in entries.vals()) { if (e.profile.owner == owner) found := append(found, e) };
    found;
  };

  public func credit(id : Nat, amount : Int) : async { #ok : Entry; #err : Text } {
    switch (lookup(id)) {
      case null { #err("no profile " # debug_show id) };
      case (?e) {
        let updated = { e with profile = { e.profile with balance = e.profile.balance + amount };
                               changes = e.changes + 1 };
        put(updated);
        #ok updated;
      };
    };
  };

  public func setRole(id : Nat, role : Role) : async ?Entry {
    switch (lookup(id)) {
      case null { null };
      case (?e) {
        let updated = { e with profile = { e.profile with role }; changes = e.changes + 1 };
        put(updated);
        ?updated;
      };
    };
  };

  public query func avatar(id : Nat) : async ?Blob {
    switch (lookup(id)) { case null { null }; case (?e) { e.profile.avatar } };
  };

  public shared query ({ caller }) func whoami() : async Principal { caller };

  public query func totals() : async Totals {
    var admins = 0;
    var balance : Int = 0;
    var karma = 0;
    for (e in entries.vals()) {
      switch (e.profile.role) { case (#admin) { admins += 1 }; case _ {} };
      balance += e.profile.balance;
      karma += e.profile.karma;
    };
    { entries = entries.size(); admins; balance; karma };
  };
};
