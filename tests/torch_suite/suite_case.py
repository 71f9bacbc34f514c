"""torch's own backend test suite as one unittest class, run the way torch runs it for Gloo but
with each test's default process group of the backend named by TORCH_SUITE_BACKEND.

How the backend is swapped, and why this way: distributed_test.py reads the BACKEND environment
variable once, at import, and decides there which tests apply (decorators such as
``skip_but_pass_in_sandcastle_if(BACKEND != "gloo", ...)``); inside the tests it also picks code
paths by it (``if BACKEND == "gloo": <CPU model>``). BACKEND therefore stays "gloo": the suite
selects and runs exactly what it runs for Gloo, a CPU backend. Only the default process group,
which each rank creates before its test and which every group created without naming a backend
inherits, is made with the backend under test (TorchSuite._run below). Nothing in torch or in the
suite is patched. Tests that name a backend themselves still get it: those that mix backends, the
one that re-creates the default group with BACKEND (test_barrier_timeout_global, so on Gloo), and
those that assert the default group's name is BACKEND (test_get_backend, which therefore fails
for any other backend by construction).

Spawned ranks import this module by name, so the same selection happens in every rank.
"""

import os
import sys
from datetime import timedelta

TARGET_BACKEND = os.environ.get("TORCH_SUITE_BACKEND", "wan")

os.environ["BACKEND"] = "gloo"
os.environ.setdefault("WORLD_SIZE", "2")
if "TEMP_DIR" not in os.environ:
    raise RuntimeError("TEMP_DIR must name a directory shared by the ranks (run.py sets it)")

import torch.distributed as dist  # noqa: E402
from torch.testing._internal.distributed import distributed_test  # noqa: E402
from torch.testing._internal.distributed.distributed_test import (  # noqa: E402
    DistributedTest,
    TestDistBackend,
)

if TARGET_BACKEND != "gloo":
    import torchwan  # noqa: F401,E402  registers "wan"


class TorchSuite(TestDistBackend, DistributedTest._DistTestBase):
    """What torch's test_distributed_spawn.py builds for Gloo: one spawned world per test."""

    def setUp(self):
        super().setUp()
        self._spawn_processes()

    @classmethod
    def _run(cls, rank, test_name, file_name, pipe, **kwargs):
        """One rank: what TestDistBackend._run does for a CPU backend, with the default group of
        the backend under test."""
        self = cls(test_name)
        self.rank = rank
        self.file_name = file_name
        seconds = distributed_test.CUSTOM_PG_TIMEOUT.get(
            test_name, distributed_test.default_pg_timeout
        )
        dist.init_process_group(
            init_method=self.init_method,
            backend=TARGET_BACKEND,
            world_size=int(self.world_size),
            rank=rank,
            timeout=timedelta(seconds=seconds),
        )
        # Every rank is initialised before the test starts, and has finished it before any
        # rank tears its group down.
        self._barrier()
        self.run_test(test_name, pipe)
        self._barrier()
        dist.destroy_process_group()
        sys.exit(0)
