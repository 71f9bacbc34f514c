# Our own code compiles warning-free; dependencies' headers are included as SYSTEM so their
# warnings do not count.
function(torchwan_strict_warnings target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Werror -Wno-missing-field-initializers>)
endfunction()
