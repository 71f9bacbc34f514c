// An in-process Transport for engine tests: ranks are threads of one process and a shared fabric
// matches each send with the receive of the same (source, destination, tag), in posting order,
// exactly as the real transports promise. Copies run on the fabric's own progress thread, which
// also runs the completion callbacks, and matched transfers are completed in a random order, so
// the engine cannot come to depend on completion order. Header-only: used by one test binary.
#pragma once

#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "transport/errors.h"
#include "transport/transport.h"

namespace torchwan::testing {

class MemoryFabric : public std::enable_shared_from_this<MemoryFabric> {
 public:
  using Request = transport::Request;
  using Tag = transport::Tag;

  explicit MemoryFabric(int size) : aborted_(static_cast<size_t>(size), false) {
    progress_ = std::thread([this] { progress_loop(); });
  }

  ~MemoryFabric() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    work_.notify_all();
    progress_.join();
    fail_unmatched([](const Posted&) { return true; }, transport::ErrorKind::kAborted,
                   "memory fabric destroyed");
  }

  std::shared_ptr<Request> post(bool is_send, int self, int peer, Tag tag, void* data,
                                size_t length, Request::Callback callback) {
    auto request = std::make_shared<Request>(peer, tag, length, std::move(callback));
    const Key key = is_send ? Key{self, peer, tag} : Key{peer, self, tag};
    std::weak_ptr<MemoryFabric> weak_fabric = weak_from_this();
    std::weak_ptr<Request> weak_request = request;
    request->set_cancel_hook([weak_fabric, weak_request, key, is_send] {
      auto fabric = weak_fabric.lock();
      auto cancelled = weak_request.lock();
      if (fabric && cancelled) fabric->cancel(key, is_send, cancelled);
    });
    Posted posted{request, static_cast<uint8_t*>(data), length, self};
    std::unique_lock<std::mutex> lock(mutex_);
    if (aborted_[static_cast<size_t>(self)]) {
      lock.unlock();
      request->fail(std::make_exception_ptr(
          transport::TransportError(transport::ErrorKind::kAborted, "transport aborted", peer)));
      return request;
    }
    auto& other_side = is_send ? unmatched_receives_[key] : unmatched_sends_[key];
    if (other_side.empty()) {
      (is_send ? unmatched_sends_[key] : unmatched_receives_[key]).push_back(std::move(posted));
      return request;
    }
    Posted partner = std::move(other_side.front());
    other_side.pop_front();
    transfers_.push_back(is_send ? Transfer{std::move(posted), std::move(partner)}
                                 : Transfer{std::move(partner), std::move(posted)});
    lock.unlock();
    work_.notify_one();
    return request;
  }

  void abort_rank(int rank, const std::string& reason) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      aborted_[static_cast<size_t>(rank)] = true;
    }
    fail_unmatched([rank](const Posted& posted) { return posted.owner == rank; },
                   transport::ErrorKind::kAborted, reason);
  }

 private:
  using Key = std::tuple<int, int, Tag>;  // source, destination, tag
  struct Posted {
    std::shared_ptr<Request> request;
    uint8_t* data;
    size_t length;
    int owner;  // the rank that posted it
  };
  struct Transfer {
    Posted send;
    Posted receive;
  };

  void cancel(const Key& key, bool is_send, const std::shared_ptr<Request>& request) {
    std::unique_lock<std::mutex> lock(mutex_);
    auto& queues = is_send ? unmatched_sends_ : unmatched_receives_;
    auto found = queues.find(key);
    if (found == queues.end()) return;  // already matched: the transfer will complete it
    auto& queue = found->second;
    for (auto it = queue.begin(); it != queue.end(); ++it) {
      if (it->request == request) {
        queue.erase(it);
        lock.unlock();
        request->fail(std::make_exception_ptr(transport::TransportError(
            transport::ErrorKind::kCanceled, "request canceled by its owner", request->peer())));
        return;
      }
    }
  }

  template <typename Predicate>
  void fail_unmatched(Predicate should_fail, transport::ErrorKind kind, const std::string& why) {
    std::vector<std::shared_ptr<Request>> failed;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto* queues : {&unmatched_sends_, &unmatched_receives_}) {
        for (auto& [key, queue] : *queues) {
          for (auto it = queue.begin(); it != queue.end();) {
            if (should_fail(*it)) {
              failed.push_back(it->request);
              it = queue.erase(it);
            } else {
              ++it;
            }
          }
        }
      }
    }
    for (auto& request : failed) {
      request->fail(std::make_exception_ptr(transport::TransportError(kind, why, request->peer())));
    }
  }

  void progress_loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      work_.wait(lock, [this] { return stopping_ || !transfers_.empty(); });
      if (transfers_.empty()) return;  // stopping with nothing left to copy
      std::uniform_int_distribution<size_t> pick(0, transfers_.size() - 1);
      const size_t index = pick(random_);
      Transfer transfer = std::move(transfers_[index]);
      transfers_[index] = std::move(transfers_.back());
      transfers_.pop_back();
      lock.unlock();
      if (transfer.send.length != transfer.receive.length) {
        const std::string why = "length mismatch: sent " + std::to_string(transfer.send.length) +
                                ", expected " + std::to_string(transfer.receive.length);
        for (auto* side : {&transfer.send, &transfer.receive}) {
          side->request->fail(std::make_exception_ptr(transport::TransportError(
              transport::ErrorKind::kSizeMismatch, why, side->request->peer())));
        }
      } else {
        if (transfer.send.length > 0) {
          std::memcpy(transfer.receive.data, transfer.send.data, transfer.send.length);
        }
        transfer.send.request->complete_part();
        transfer.receive.request->complete_part();
      }
      lock.lock();
    }
  }

  std::mutex mutex_;
  std::condition_variable work_;
  std::map<Key, std::deque<Posted>> unmatched_sends_;
  std::map<Key, std::deque<Posted>> unmatched_receives_;
  std::vector<Transfer> transfers_;
  std::vector<bool> aborted_;
  bool stopping_ = false;
  std::minstd_rand random_{20240611};
  std::thread progress_;  // started last, in the constructor body
};

class MemoryTransport final : public transport::Transport {
 public:
  MemoryTransport(std::shared_ptr<MemoryFabric> fabric, int rank, int size)
      : fabric_(std::move(fabric)), rank_(rank), size_(size) {
    options_.transport = "memory";
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return "memory"; }
  const transport::TransportOptions& options() const override { return options_; }
  std::shared_ptr<transport::Request> isend(int peer, transport::Tag tag, const void* data,
                                            size_t length,
                                            transport::Request::Callback callback) override {
    check_peer(peer);
    return fabric_->post(true, rank_, peer, tag, const_cast<void*>(data), length,
                         std::move(callback));
  }
  std::shared_ptr<transport::Request> irecv(int peer, transport::Tag tag, void* data, size_t length,
                                            transport::Request::Callback callback) override {
    check_peer(peer);
    return fabric_->post(false, rank_, peer, tag, data, length, std::move(callback));
  }
  void abort(const std::string& reason) override { fabric_->abort_rank(rank_, reason); }
  void set_peer_failure_handler(PeerFailureHandler) override {}

 private:
  void check_peer(int peer) const {
    if (peer < 0 || peer >= size_ || peer == rank_) {
      throw transport::TransportError(transport::ErrorKind::kInvalidArgument,
                                      "bad peer " + std::to_string(peer), peer);
    }
  }

  std::shared_ptr<MemoryFabric> fabric_;
  int rank_;
  int size_;
  transport::TransportOptions options_;
};

inline std::vector<std::unique_ptr<transport::Transport>> connect_memory_ranks(int size) {
  auto fabric = std::make_shared<MemoryFabric>(size);
  std::vector<std::unique_ptr<transport::Transport>> ranks;
  for (int rank = 0; rank < size; ++rank) {
    ranks.push_back(std::make_unique<MemoryTransport>(fabric, rank, size));
  }
  return ranks;
}

}  // namespace torchwan::testing
