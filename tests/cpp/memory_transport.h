// An in-process Transport for engine tests: ranks are threads of one process and a shared fabric
// matches each send with the receive of the same (source, destination, tag), in posting order,
// exactly as the real transports promise; an any-source receive takes the oldest unmatched send
// to it with its tag, and a send goes to the oldest receive (exact or any-source) that accepts it.
// Copies run on the fabric's own progress thread, which also runs the completion callbacks, and
// matched transfers are completed in a random order, so the engine cannot come to depend on
// completion order. Header-only: used by one test binary.
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
#include "transport/request_arguments.h"
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
    std::unique_lock<std::mutex> lock(mutex_);
    Posted posted{request, static_cast<uint8_t*>(data), length, self, next_sequence_++};
    if (aborted_[static_cast<size_t>(self)]) {
      lock.unlock();
      request->fail(std::make_exception_ptr(
          transport::TransportError(transport::ErrorKind::kAborted, "transport aborted", peer)));
      return request;
    }
    // The partner is the oldest posted request that accepts this one: a send can match an exact
    // or an any-source receive, an any-source receive the oldest send from any rank.
    std::deque<Posted>* partner_queue = nullptr;
    auto consider = [&partner_queue](std::map<Key, std::deque<Posted>>& queues, const Key& at) {
      auto found = queues.find(at);
      if (found == queues.end() || found->second.empty()) return;
      if (partner_queue == nullptr ||
          found->second.front().sequence < partner_queue->front().sequence) {
        partner_queue = &found->second;
      }
    };
    int source = peer;
    if (is_send) {
      consider(unmatched_receives_, key);
      consider(unmatched_receives_, Key{transport::kAnySource, peer, tag});
    } else if (peer == transport::kAnySource) {
      for (int sender = 0; sender < static_cast<int>(aborted_.size()); ++sender) {
        std::deque<Posted>* before = partner_queue;
        consider(unmatched_sends_, Key{sender, self, tag});
        if (partner_queue != before) source = sender;
      }
    } else {
      consider(unmatched_sends_, key);
    }
    if (partner_queue == nullptr) {
      (is_send ? unmatched_sends_[key] : unmatched_receives_[key]).push_back(std::move(posted));
      return request;
    }
    Posted partner = std::move(partner_queue->front());
    partner_queue->pop_front();
    if (is_send) {
      partner.request->set_source(self);
    } else {
      request->set_source(source);
    }
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
    int owner;          // the rank that posted it
    uint64_t sequence;  // posting order across the whole fabric
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
  uint64_t next_sequence_ = 0;
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
  std::shared_ptr<transport::Request> post(transport::Posting posting) override {
    transport::check_request_arguments(who(), rank_, size_, posting);
    return fabric_->post(posting.is_send(), rank_, posting.peer, posting.tag, posting.data,
                         posting.length, std::move(posting.callback));
  }
  void abort(const std::string& reason) override { fabric_->abort_rank(rank_, reason); }
  void set_peer_failure_handler(PeerFailureHandler) override {}

 private:
  std::string who() const { return "memory rank " + std::to_string(rank_); }

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
