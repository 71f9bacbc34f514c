#include "csrc/ring.h"

#include <algorithm>

#include "csrc/algorithm_tuning.h"
#include "csrc/reduce.h"

namespace torchwan::engine {
namespace {

int wrap_rank(long value, int size) {
  const long wrapped = value % size;
  return static_cast<int>(wrapped < 0 ? wrapped + size : wrapped);
}

// One rank's side of a ring pass. Steps 0..P-2 are the reduce-scatter, steps P-1..2P-3 the
// allgather; a unit is step * K + chunk. Units are posted strictly in increasing order on both
// ends of every link, which is what lets tags (the unit number modulo 2^16) repeat safely.
class RingPipeline {
 public:
  RingPipeline(Exchange& ex, uint8_t* data, const RingLayout& layout, bool reduce_scatter,
               bool allgather, DataType dtype, ReduceOp op)
      : ex_(ex),
        data_(data),
        layout_(layout),
        dtype_(dtype),
        op_(op),
        element_bytes_(element_size(dtype)),
        rank_(ex.rank()),
        size_(ex.size()),
        k_(layout.chunks_per_segment),
        reduce_steps_(static_cast<size_t>(size_ - 1)),
        first_unit_(reduce_scatter ? 0 : reduce_steps_ * k_),
        end_unit_((allgather ? 2 * reduce_steps_ : reduce_steps_) * k_),
        fused_(reduce_scatter && allgather),
        send_peer_(wrap_rank(rank_ + 1, size_)),
        recv_peer_(wrap_rank(rank_ - 1, size_)),
        sends_(end_unit_ - first_unit_),
        recvs_(end_unit_ - first_unit_),
        next_send_(first_unit_),
        sends_retired_(first_unit_),
        next_receive_post_(first_unit_),
        next_process_(first_unit_),
        window_(std::min(kMaxChunksInFlight, end_unit_ - first_unit_)) {
    if (reduce_scatter && window_ > 0) staging_ = ex_.scratch(window_ * layout_.chunk_bytes);
  }

  void run() {
    while (next_process_ < end_unit_ || sends_retired_ < end_unit_) {
      const uint64_t seen = ex_.completions();
      bool progressed = retire_sends();
      progressed = process_receives() || progressed;
      progressed = post_sends() || progressed;
      progressed = post_receives() || progressed;
      if (!progressed) ex_.wait_for_completion(seen);
    }
  }

 private:
  struct Span {
    size_t offset;
    size_t bytes;
  };

  bool reduces(size_t unit) const { return unit / k_ < reduce_steps_; }

  // Reduce-scatter step s sends segment r-s-1 (so rank r ends owning segment r); allgather step
  // s sends segment r-s (starting with the owned one). Each step receives the segment before.
  int send_segment(size_t unit) const {
    const long step = static_cast<long>(unit / k_);
    const long reduce_steps = static_cast<long>(reduce_steps_);
    return wrap_rank(step < reduce_steps ? rank_ - step - 1 : rank_ - (step - reduce_steps), size_);
  }
  int receive_segment(size_t unit) const { return wrap_rank(send_segment(unit) - 1L, size_); }

  Span chunk_span(int segment, size_t unit) const {
    const size_t length = layout_.length[static_cast<size_t>(segment)];
    const size_t begin = std::min((unit % k_) * layout_.chunk_bytes, length);
    const size_t end = std::min(begin + layout_.chunk_bytes, length);
    return {layout_.offset[static_cast<size_t>(segment)] + begin, end - begin};
  }

  uint8_t* staging_slot(size_t unit) const {
    return staging_ + (unit % window_) * layout_.chunk_bytes;
  }
  static uint32_t tag_step(size_t unit) { return static_cast<uint32_t>(unit & 0xffffu); }

  bool send_completed(size_t unit) {
    if (unit < sends_retired_) return true;
    return unit < next_send_ && ex_.finished(sends_[unit - first_unit_]);
  }

  bool retire_sends() {
    bool progressed = false;
    while (sends_retired_ < next_send_ && ex_.finished(sends_[sends_retired_ - first_unit_])) {
      ++sends_retired_;
      progressed = true;
    }
    return progressed;
  }

  bool process_receives() {
    bool progressed = false;
    while (next_process_ < next_receive_post_) {
      Exchange::Handle& request = recvs_[next_process_ - first_unit_];
      if (!ex_.finished(request)) break;
      if (request && reduces(next_process_)) {
        const Span span = chunk_span(receive_segment(next_process_), next_process_);
        reduce_into(dtype_, op_, data_ + span.offset, staging_slot(next_process_),
                    span.bytes / element_bytes_);
      }
      request.reset();
      ++next_process_;
      progressed = true;
    }
    return progressed;
  }

  // A unit's data is final once the unit one step earlier (same chunk) has been received and
  // reduced; the first step sends what the rank already holds.
  bool send_ready(size_t unit) const {
    return unit < first_unit_ + k_ || unit - k_ < next_process_;
  }

  bool post_sends() {
    bool progressed = false;
    while (next_send_ < end_unit_ && next_send_ - sends_retired_ < window_ &&
           send_ready(next_send_)) {
      const Span span = chunk_span(send_segment(next_send_), next_send_);
      if (span.bytes > 0) {
        sends_[next_send_ - first_unit_] =
            ex_.send(send_peer_, tag_step(next_send_), data_ + span.offset, span.bytes);
      }
      ++next_send_;
      progressed = true;
    }
    return progressed;
  }

  // Reduce-scatter receives land in staging slots, always safe once the slot's previous unit is
  // processed. An allgather receive of a fused allreduce lands in the data itself, in a chunk
  // that the reduce-scatter sent (P-1 steps earlier) and reduced into (P steps earlier): it may
  // only be posted once both are over.
  bool may_post_receive(size_t unit) {
    if (!fused_ || reduces(unit)) return true;
    const size_t one_round = (reduce_steps_ + 1) * k_;  // P steps
    if (unit >= one_round && unit - one_round >= next_process_) return false;
    return send_completed(unit - reduce_steps_ * k_);
  }

  bool post_receives() {
    bool progressed = false;
    while (next_receive_post_ < end_unit_ && next_receive_post_ < next_process_ + window_ &&
           may_post_receive(next_receive_post_)) {
      const size_t unit = next_receive_post_;
      const Span span = chunk_span(receive_segment(unit), unit);
      if (span.bytes > 0) {
        uint8_t* destination = reduces(unit) ? staging_slot(unit) : data_ + span.offset;
        recvs_[unit - first_unit_] = ex_.recv(recv_peer_, tag_step(unit), destination, span.bytes);
      }
      ++next_receive_post_;
      progressed = true;
    }
    return progressed;
  }

  Exchange& ex_;
  uint8_t* const data_;
  const RingLayout& layout_;
  const DataType dtype_;
  const ReduceOp op_;
  const size_t element_bytes_;
  const int rank_;
  const int size_;
  const size_t k_;
  const size_t reduce_steps_;
  const size_t first_unit_;
  const size_t end_unit_;
  const bool fused_;
  const int send_peer_;
  const int recv_peer_;
  uint8_t* staging_ = nullptr;           // window_ chunks, owned by the Exchange
  std::vector<Exchange::Handle> sends_;  // by unit - first_unit_
  std::vector<Exchange::Handle> recvs_;
  size_t next_send_;          // first unit not yet sent
  size_t sends_retired_;      // every send below this has completed
  size_t next_receive_post_;  // first unit whose receive is not posted
  size_t next_process_;       // every receive below this has completed and been reduced
  const size_t window_;       // units in flight per direction, and staging slots
};

void run_ring(Exchange& ex, uint8_t* data, const RingLayout& layout, bool reduce_scatter,
              bool allgather, DataType dtype, ReduceOp op) {
  if (ex.size() < 2 || layout.chunks_per_segment == 0) return;
  RingPipeline(ex, data, layout, reduce_scatter, allgather, dtype, op).run();
}

RingLayout finish_layout(RingLayout layout, size_t element_bytes) {
  const size_t longest = *std::max_element(layout.length.begin(), layout.length.end());
  // No chunk longer than the longest segment: staging slots are chunk-sized.
  layout.chunk_bytes =
      std::max(element_bytes, std::min(pipeline_chunk_bytes(longest, element_bytes), longest));
  layout.chunks_per_segment = (longest + layout.chunk_bytes - 1) / layout.chunk_bytes;
  return layout;
}

}  // namespace

RingLayout balanced_ring_layout(size_t count, size_t element_bytes, int size) {
  const auto ranks = static_cast<size_t>(size);
  RingLayout layout;
  size_t offset = 0;
  for (size_t i = 0; i < ranks; ++i) {
    const size_t elements = count / ranks + (i < count % ranks ? 1 : 0);
    layout.offset.push_back(offset);
    layout.length.push_back(elements * element_bytes);
    offset += elements * element_bytes;
  }
  return finish_layout(std::move(layout), element_bytes);
}

RingLayout block_ring_layout(size_t block_bytes, size_t element_bytes, int size) {
  const auto ranks = static_cast<size_t>(size);
  RingLayout layout;
  for (size_t i = 0; i < ranks; ++i) {
    layout.offset.push_back(i * block_bytes);
    layout.length.push_back(block_bytes);
  }
  return finish_layout(std::move(layout), element_bytes);
}

void ring_reduce_scatter(Exchange& ex, uint8_t* data, const RingLayout& layout, DataType dtype,
                         ReduceOp op) {
  run_ring(ex, data, layout, true, false, dtype, op);
}

void ring_allgather(Exchange& ex, uint8_t* data, const RingLayout& layout) {
  run_ring(ex, data, layout, false, true, DataType::kUInt8, ReduceOp::kSum);
}

void ring_allreduce(Exchange& ex, uint8_t* data, const RingLayout& layout, DataType dtype,
                    ReduceOp op) {
  run_ring(ex, data, layout, true, true, dtype, op);
}

}  // namespace torchwan::engine
