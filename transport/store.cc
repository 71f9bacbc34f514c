#include "transport/store.h"

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <thread>

#include "transport/errors.h"

namespace torchwan::transport {

namespace {

[[noreturn]] void throw_missing_key(const std::string& key, std::chrono::milliseconds timeout) {
  throw TransportError(ErrorKind::kBootstrap, "bootstrap store: key '" + key +
                                                  "' did not appear within " +
                                                  std::to_string(timeout.count()) + " ms");
}

}  // namespace

struct MemoryStore::State {
  std::mutex mutex;
  std::condition_variable changed;
  std::map<std::string, std::vector<uint8_t>> values;
};

MemoryStore::MemoryStore() : state_(std::make_unique<State>()) {}
MemoryStore::~MemoryStore() = default;

void MemoryStore::set(const std::string& key, const std::vector<uint8_t>& value) {
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->values[key] = value;
  }
  state_->changed.notify_all();
}

std::vector<uint8_t> MemoryStore::get(const std::string& key, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(state_->mutex);
  bool found = state_->changed.wait_for(lock, timeout, [&] { return state_->values.count(key); });
  if (!found) throw_missing_key(key, timeout);
  return state_->values[key];
}

bool MemoryStore::contains(const std::string& key) {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->values.count(key) != 0;
}

FileStore::FileStore(std::string directory) : directory_(std::move(directory)) {
  std::filesystem::create_directories(directory_);
}

std::string FileStore::path_for(const std::string& key) const {
  // Keys may hold '/', which would name subdirectories; flatten them.
  std::string name = key;
  for (char& c : name) {
    if (c == '/') c = '%';
  }
  return directory_ + "/" + name;
}

void FileStore::set(const std::string& key, const std::vector<uint8_t>& value) {
  const std::string path = path_for(key);
  const std::string temp =
      path + ".tmp" + std::to_string(std::hash<std::thread::id>{}(std::this_thread::get_id()));
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(value.data()),
              static_cast<std::streamsize>(value.size()));
    if (!out) {
      throw TransportError(ErrorKind::kBootstrap, "file store: cannot write " + temp);
    }
  }
  std::filesystem::rename(temp, path);
}

std::vector<uint8_t> FileStore::get(const std::string& key, std::chrono::milliseconds timeout) {
  const std::string path = path_for(key);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    std::ifstream in(path, std::ios::binary);
    if (in) {
      return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
    }
    if (std::chrono::steady_clock::now() >= deadline) throw_missing_key(key, timeout);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

bool FileStore::contains(const std::string& key) { return std::filesystem::exists(path_for(key)); }

bool Store::contains(const std::string& key) {
  // A store that cannot ask without waiting: the shortest wait (0 would mean "forever" to c10d).
  try {
    get(key, std::chrono::milliseconds(1));
    return true;
  } catch (const TransportError& missing) {
    if (missing.kind() == ErrorKind::kBootstrap) return false;
    throw;
  }
}

}  // namespace torchwan::transport
