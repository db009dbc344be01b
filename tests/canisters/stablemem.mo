// Stable memory: the raw (legacy) stable memory API and stable regions.
// Under enhanced orthogonal persistence both are backed by the ic0 stable64_* system API.
// The first region allocates the region manager's blocks: stable memory jumps to 384 pages.
// Compiles with one warning, M0199 (the raw API is deprecated); flags ["-A", "M0199"] silence it.
import Prim "mo:⛔";

persistent actor {
  // Regions are ordinary stable values: the region itself survives upgrades with this variable.
  var region : ?Region = null;

  func theRegion() : Region {
    switch region {
      case (?r) r;
      case null {
        let r = Prim.regionNew();
        region := ?r;
        r;
      };
    };
  };

  // ---- raw stable memory (64 KiB pages) ----

  // Grows stable memory by `pages`; returns the previous size in pages (0xFFFF_FFFF_FFFF_FFFF on failure).
  public func grow(pages : Nat64) : async Nat64 { Prim.stableMemoryGrow(pages) };

  public query func size() : async Nat64 { Prim.stableMemorySize() };

  public func writeBlob(offset : Nat64, data : Blob) : async () {
    Prim.stableMemoryStoreBlob(offset, data);
  };

  public query func readBlob(offset : Nat64, len : Nat) : async Blob {
    Prim.stableMemoryLoadBlob(offset, len);
  };

  public func writeNat64(offset : Nat64, value : Nat64) : async () {
    Prim.stableMemoryStoreNat64(offset, value);
  };

  public query func readNat64(offset : Nat64) : async Nat64 {
    Prim.stableMemoryLoadNat64(offset);
  };

  public func writeNat8(offset : Nat64, value : Nat8) : async () {
    Prim.stableMemoryStoreNat8(offset, value);
  };

  public query func readNat8(offset : Nat64) : async Nat8 {
    Prim.stableMemoryLoadNat8(offset);
  };

  // Writes `len` bytes (value (offset + i) % 256) at `offset`; growing first if needed.
  // Returns the sum of the bytes read back.
  public func fillAndSum(offset : Nat64, len : Nat) : async Nat {
    let end = offset + Prim.natToNat64(len);
    let pages = (end + 65535) / 65536;
    let have = Prim.stableMemorySize();
    if (pages > have) {
      if (Prim.stableMemoryGrow(pages - have) == 0xFFFF_FFFF_FFFF_FFFF) Prim.trap("grow failed");
    };
    var i = 0;
    while (i < len) {
      let at = offset + Prim.natToNat64(i);
      Prim.stableMemoryStoreNat8(at, Prim.natToNat8((Prim.nat64ToNat(at)) % 256));
      i += 1;
    };
    var sum = 0;
    for (b in Prim.stableMemoryLoadBlob(offset, len).vals()) sum += Prim.nat8ToNat(b);
    sum;
  };

  // ---- stable regions ----

  public func regionGrow(pages : Nat64) : async Nat64 { Prim.regionGrow(theRegion(), pages) };

  public query func regionSize() : async Nat64 {
    switch region { case (?r) Prim.regionSize(r); case null 0 };
  };

  public query func regionId() : async ?Nat {
    switch region { case (?r) ?Prim.regionId(r); case null null };
  };

  public func regionWrite(offset : Nat64, data : Blob) : async () {
    Prim.regionStoreBlob(theRegion(), offset, data);
  };

  public query func regionRead(offset : Nat64, len : Nat) : async Blob {
    switch region {
      case (?r) Prim.regionLoadBlob(r, offset, len);
      case null Prim.trap("no region yet");
    };
  };

  // Stable memory as the runtime sees it (regions and the legacy API share it).
  public query func rtsStableMemorySize() : async Nat { Prim.rts_stable_memory_size() };
  public query func rtsLogicalStableMemorySize() : async Nat { Prim.rts_logical_stable_memory_size() };
};
