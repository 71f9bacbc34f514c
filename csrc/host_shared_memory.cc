#include "csrc/host_shared_memory.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <random>
#include <utility>

#include "base/file_descriptor.h"
#include "base/log.h"
#include "csrc/exchange.h"

namespace torchwan::engine {
namespace {

// Steps of the set-up messages, far above the steps the allreduce itself uses (2 per 4 MiB chunk).
constexpr uint32_t kNameStep = 0xfff0;
constexpr uint32_t kVerdictStep = 0xfff1;

// Names travel in fixed-size records; what a peer sends is checked against the shape this code
// creates before it is opened, so a peer cannot make this process open an arbitrary object.
constexpr size_t kNameBytes = 64;
constexpr std::string_view kNamePrefix = "/torchwan-shm-";

bool is_segment_name(const std::string& name) {
  if (name.size() <= kNamePrefix.size() || name.size() >= kNameBytes ||
      name.compare(0, kNamePrefix.size(), kNamePrefix) != 0) {
    return false;
  }
  for (size_t i = kNamePrefix.size(); i < name.size(); ++i) {
    const char c = name[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == '-')) return false;
  }
  return true;
}

std::string errno_text(const char* what, int error) {
  return fmt::format("{}: {}", what, std::strerror(error));
}

}  // namespace

class HostSharedMemory::Mapping {
 public:
  Mapping() = default;
  Mapping(void* address, size_t bytes) : address_(address), bytes_(bytes) {}
  Mapping(Mapping&& other) noexcept
      : address_(std::exchange(other.address_, nullptr)), bytes_(other.bytes_) {}
  Mapping& operator=(Mapping&& other) noexcept {
    std::swap(address_, other.address_);
    std::swap(bytes_, other.bytes_);
    return *this;
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (address_ != nullptr) munmap(address_, bytes_);
  }
  uint8_t* data() const { return static_cast<uint8_t*>(address_); }

 private:
  void* address_ = nullptr;
  size_t bytes_ = 0;
};

HostSharedMemory::HostSharedMemory() = default;
HostSharedMemory::~HostSharedMemory() = default;

uint8_t* HostSharedMemory::slot(int rank, int slot) const {
  return segments_[static_cast<size_t>(rank)].data() + static_cast<size_t>(slot) * kSlotBytes;
}

std::string HostSharedMemory::create_own(int rank, std::string& why) {
  std::random_device random;
  const uint64_t nonce = (static_cast<uint64_t>(random()) << 32) | random();
  const std::string name = fmt::format("{}{}-{:016x}", kNamePrefix, getpid(), nonce);
  const base::FileDescriptor fd(shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600));
  if (fd.get() < 0) {
    why = errno_text("shm_open", errno);
    return "";
  }
  // Reserving the pages now turns a full /dev/shm into an error here rather than a SIGBUS on the
  // first write that finds no page.
  const int reserve_error = ftruncate(fd.get(), static_cast<off_t>(kSegmentBytes)) != 0
                                ? errno
                                : posix_fallocate(fd.get(), 0, static_cast<off_t>(kSegmentBytes));
  void* address = reserve_error == 0 ? mmap(nullptr, kSegmentBytes, PROT_READ | PROT_WRITE,
                                            MAP_SHARED, fd.get(), 0)
                                     : MAP_FAILED;
  if (address == MAP_FAILED) {
    why = reserve_error != 0 ? errno_text("reserving the segment", reserve_error)
                             : errno_text("mmap", errno);
    shm_unlink(name.c_str());
    return "";
  }
  segments_[static_cast<size_t>(rank)] = Mapping(address, kSegmentBytes);
  return name;
}

bool HostSharedMemory::map_peer(int peer, const std::string& name, std::string& why) {
  if (!is_segment_name(name)) {
    why = fmt::format("rank {} sent no valid segment name", peer);
    return false;
  }
  const base::FileDescriptor fd(shm_open(name.c_str(), O_RDONLY, 0));
  struct stat status {};
  if (fd.get() < 0 || fstat(fd.get(), &status) != 0) {
    why = fmt::format("rank {}'s segment {}: {}", peer, name, std::strerror(errno));
    return false;
  }
  if (static_cast<size_t>(status.st_size) != kSegmentBytes) {
    why = fmt::format("rank {}'s segment {} holds {} bytes, not {}", peer, name, status.st_size,
                      kSegmentBytes);
    return false;
  }
  void* address = mmap(nullptr, kSegmentBytes, PROT_READ, MAP_SHARED, fd.get(), 0);
  if (address == MAP_FAILED) {
    why = fmt::format("rank {}'s segment {}: mmap: {}", peer, name, std::strerror(errno));
    return false;
  }
  segments_[static_cast<size_t>(peer)] = Mapping(address, kSegmentBytes);
  return true;
}

bool HostSharedMemory::ready(Exchange& ex) {
  if (state_ != State::kUnset) return state_ == State::kReady;
  const int size = ex.size();
  const int rank = ex.rank();
  segments_.resize(static_cast<size_t>(size));
  std::string why;
  const std::string own_name = create_own(rank, why);

  // Every rank's name, then every rank's verdict on all of them.
  uint8_t* names = ex.scratch(kNameBytes * static_cast<size_t>(size));
  std::memset(names, 0, kNameBytes * static_cast<size_t>(size));
  uint8_t* own_record = names + kNameBytes * static_cast<size_t>(rank);
  std::memcpy(own_record, own_name.data(), own_name.size());
  for (int peer = 0; peer < size; ++peer) {
    if (peer == rank) continue;
    ex.send(peer, kNameStep, own_record, kNameBytes);
    ex.recv(peer, kNameStep, names + kNameBytes * static_cast<size_t>(peer), kNameBytes);
  }
  ex.wait_all();
  bool mapped = !own_name.empty();
  for (int peer = 0; peer < size && mapped; ++peer) {
    if (peer == rank) continue;
    const auto* record = reinterpret_cast<const char*>(names + kNameBytes * peer);
    mapped = map_peer(peer, std::string(record, strnlen(record, kNameBytes)), why);
  }
  uint8_t* verdicts = ex.scratch(static_cast<size_t>(size));
  verdicts[rank] = mapped ? 1 : 0;
  for (int peer = 0; peer < size; ++peer) {
    if (peer == rank) continue;
    ex.send(peer, kVerdictStep, &verdicts[rank], 1);
    ex.recv(peer, kVerdictStep, &verdicts[peer], 1);
  }
  ex.wait_all();
  // Everyone has mapped it (or given up): the name is no longer needed.
  if (!own_name.empty()) shm_unlink(own_name.c_str());

  int refused_by = -1;
  for (int peer = 0; peer < size && refused_by < 0; ++peer) {
    if (verdicts[peer] != 1) refused_by = peer;
  }
  auto logger = layer_logger("engine");
  if (refused_by < 0) {
    state_ = State::kReady;
    if (rank == 0) logger->info("shared memory: {} ranks on this host share their segments", size);
    return true;
  }
  state_ = State::kUnavailable;
  segments_.clear();
  if (!mapped) {
    logger->warn(
        "shared memory: rank {} cannot share memory with its host's ranks ({}); large "
        "allreduces go over the transport instead",
        rank, why);
  } else if (rank == 0) {
    logger->info(
        "shared memory: rank {} cannot share memory; large allreduces go over the "
        "transport instead",
        refused_by);
  }
  return false;
}

}  // namespace torchwan::engine
