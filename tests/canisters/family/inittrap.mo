// An actor whose initialisation prints, then traps: its install fails and the prints are kept.
import Prim "mo:⛔";

persistent actor {
  Prim.debugPrint("initialising");
  Prim.debugPrint("about to fail");
  Prim.trap("init fails on purpose");
};
