# Finding the installed torch for the c10d backend, and stamping which torch the extension is for.

# torch is deliberately not a build requirement in pyproject.toml: the extension only works with the
# torch it was compiled against, so it must be built against the installed one. pip's default build
# isolation hides that torch. The top-level CMakeLists.txt calls this first, so such a build stops
# within seconds, in one line that gives the command that works, before anything compiles.
macro(torchwan_require_torch)
  find_package(Python REQUIRED COMPONENTS Interpreter Development.Module)
  execute_process(
    COMMAND "${Python_EXECUTABLE}" -c "import torch; print(torch.utils.cmake_prefix_path)"
    RESULT_VARIABLE _torchwan_torch_result
    OUTPUT_VARIABLE TORCHWAN_TORCH_PREFIX OUTPUT_STRIP_TRAILING_WHITESPACE
    ERROR_VARIABLE _torchwan_torch_error)
  if(_torchwan_torch_result AND _torchwan_torch_error MATCHES "No module named 'torch'")
    # The leading space keeps CMake from wrapping the line, so the command reads as one.
    message(FATAL_ERROR
      " torchwan needs the installed torch, which pip's build isolation hides; "
      "install with: pip install --no-build-isolation .")
  elseif(_torchwan_torch_result)
    message(FATAL_ERROR "torchwan: `import torch` failed in ${Python_EXECUTABLE}:\n"
                        "${_torchwan_torch_error}")
  endif()
endmacro()

# Finds torch's CMake package (TORCH_LIBRARIES, TORCH_INCLUDE_DIRS, ...) in the caller's scope.
macro(torchwan_find_torch)
  torchwan_require_torch()
  list(APPEND CMAKE_PREFIX_PATH "${TORCHWAN_TORCH_PREFIX}")
  # torch's CMake config otherwise probes for a GPU (try_run), which fails on build machines without
  # one; the extension itself has no kernels of torch's to compile.
  if(NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
    set(TORCH_CUDA_ARCH_LIST "8.0;9.0")
  endif()
  find_package(Torch REQUIRED)
endmacro()

# The Python package checks this stamp before loading _C, so a torch upgrade, or a CPU-only torch in
# place of a CUDA one, gives a clear error instead of an unresolved-symbol crash. The package's own
# check, run as a script, writes it, so both use the same words ("2.15 cuda 13.2", "2.15 cpu").
# run_path, unlike running the file directly, keeps the package's folder off sys.path, where its
# modules could shadow others of the same name.
function(torchwan_install_torch_stamp destination)
  set(check "${PROJECT_SOURCE_DIR}/python/torchwan/_version_check.py")
  execute_process(
    COMMAND "${Python_EXECUTABLE}" -c "import runpy; runpy.run_path('${check}', run_name='__main__')"
    OUTPUT_VARIABLE stamp OUTPUT_STRIP_TRAILING_WHITESPACE COMMAND_ERROR_IS_FATAL ANY)
  message(STATUS "torchwan: built for torch ${stamp}")
  file(WRITE "${CMAKE_CURRENT_BINARY_DIR}/_built_for_torch.txt" "${stamp}\n")
  install(FILES "${CMAKE_CURRENT_BINARY_DIR}/_built_for_torch.txt" DESTINATION "${destination}")
endfunction()
