"""Elastic training over the torchwan membership coordinator.

* ``ElasticGroup``: in-process recovery; survivors of a failure continue from the same step on
  the next membership epoch's process group, and joiners receive state at a step boundary.
* ``torchwan.elastic.rendezvous``: the torchrun rendezvous ``--rdzv-backend=wan`` (registered
  through the ``torchrun.handlers`` entry point; imported lazily by torchrun).
* ``torchwan-coordinator``: the membership coordinator executable.
"""

from .._elastic import AuthenticationError
from .group import ElasticGroup, JobStoppedError
from .process_group import build_process_group
from .state_transfer import StateTransferError

__all__ = [
    "AuthenticationError", "ElasticGroup", "JobStoppedError", "build_process_group",
    "StateTransferError",
]
