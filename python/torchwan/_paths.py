"""Where the C++ API lives inside the installed package, for build systems.

    cmake -DCMAKE_PREFIX_PATH="$(python -c 'import torchwan; print(torchwan.cmake_prefix_path)')"

then ``find_package(torchwan)`` gives the target ``torchwan::torchwan`` (see docs/cpp-api.md).
"""

import pathlib

_PACKAGE_DIR = pathlib.Path(__file__).resolve().parent

# Holds torchwan/torchwanConfig.cmake; mirrors torch.utils.cmake_prefix_path.
cmake_prefix_path = str(_PACKAGE_DIR / "share" / "cmake")
# For build systems without CMake: add both include dirs and link lib_dir/libtorchwan.so.
include_dirs = [str(_PACKAGE_DIR / "include"), str(_PACKAGE_DIR / "include" / "torchwan")]
lib_dir = str(_PACKAGE_DIR / "lib")
