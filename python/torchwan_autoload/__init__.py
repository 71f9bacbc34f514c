"""Makes the "wan" backend available after nothing more than ``import torch``.

torch (2.5 and later) imports every entry point of the ``torch.backends`` group near the end of its
own import and calls it; torchwan's entry point is :func:`load`. It lives in this small package
beside ``torchwan`` rather than inside it: an entry point inside ``torchwan`` would run
``torchwan/__init__.py`` before any of our code could catch a failure there (torch upgraded since
the build, a system library removed), and torch turns any exception from an entry point into a
failed ``import torch``.

Opt out with ``TORCH_DEVICE_BACKEND_AUTOLOAD=0``, torch's switch for every autoloaded backend.
"""

import warnings


def load() -> None:
    """Imports torchwan, which registers "wan"; if that fails, warns with the reason and returns
    so torch keeps working. Runs while torch itself is still importing, so torchwan may only use
    what torch has defined by then (torch.distributed is among it)."""
    try:
        import torchwan  # noqa: F401  (registers the backend)
    except Exception as error:  # never let torchwan break `import torch`
        warnings.warn(
            f"torchwan is installed but could not be loaded, so the 'wan' backend is unavailable: "
            f"{type(error).__name__}: {error} (TORCH_DEVICE_BACKEND_AUTOLOAD=0 skips loading it)",
            RuntimeWarning,
            stacklevel=2,
        )
