"""torch's own backend test suite as one unittest class, run the way torch runs it for Gloo but
with the process groups it creates being of the backend named by TORCH_SUITE_BACKEND.

How the backend is swapped, and why this way: distributed_test.py reads the BACKEND environment
variable once, at import, and decides there which tests apply (decorators such as
``skip_but_pass_in_sandcastle_if(BACKEND != "gloo", ...)``). Importing it with BACKEND=gloo
selects exactly the tests torch runs against Gloo. Afterwards the module's BACKEND, which every
``init_process_group(backend=BACKEND)`` and every runtime check of the suite reads, and the
environment variable are set to the backend under test; groups created without a backend inherit
the default group's. Tests that explicitly ask for ``backend="gloo"`` or "nccl" still get those:
they test mixing backends, not the one under test. Nothing in torch or in the suite is patched.

Spawned ranks import this module by name, so the same selection and swap happen in every rank.
"""

import os

TARGET_BACKEND = os.environ.get("TORCH_SUITE_BACKEND", "wan")

os.environ["BACKEND"] = "gloo"
os.environ.setdefault("WORLD_SIZE", "2")
if "TEMP_DIR" not in os.environ:
    raise RuntimeError("TEMP_DIR must name a directory shared by the ranks (run.py sets it)")

from torch.testing._internal.distributed import distributed_test  # noqa: E402
from torch.testing._internal.distributed.distributed_test import (  # noqa: E402
    DistributedTest,
    TestDistBackend,
)

if TARGET_BACKEND != "gloo":
    import torchwan  # noqa: F401,E402  registers "wan"

    distributed_test.BACKEND = TARGET_BACKEND
    os.environ["BACKEND"] = TARGET_BACKEND


class TorchSuite(TestDistBackend, DistributedTest._DistTestBase):
    """What torch's test_distributed_spawn.py builds for Gloo: one spawned world per test."""

    def setUp(self):
        super().setUp()
        self._spawn_processes()
