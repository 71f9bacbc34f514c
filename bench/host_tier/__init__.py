"""Host-tier benchmark: several ranks per emulated host (two processes per WAN-lab namespace),
allreduce with the host tier against the flat group and Gloo, in the same processes. See
__main__.py for what it measures and how to run it."""
