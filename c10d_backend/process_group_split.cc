// dist.split_group and ProcessGroup::splitGroup: children over some of this group's ranks, on the
// same transport device.
#include <c10/util/Exception.h>

#include <algorithm>

#include "c10d_backend/process_group_wan.h"

namespace torchwan {

c10::intrusive_ptr<c10d::Backend::Options> ProcessGroupWan::getBackendOptions() {
  auto options = c10::make_intrusive<Options>(getBackendName(), timeout_.load());
  options->group_name = options_.group_name;
  for (const int rank : device_ranks_) options->global_ranks_in_group.push_back(rank);
  return options;
}

c10::intrusive_ptr<c10d::Backend> ProcessGroupWan::split(
    const c10::intrusive_ptr<c10d::Store>& store, const std::vector<int>& ranks,
    const c10::intrusive_ptr<Options>& opts) {
  check_usable("split");
  const auto found = std::find(ranks.begin(), ranks.end(), rank_);
  if (found == ranks.end()) return nullptr;
  std::vector<int> device_ranks;
  for (const int rank : ranks) {
    TORCH_CHECK_VALUE(rank >= 0 && rank < size_, "torchwan split: rank ", rank,
                      " is not a rank of this group of size ", size_);
    device_ranks.push_back(device_ranks_[static_cast<size_t>(rank)]);
  }
  WanOptions options = options_;
  if (opts) {
    if (opts->timeout > std::chrono::milliseconds::zero()) options.timeout = opts->timeout;
    options.group_name = opts->group_name;
  }
  // The child waits on the store while its rank 0 picks the channel: on its own connection.
  return c10::make_intrusive<ProcessGroupWan>(
      this, store->clone(), static_cast<int>(found - ranks.begin()), static_cast<int>(ranks.size()),
      device_ranks, std::move(options));
}

}  // namespace torchwan
