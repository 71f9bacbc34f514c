# A ZeroMQ service: the coordinator (elastic/) and the relay (relay/) are each a static library
# that tests and other layers link, plus a small executable around it, shipped in the wheel as
# torchwan/bin/<executable> (the console script of the same name execs it).
#
# Both stand on base, the job secret and CURVE pieces of transport/secure (torchwan_secure) and
# ZeroMQ, and on nothing of the data plane or of torch.
function(torchwan_zmq_service)
  cmake_parse_arguments(PARSE_ARGV 0 arg "" "LIBRARY;EXECUTABLE;MAIN" "SOURCES")
  add_library(${arg_LIBRARY} STATIC ${arg_SOURCES})
  target_include_directories(${arg_LIBRARY} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(${arg_LIBRARY} PUBLIC cppzmq spdlog::spdlog Threads::Threads
                        torchwan_base torchwan_secure)
  torchwan_strict_warnings(${arg_LIBRARY})

  add_executable(${arg_EXECUTABLE} ${arg_MAIN})
  target_link_libraries(${arg_EXECUTABLE} PRIVATE ${arg_LIBRARY})
  torchwan_strict_warnings(${arg_EXECUTABLE})

  if(TORCHWAN_WITH_TORCH)
    install(TARGETS ${arg_EXECUTABLE} RUNTIME DESTINATION torchwan/bin)
  endif()
endfunction()
