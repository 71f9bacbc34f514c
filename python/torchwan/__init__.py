"""torchwan: a torch.distributed backend for GPUs spread over wide-area networks.

``import torchwan`` registers the c10d backend ``"wan"``::

    import torch.distributed as dist
    import torchwan
    dist.init_process_group("wan")

``import torch`` does the same through torch's ``torch.backends`` entry points (the small
``torchwan_autoload`` package beside this one), so scripts that never name torchwan work too.
"""

from ._version_check import check_torch_version as _check_torch_version

_check_torch_version()

from . import _C  # noqa: E402  (must follow the version check)
from . import errors  # noqa: E402,F401  (the native layer raises its classes)
from ._paths import cmake_prefix_path  # noqa: E402,F401  (find_package(torchwan) for C++)
from ._registration import register_backend as _register_backend  # noqa: E402
from .options import Options  # noqa: E402
from .secret import create_secret  # noqa: E402
from .stats import stats  # noqa: E402
from .diloco import DiLoCo  # noqa: E402,F401  (low-communication training, docs/diloco.md)

_register_backend()

__all__ = ["DiLoCo", "Options", "create_secret", "errors", "stats"]
__version__ = "0.1.0"
