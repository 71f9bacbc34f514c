// The key-value bootstrap store through which ranks exchange addresses. The c10d layer adapts
// c10d::Store to this interface; torch-free code and tests use MemoryStore or FileStore.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace torchwan::transport {

class Store {
 public:
  virtual ~Store() = default;
  virtual void set(const std::string& key, const std::vector<uint8_t>& value) = 0;
  // Blocks until `key` exists. Throws TransportError(kBootstrap) naming the key after `timeout`.
  virtual std::vector<uint8_t> get(const std::string& key, std::chrono::milliseconds timeout) = 0;
  // Whether `key` exists now, without waiting (connection setup polls the signals peers leave).
  virtual bool contains(const std::string& key);
};

// A view of another store with every key prefixed, so one store can serve several groups.
class PrefixStore final : public Store {
 public:
  PrefixStore(std::string prefix, Store& inner) : prefix_(std::move(prefix)), inner_(inner) {}
  void set(const std::string& key, const std::vector<uint8_t>& value) override {
    inner_.set(prefix_ + key, value);
  }
  std::vector<uint8_t> get(const std::string& key, std::chrono::milliseconds timeout) override {
    return inner_.get(prefix_ + key, timeout);
  }
  bool contains(const std::string& key) override { return inner_.contains(prefix_ + key); }

 private:
  std::string prefix_;
  Store& inner_;
};

// Thread-safe in-process store: ranks running as threads of one test process.
class MemoryStore final : public Store {
 public:
  MemoryStore();
  ~MemoryStore() override;
  void set(const std::string& key, const std::vector<uint8_t>& value) override;
  std::vector<uint8_t> get(const std::string& key, std::chrono::milliseconds timeout) override;
  bool contains(const std::string& key) override;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// A directory of files, one per key, written atomically (write + rename). Lets separate processes
// bootstrap without torch, e.g. the C++ tests that kill a peer process.
class FileStore final : public Store {
 public:
  explicit FileStore(std::string directory);
  void set(const std::string& key, const std::vector<uint8_t>& value) override;
  std::vector<uint8_t> get(const std::string& key, std::chrono::milliseconds timeout) override;
  bool contains(const std::string& key) override;

 private:
  std::string path_for(const std::string& key) const;
  std::string directory_;
};

}  // namespace torchwan::transport
