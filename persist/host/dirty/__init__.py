"""Dirty tracking: which heap pages a message wrote, learnt without reading the heap where the
kernel allows it.

* ``uffd`` -- userfaultfd asynchronous write-protect plus one ``PAGEMAP_SCAN`` per commit
  (Linux 6.7+);
* ``compare`` -- the fallback: per-page digests of the committed state, compared at each commit;
* ``select`` -- which one a heap gets (``GRAPHCOPY_DIRTY_TRACKING=uffd|compare`` forces one) and
  the small interface both implement, used by :class:`persist.host.memory.Heap`.
"""
