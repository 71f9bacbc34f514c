// Data-parallel training of a small linear model on the "wan" backend, from plain C++ (LibTorch).
//
//   wan_train --rank 0 --world-size 3 --master-addr 127.0.0.1 --master-port 29500 [--steps 30]
//
// Each flag falls back to the variable torchrun sets (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT),
// so `torchrun --no-python --nproc-per-node=3 ./wan_train` works as well. Every rank trains on its
// own data, averages gradients over the group and prints a checksum of the final parameters: the
// checksums agree because every rank applies the same averaged gradient to the same start.
#include <torch/csrc/utils/tensor_flatten.h>
#include <torch/torch.h>
#include <torchwan/torchwan.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>
#include <thread>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <vector>

namespace {

// Shapes, seeds and the learning rate are fixed so that a single-process reference (see
// tests/python/test_cpp_api.py) can repeat the computation exactly.
constexpr int64_t kInputs = 16;
constexpr int64_t kOutputs = 4;
constexpr int64_t kBatch = 32;
constexpr double kLearningRate = 0.05;
constexpr uint64_t kInitSeed = 1000;  // + rank: ranks start different, rank 0's values win
constexpr uint64_t kTargetSeed = 2000;
constexpr uint64_t kDataSeed = 3000;  // + rank: every rank has its own shard of data

struct Config {
  int rank = 0;
  int world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  int steps = 30;
};

std::string env_or(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

Config parse_args(int argc, char** argv) {
  Config config;
  config.rank = std::stoi(env_or("RANK", "0"));
  config.world_size = std::stoi(env_or("WORLD_SIZE", "1"));
  config.master_addr = env_or("MASTER_ADDR", config.master_addr);
  config.master_port = std::stoi(env_or("MASTER_PORT", std::to_string(config.master_port)));
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) throw std::invalid_argument("missing value after " + flag);
    const std::string value = argv[i + 1];
    if (flag == "--rank") {
      config.rank = std::stoi(value);
    } else if (flag == "--world-size") {
      config.world_size = std::stoi(value);
    } else if (flag == "--master-addr") {
      config.master_addr = value;
    } else if (flag == "--master-port") {
      config.master_port = std::stoi(value);
    } else if (flag == "--steps") {
      config.steps = std::stoi(value);
    } else {
      throw std::invalid_argument("unknown flag " + flag);
    }
  }
  if (config.world_size < 1 || config.rank < 0 || config.rank >= config.world_size) {
    throw std::invalid_argument("need 0 <= rank < world size, got rank " +
                                std::to_string(config.rank) + " of " +
                                std::to_string(config.world_size));
  }
  return config;
}

// A ProcessGroup whose CPU collectives run on torchwan, bootstrapped through a TCPStore. The
// ProcessGroup (not the bare backend) is what torch's own C++ code expects, and it routes each
// call to the backend registered for the tensors' device.
struct WanGroup {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroup> group;
  bool hosts_store = false;
};

WanGroup make_process_group(const Config& config) {
  c10d::TCPStoreOptions store_options;
  store_options.port = static_cast<uint16_t>(config.master_port);
  // Under torchrun the agent already serves a store at MASTER_PORT; otherwise rank 0 hosts it.
  store_options.isServer =
      config.rank == 0 && env_or("TORCHELASTIC_USE_AGENT_STORE", "False") != "True";
  store_options.numWorkers = config.world_size;
  // The prefix keeps this group's keys apart from anything else sharing the store.
  auto store = c10::make_intrusive<c10d::PrefixStore>(
      "wan_train", c10::make_intrusive<c10d::TCPStore>(config.master_addr, store_options));

  // WanOptions defaults come from the TORCHWAN_* environment (transport, lanes, host, ...).
  auto backend =
      c10::make_intrusive<torchwan::ProcessGroupWan>(store, config.rank, config.world_size);
  auto group = c10::make_intrusive<c10d::ProcessGroup>(store, config.rank, config.world_size);
  using BackendType = c10d::ProcessGroup::BackendType;
  group->setBackend(c10::DeviceType::CPU, BackendType::CUSTOM, backend);
  group->setDefaultBackend(BackendType::CUSTOM);
  return {store, group, store_options.isServer};
}

// Returns once every rank has finished its last collective, meeting through the store rather
// than the data plane: a rank that closed its connections while a peer still waited for its last
// message would fail that peer. The rank hosting the store leaves last, so nobody loses it early.
void wait_for_everyone(const WanGroup& wan, const Config& config) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  const auto count_reaches = [&](const std::string& key, int64_t target) {
    while (wan.store->add(key, 0) < target) {
      if (std::chrono::steady_clock::now() > deadline) {
        throw std::runtime_error("timed out waiting for the other ranks to finish");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  };
  wan.store->add("finished", 1);
  count_reaches("finished", config.world_size);
  if (wan.hosts_store) {
    count_reaches("left", config.world_size - 1);
  } else {
    wan.store->add("left", 1);
  }
}

// One message per step instead of one per parameter: on a WAN every round trip is expensive.
void average_gradients(c10d::ProcessGroup& group, const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> grads;
  for (const auto& param : params) grads.push_back(param.grad());
  std::vector<torch::Tensor> flat{torch::utils::flatten_dense_tensors(grads)};
  group.allreduce(flat)->wait();
  flat[0].div_(group.getSize());
  auto averaged = torch::utils::unflatten_dense_tensors(flat[0], grads);
  for (size_t i = 0; i < grads.size(); ++i) grads[i].copy_(averaged[i]);
}

// Makes every rank start from rank 0's parameters, as DDP does at construction.
void broadcast_parameters(c10d::ProcessGroup& group, const std::vector<torch::Tensor>& params) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> flat{torch::utils::flatten_dense_tensors(params)};
  group.broadcast(flat)->wait();
  auto received = torch::utils::unflatten_dense_tensors(flat[0], params);
  for (size_t i = 0; i < params.size(); ++i) params[i].copy_(received[i]);
}

double global_mean(c10d::ProcessGroup& group, const torch::Tensor& local) {
  std::vector<torch::Tensor> value{local.detach().to(torch::kFloat64).reshape({1})};
  group.allreduce(value)->wait();
  return value[0].item<double>() / group.getSize();
}

// FNV-1a over the raw bytes: equal digests mean bit-identical parameters.
uint64_t digest(const torch::Tensor& tensor) {
  const auto bytes = tensor.contiguous();
  const auto* data = static_cast<const uint8_t*>(bytes.data_ptr());
  uint64_t hash = 14695981039346656037ull;
  for (size_t i = 0; i < bytes.nbytes(); ++i) hash = (hash ^ data[i]) * 1099511628211ull;
  return hash;
}

int run(const Config& config) {
  const WanGroup wan = make_process_group(config);
  c10d::ProcessGroup& group = *wan.group;

  torch::nn::Linear model(kInputs, kOutputs);
  {
    torch::NoGradGuard no_grad;
    auto init = at::detail::createCPUGenerator(kInitSeed + config.rank);
    model->weight.copy_(torch::randn({kOutputs, kInputs}, init) * 0.1);
    model->bias.zero_();
  }
  broadcast_parameters(group, model->parameters());

  // A linear regression problem: every rank sees a different shard of the same relation.
  auto target_gen = at::detail::createCPUGenerator(kTargetSeed);
  const auto true_weight = torch::randn({kOutputs, kInputs}, target_gen);
  auto data_gen = at::detail::createCPUGenerator(kDataSeed + config.rank);
  const auto inputs = torch::randn({kBatch, kInputs}, data_gen);
  const auto targets = torch::matmul(inputs, true_weight.t());

  torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(kLearningRate));
  double loss = 0.0;
  for (int step = 0; step < config.steps; ++step) {
    optimizer.zero_grad();
    const auto local_loss = torch::mse_loss(model->forward(inputs), targets);
    local_loss.backward();
    average_gradients(group, model->parameters());
    optimizer.step();
    if (step % 10 == 0 || step + 1 == config.steps) {
      loss = global_mean(group, local_loss);
      if (config.rank == 0) std::printf("step %3d  loss %.6f\n", step, loss);
    }
  }

  const auto params = torch::utils::flatten_dense_tensors(model->parameters()).detach();
  std::printf("rank %d of %d: steps %d final loss %.6f checksum %.9e digest %016llx\n", config.rank,
              config.world_size, config.steps, loss,
              params.to(torch::kFloat64).sum().item<double>(),
              static_cast<unsigned long long>(digest(params)));
  std::fflush(stdout);
  wait_for_everyone(wan, config);
  group.shutdown();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse_args(argc, argv));
  } catch (const torchwan::WanError& error) {
    // A failed collective: say which rank it blames, the machine to look at first.
    std::fprintf(stderr, "wan_train: %s\n", error.what_without_backtrace());
    if (error.peer() >= 0) std::fprintf(stderr, "wan_train: blamed rank %d\n", error.peer());
    return 1;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "wan_train: %s\n", error.what());
    return 1;
  }
}
