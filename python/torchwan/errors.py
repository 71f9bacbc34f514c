"""Exceptions raised by the "wan" backend.

Every class subclasses ``torch.distributed.DistBackendError``, so code written for other backends
(``except dist.DistBackendError``) keeps working, while code that cares can tell a timeout from a
lost peer or from ranks that called different collectives::

    try:
        work.wait()
    except torchwan.errors.WanPeerLostError as error:
        print("lost rank", error.peer)
    except torchwan.errors.WanTimeoutError:
        ...
"""

from typing import Optional

from torch.distributed import DistBackendError


class WanError(DistBackendError):
    """An operation of the wan backend failed; the message names the op, the rank and the cause.

    ``peer`` is the rank of the group the failure is tied to: the rank lost
    (:class:`WanPeerLostError`), the rank a timed-out operation was still waiting for
    (:class:`WanTimeoutError`), the rank that disagreed (:class:`WanMismatchError`); ``None``
    when no single rank is to blame.
    """

    peer: Optional[int] = None


class WanTimeoutError(WanError):
    """The operation's deadline passed: a rank never joined the call, or the network stalled."""


class WanPeerLostError(WanError):
    """A peer went away (connection reset, heartbeat silence) while the operation needed it."""


class WanMismatchError(WanError):
    """Ranks called different collectives, or the same one with different sizes, dtypes, ops or
    roots."""


class WanAbortedError(WanError):
    """The process group was aborted or shut down while the operation was pending."""


__all__ = [
    "WanError",
    "WanTimeoutError",
    "WanPeerLostError",
    "WanMismatchError",
    "WanAbortedError",
]
