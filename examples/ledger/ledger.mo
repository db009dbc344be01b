// A ledger of accounts: a data-heavy canister whose stable state is a real object graph.
//
// Everything below that is not `transient` is stable: with enhanced orthogonal persistence the
// whole heap (a balanced tree of 100,000+ records, variants, options, arrays, texts, blobs and
// big numbers) survives upgrades as it is, with no serialisation step.
//
//   load(n, seed)   bulk-loads n more accounts, deterministically from seed (call it in batches)
//   get(key)        one account; keys are 0, 1, 2, ... in load order
//   range(k, len)   up to len accounts with key >= k, in key order
//   apply(key, d)   changes an account in place (balance, history, version, status)
//   digest()        checksum over all stable data: compare it before and after an upgrade
//   stats()         counts
import Prim "mo:⛔";

persistent actor Ledger {

  // ---------------------------------------------------------------------------------------------
  // Types

  public type Kind = {
    #deposit;
    #withdrawal : { fee : Nat };
    #transfer : { to : Nat; note : ?Text };
    #mint : { reason : Text };
  };

  public type Status = {
    #pending;
    #settled : { at : Nat64 }; // a (synthetic) timestamp in nanoseconds
    #failed : Text;
  };

  // What the query methods return: an immutable snapshot of an account.
  public type Entry = {
    key : Nat;
    owner : Text;
    kind : Kind;
    amount : Nat; // whales: up to ~2^104, far beyond 64 bits
    balance : Int; // negative after withdrawals and transfers; whales: beyond 64 bits
    memo : ?Blob;
    tags : [Text];
    history : [Int]; // the last balance changes, oldest first
    status : Status;
    risk : Nat8;
    createdAt : Nat64;
    version : Nat; // how many times the account changed since it was loaded
  };

  public type Stats = {
    entries : Nat;
    loads : Nat;
    deposits : Nat;
    withdrawals : Nat;
    transfers : Nat;
    mints : Nat;
    withMemo : Nat;
    pending : Nat;
    failed : Nat;
    changes : Nat;
    treeHeight : Nat;
    totalAmount : Nat;
    netBalance : Int;
  };

  public type Load = { first : Nat; count : Nat; seed : Nat };

  // An account as stored: the `var` fields are changed in place by `apply`.
  type Account = {
    key : Nat;
    owner : Text;
    kind : Kind;
    amount : Nat;
    var balance : Int;
    memo : ?Blob;
    tags : [Text]; // shared: every account points at one of the arrays in `tagSets`
    history : [var Int]; // ring buffer of the last HISTORY balance changes
    var historyNext : Nat;
    var status : Status;
    risk : Nat8;
    createdAt : Nat64;
    var version : Nat;
  };

  // The map: an AVL tree keyed by Nat, with mutable nodes.
  type Node = {
    key : Nat;
    var value : Account;
    var left : Tree;
    var right : Tree;
    var height : Nat;
  };
  type Tree = ?Node;

  // ---------------------------------------------------------------------------------------------
  // Stable state

  let name : Text = "graphcopy example ledger";
  let tagSets : [[Text]] = [[], ["vip"], ["vip", "eu"], ["us"], ["eu", "frozen"], ["audit", "us", "new"]];
  var root : Tree = null;
  var size : Nat = 0;
  var loads : [Load] = []; // one record per `load` call
  var lastLoad : ?Load = null;
  let counts = {
    var deposits = 0;
    var withdrawals = 0;
    var transfers = 0;
    var mints = 0;
    var withMemo = 0;
    var pending = 0;
    var failed = 0;
    var changes = 0;
  };
  var totalAmount : Nat = 0; // sum of all amounts: a big number
  var netBalance : Int = 0; // sum of all balances
  let bucketBalances : [var Int] = Prim.Array_init<Int>(16, 0); // balance sums by key % 16

  transient let HISTORY = 4;
  transient let TWO64 = 18_446_744_073_709_551_616; // 2^64

  // ---------------------------------------------------------------------------------------------
  // AVL tree

  func height(t : Tree) : Nat {
    switch t { case null 0; case (?n) n.height };
  };

  func fixHeight(n : Node) {
    let l = height(n.left);
    let r = height(n.right);
    n.height := 1 + (if (l > r) l else r);
  };

  func rotateRight(n : Node) : Node {
    switch (n.left) {
      case null n;
      case (?l) {
        n.left := l.right;
        fixHeight(n);
        l.right := ?n;
        fixHeight(l);
        l;
      };
    };
  };

  func rotateLeft(n : Node) : Node {
    switch (n.right) {
      case null n;
      case (?r) {
        n.right := r.left;
        fixHeight(n);
        r.left := ?n;
        fixHeight(r);
        r;
      };
    };
  };

  func rebalance(n : Node) : Node {
    fixHeight(n);
    let l = height(n.left);
    let r = height(n.right);
    if (l > r + 1) {
      switch (n.left) {
        case (?ln) { if (height(ln.right) > height(ln.left)) n.left := ?rotateLeft(ln) };
        case null {};
      };
      rotateRight(n);
    } else if (r > l + 1) {
      switch (n.right) {
        case (?rn) { if (height(rn.left) > height(rn.right)) n.right := ?rotateRight(rn) };
        case null {};
      };
      rotateLeft(n);
    } else n;
  };

  // Inserts or replaces; returns the new root of the subtree.
  func insert(t : Tree, key : Nat, value : Account) : Node {
    switch t {
      case null { { key; var value; var left = null; var right = null; var height = 1 } };
      case (?n) {
        if (key < n.key) {
          n.left := ?insert(n.left, key, value);
        } else if (key > n.key) {
          n.right := ?insert(n.right, key, value);
        } else {
          n.value := value;
          return n;
        };
        rebalance(n);
      };
    };
  };

  func find(t : Tree, key : Nat) : ?Account {
    var cur = t;
    loop {
      switch cur {
        case null return null;
        case (?n) {
          if (key < n.key) cur := n.left else if (key > n.key) cur := n.right else return ?n.value;
        };
      };
    };
  };

  // Calls `f` on the accounts with key >= `from` in key order while `f` returns true.
  func walk(t : Tree, from : Nat, f : Account -> Bool) : Bool {
    switch t {
      case null true;
      case (?n) {
        if (n.key >= from) {
          if (not walk(n.left, from, f)) return false;
          if (not f(n.value)) return false;
        };
        walk(n.right, from, f);
      };
    };
  };

  // ---------------------------------------------------------------------------------------------
  // Deterministic data

  // splitmix64: a small, good 64-bit mixer.
  func mix(x : Nat64) : Nat64 {
    var z = x +% 0x9E37_79B9_7F4A_7C15;
    z := (z ^ (z >> 30)) *% 0xBF58_476D_1CE4_E5B9;
    z := (z ^ (z >> 27)) *% 0x94D0_49BB_1331_11EB;
    z ^ (z >> 31);
  };

  func small(x : Nat64, bound : Nat) : Nat { Prim.nat64ToNat(x % Prim.natToNat64(bound)) };

  // `len` (at most 24) pseudo-random bytes.
  func bytes(r : Nat64, len : Nat) : Blob {
    let words = [mix(r), mix(r +% 1), mix(r +% 2)];
    Prim.arrayToBlob(
      Prim.Array_tabulate<Nat8>(
        len,
        func i = Prim.natToNat8(Prim.nat64ToNat((words[i / 8] >> Prim.natToNat64(8 * (i % 8))) & 0xFF)),
      )
    );
  };

  func makeAccount(key : Nat, seed : Nat64) : Account {
    let r0 = mix(seed ^ mix(Prim.natToNat64(key)));
    let r1 = mix(r0);
    let r2 = mix(r1);
    let r3 = mix(r2);
    let ownerId = small(r0, 1000);
    // One account in eight is a whale, with an amount (and balance) far beyond 2^64.
    let whale = small(r2 >> 40, 8) == 0;
    let amount = if whale {
      Prim.nat64ToNat(r1) * 2 ** (20 + small(r2, 21)) + key;
    } else {
      Prim.nat64ToNat(r1 >> 24);
    };
    let kind : Kind = switch (small(r2 >> 8, 10)) {
      case (0 or 1 or 2 or 3) #deposit;
      case (4 or 5 or 6) #withdrawal { fee = small(r3, 10_000) };
      case (7 or 8) {
        #transfer {
          to = small(r3, key + 1);
          note = if (r3 & 1 == 0) null else ?("invoice " # debug_show (small(r3 >> 1, 1000)));
        };
      };
      case _ #mint { reason = "genesis" };
    };
    let balance : Int = switch kind {
      case (#withdrawal _) -amount;
      case (#transfer _) -(amount / 2);
      case _ amount;
    };
    let status : Status = switch (small(r3 >> 16, 8)) {
      case 0 #pending;
      case 1 #failed "insufficient funds";
      case _ #settled { at = 1_700_000_000_000_000_000 + (r0 >> 16) };
    };
    let history = Prim.Array_init<Int>(HISTORY, 0);
    history[0] := balance;
    {
      key;
      owner = "acct-" # debug_show ownerId;
      kind;
      amount;
      var balance;
      memo = if (r3 % 4 == 0) null else ?bytes(r3, 8 + small(r3 >> 24, 17));
      tags = tagSets[small(r2 >> 32, tagSets.size())];
      history;
      var historyNext = 1;
      var status;
      risk = Prim.natToNat8(small(r1 >> 40, 256));
      createdAt = 1_600_000_000_000_000_000 + (r1 >> 8);
      var version = 0;
    };
  };

  // Keeps `counts`, `totalAmount`, `netBalance` and `bucketBalances` in step with the accounts.
  func tally(a : Account) {
    switch (a.kind) {
      case (#deposit) counts.deposits += 1;
      case (#withdrawal _) counts.withdrawals += 1;
      case (#transfer _) counts.transfers += 1;
      case (#mint _) counts.mints += 1;
    };
    switch (a.memo) { case null {}; case (?_) counts.withMemo += 1 };
    switch (a.status) {
      case (#pending) counts.pending += 1;
      case (#failed _) counts.failed += 1;
      case (#settled _) {};
    };
    totalAmount += a.amount;
    netBalance += a.balance;
    bucketBalances[a.key % 16] += a.balance;
  };

  func toEntry(a : Account) : Entry {
    let n = a.history.size();
    {
      key = a.key;
      owner = a.owner;
      kind = a.kind;
      amount = a.amount;
      balance = a.balance;
      memo = a.memo;
      tags = a.tags;
      history = Prim.Array_tabulate<Int>(n, func i = a.history[(a.historyNext + i) % n]);
      status = a.status;
      risk = a.risk;
      createdAt = a.createdAt;
      version = a.version;
    };
  };

  // ---------------------------------------------------------------------------------------------
  // Digest: an FNV-style hash over a canonical encoding of the state, threaded through pure
  // functions. Every value fed to it is below 2^32 and the hash is kept below 2^61, so that no
  // step allocates (large Nat64 values would be boxed on the heap).

  transient let H0 : Nat64 = 0x0BF2_9CE4_8422_2325;
  transient let MASK : Nat64 = 0x1FFF_FFFF_FFFF_FFFF;
  transient let TWO32 = 4_294_967_296;

  func hWord(h : Nat64, x : Nat64) : Nat64 { ((h ^ x) *% 0x100_0000_01B3) & MASK };

  func hNat64(h : Nat64, x : Nat64) : Nat64 { hWord(hWord(h, x >> 32), x & 0xFFFF_FFFF) };

  func hNat(h : Nat64, n : Nat) : Nat64 {
    if (n < TWO32) return hWord(hWord(h, 1), Prim.natToNat64(n));
    // 64-bit limbs, least significant first; reading the low limb needs no division.
    var acc = hWord(h, 2);
    var rest = n;
    loop {
      acc := hNat64(acc, Prim.intToNat64Wrap(rest));
      if (rest < TWO64) return hWord(acc, 0);
      rest /= TWO64;
    };
  };

  func hInt(h : Nat64, i : Int) : Nat64 { hNat(hWord(h, if (i < 0) 1 else 0), Prim.abs(i)) };

  func hBlob(h : Nat64, b : Blob) : Nat64 {
    hWord(hWord(h, Prim.natToNat64(b.size())), Prim.nat32ToNat64(Prim.hashBlob(b)));
  };

  func hText(h : Nat64, t : Text) : Nat64 { hBlob(h, Prim.encodeUtf8(t)) };

  func hOptText(h : Nat64, t : ?Text) : Nat64 {
    switch t { case null hWord(h, 0); case (?x) hText(hWord(h, 1), x) };
  };

  func hLoad(h : Nat64, l : Load) : Nat64 { hNat(hNat(hNat(h, l.first), l.count), l.seed) };

  func hAccount(h0 : Nat64, a : Account) : Nat64 {
    var h = hText(hNat(h0, a.key), a.owner);
    h := switch (a.kind) {
      case (#deposit) hWord(h, 1);
      case (#withdrawal { fee }) hNat(hWord(h, 2), fee);
      case (#transfer { to; note }) hOptText(hNat(hWord(h, 3), to), note);
      case (#mint { reason }) hText(hWord(h, 4), reason);
    };
    h := hInt(hNat(h, a.amount), a.balance);
    h := switch (a.memo) { case null hWord(h, 0); case (?m) hBlob(hWord(h, 1), m) };
    h := hWord(h, Prim.natToNat64(a.tags.size()));
    for (t in a.tags.vals()) h := hText(h, t);
    for (x in a.history.vals()) h := hInt(h, x);
    h := hNat(h, a.historyNext);
    h := switch (a.status) {
      case (#pending) hWord(h, 1);
      case (#settled { at }) hNat64(hWord(h, 2), at);
      case (#failed why) hText(hWord(h, 3), why);
    };
    h := hWord(h, Prim.natToNat64(Prim.nat8ToNat(a.risk)));
    hNat(hNat64(h, a.createdAt), a.version);
  };

  // In-order, with each node's height: equal digests mean equal contents AND equal tree shape.
  func hTree(h : Nat64, t : Tree) : Nat64 {
    switch t {
      case null hWord(h, 0);
      case (?n) {
        let left = hTree(hWord(h, Prim.natToNat64(n.height)), n.left);
        hTree(hAccount(hNat(left, n.key), n.value), n.right);
      };
    };
  };

  // ---------------------------------------------------------------------------------------------
  // Public interface

  // Loads `n` more accounts (keys size .. size + n - 1), derived from `seed`; returns the total.
  // Costs ~40,000 instructions per account: batches of 10,000 to 50,000 are comfortable.
  public func load(n : Nat, seed : Nat) : async Nat {
    let s = mix(Prim.natToNat64(seed % TWO64));
    let first = size;
    var i = 0;
    while (i < n) {
      let a = makeAccount(first + i, s);
      root := ?insert(root, a.key, a);
      tally(a);
      i += 1;
    };
    size += n;
    let l = { first; count = n; seed };
    loads := Prim.Array_tabulate<Load>(loads.size() + 1, func j = if (j < loads.size()) loads[j] else l);
    lastLoad := ?l;
    Prim.debugPrint("ledger: loaded " # debug_show n # " accounts (seed " # debug_show seed # "), " # debug_show size # " in all");
    size;
  };

  // Adds `delta` to an account's balance (recorded in its history); returns the new entry.
  public func apply(key : Nat, delta : Int) : async ?Entry {
    switch (find(root, key)) {
      case null null;
      case (?a) {
        a.balance += delta;
        netBalance += delta;
        bucketBalances[a.key % 16] += delta;
        a.history[a.historyNext] := delta;
        a.historyNext := (a.historyNext + 1) % a.history.size();
        a.version += 1;
        switch (a.status) {
          case (#pending) counts.pending -= 1;
          case (#failed _) counts.failed -= 1;
          case (#settled _) {};
        };
        if (a.balance < 0) {
          a.status := #failed "negative balance";
          counts.failed += 1;
        } else {
          a.status := #settled { at = 1_700_000_000_000_000_000 + Prim.natToNat64(a.version) };
        };
        counts.changes += 1;
        ?toEntry(a);
      };
    };
  };

  public query func count() : async Nat { size };

  public query func get(key : Nat) : async ?Entry {
    switch (find(root, key)) { case null null; case (?a) ?toEntry(a) };
  };

  // Up to `len` entries with key >= `start`, in key order.
  public query func range(start : Nat, len : Nat) : async [Entry] {
    let out = Prim.Array_init<?Entry>(if (len < size) len else size, null);
    var filled = 0;
    ignore walk(
      root,
      start,
      func(a : Account) : Bool {
        if (filled >= out.size()) return false;
        out[filled] := ?toEntry(a);
        filled += 1;
        true;
      },
    );
    Prim.Array_tabulate<Entry>(
      filled,
      func i = switch (out[i]) { case (?e) e; case null Prim.trap("unreachable") },
    );
  };

  public query func loadHistory() : async [Load] { loads };

  public query func stats() : async Stats {
    {
      entries = size;
      loads = loads.size();
      deposits = counts.deposits;
      withdrawals = counts.withdrawals;
      transfers = counts.transfers;
      mints = counts.mints;
      withMemo = counts.withMemo;
      pending = counts.pending;
      failed = counts.failed;
      changes = counts.changes;
      treeHeight = height(root);
      totalAmount;
      netBalance;
    };
  };

  // A deterministic checksum of all stable data: every account field, the tree's shape, the load
  // journal, the counters and the bucket balances. ~25,000 instructions per account.
  public query func digest() : async Nat {
    var h = hText(H0, name);
    h := hTree(h, root);
    h := hNat(h, size);
    for (l in loads.vals()) h := hLoad(h, l);
    h := switch lastLoad { case null hWord(h, 0); case (?l) hLoad(hWord(h, 1), l) };
    for (c in [counts.deposits, counts.withdrawals, counts.transfers, counts.mints].vals()) h := hNat(h, c);
    for (c in [counts.withMemo, counts.pending, counts.failed, counts.changes].vals()) h := hNat(h, c);
    h := hNat(h, totalAmount);
    h := hInt(h, netBalance);
    for (b in bucketBalances.vals()) h := hInt(h, b);
    Prim.nat64ToNat(h);
  };
};
