// The option registry is the one list of options: every registry option of a torch-free layer is
// accepted by that layer's parser, its declared default parses to the layer's own default, and
// every field a layer parses is in the registry. (The topology options, parsed in the torch
// layer, are checked the same way by tests/python/test_options_registry.py.)
#include "base/option_registry.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <set>
#include <string>

#include "csrc/algorithm_table.h"
#include "csrc/compressed_allreduce.h"
#include "csrc/scratch_pool.h"
#include "transport/options.h"

namespace torchwan {
namespace {

TEST(OptionRegistry, NamesAreUniqueAndDocumented) {
  std::set<std::string> seen;
  for (const base::OptionSpec& option : base::option_registry()) {
    EXPECT_TRUE(seen.insert(std::string(option.name)).second) << option.name;
    EXPECT_FALSE(option.doc.empty()) << option.name;
    EXPECT_FALSE(option.default_shown.empty()) << option.name;
    EXPECT_TRUE(option.type == "str" || option.type == "int") << option.name;
    EXPECT_TRUE(option.layer == "transport" || option.layer == "topology" ||
                option.layer == "engine")
        << option.name;
    EXPECT_EQ(base::find_option(option.name), &option);
  }
  EXPECT_EQ(base::find_option("no_such_option"), nullptr);
  EXPECT_EQ(base::option_env_variable("stripe_min_bytes"), "TORCHWAN_STRIPE_MIN_BYTES");
}

TEST(OptionRegistry, TransportDefaultsParseToTheStructDefaults) {
  const std::vector<std::string> names = base::option_names("transport");
  ASSERT_EQ(names, transport::TransportOptions::field_names());
  for (const std::string& name : names) {
    transport::TransportOptions options;
    options.set(name, std::string(base::find_option(name)->default_value));
    EXPECT_EQ(options, transport::TransportOptions{}) << name;
  }
  transport::TransportOptions options;
  EXPECT_THROW(options.set("region", "eu"), std::invalid_argument);  // another layer's option
}

TEST(OptionRegistry, EngineDefaultsParseToTheEngineDefaults) {
  EXPECT_EQ(base::option_names("engine"),
            (std::vector<std::string>{"compression", "scratch_cache_bytes", "algorithm"}));
  EXPECT_EQ(engine::AllreduceCompression::parse(
                std::string(base::find_option("compression")->default_value))
                .name(),
            engine::AllreduceCompression{}.name());
  EXPECT_EQ(engine::ScratchPool::parse_max_cached_bytes(
                std::string(base::find_option("scratch_cache_bytes")->default_value)),
            engine::ScratchPool::kDefaultMaxCachedBytes);
  EXPECT_TRUE(
      engine::AlgorithmOverrides::parse(std::string(base::find_option("algorithm")->default_value))
          .empty());
}

TEST(OptionRegistry, EnvironmentVariablesApplyAndNameThemselvesInErrors) {
  ASSERT_EQ(setenv("TORCHWAN_LANES", "7", 1), 0);
  EXPECT_EQ(transport::TransportOptions::from_env().lanes, 7);
  ASSERT_EQ(setenv("TORCHWAN_LANES", "seven", 1), 0);
  try {
    transport::TransportOptions::from_env();
    ADD_FAILURE() << "a bad TORCHWAN_LANES was accepted";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("TORCHWAN_LANES"), std::string::npos) << error.what();
  }
  ASSERT_EQ(setenv("TORCHWAN_LANES", "", 1), 0);  // empty counts as unset
  EXPECT_EQ(transport::TransportOptions::from_env().lanes, 4);
  unsetenv("TORCHWAN_LANES");
  ASSERT_EQ(setenv("TORCHWAN_SCRATCH_CACHE_BYTES", "0", 1), 0);
  EXPECT_EQ(engine::ScratchPool::max_cached_bytes_from_env(), 0u);
  unsetenv("TORCHWAN_SCRATCH_CACHE_BYTES");
}

}  // namespace
}  // namespace torchwan
