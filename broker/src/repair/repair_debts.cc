#include "repair/repair_debts.h"

#include <algorithm>
#include <charconv>
#include <limits>

namespace alldata::broker::repair {

void RepairDebts::add(std::string_view owner, std::string_view stream, std::uint32_t partition,
                      std::uint64_t from_ms, std::uint64_t to_ms) {
  std::lock_guard lock(mu_);
  Where where{std::string(owner), std::string(stream), partition};
  if (debts_.count(where) == 0 && debts_.size() >= max_entries_) {
    where = Where{std::string(owner), std::string(), kAllPartitions};
  }
  add_locked(std::move(where), from_ms, std::max(to_ms, from_ms + 1));
}

void RepairDebts::add_locked(Where where, std::uint64_t from_ms, std::uint64_t to_ms) {
  auto [it, fresh] = debts_.try_emplace(std::move(where), from_ms, to_ms);
  if (!fresh) {
    it->second.first = std::min(it->second.first, from_ms);
    it->second.second = std::max(it->second.second, to_ms);
  }
  ++version_;
}

void RepairDebts::settle(const Debt& d) {
  std::lock_guard lock(mu_);
  auto it = debts_.find(Where{d.owner, d.stream, d.partition});
  if (it == debts_.end()) return;
  if (it->second.first < d.from_ms || it->second.second > d.to_ms) return;  // it grew
  debts_.erase(it);
  ++version_;
}

std::vector<Debt> RepairDebts::all() const {
  std::lock_guard lock(mu_);
  std::vector<Debt> out;
  out.reserve(debts_.size());
  for (const auto& [where, range] : debts_) {
    out.push_back(Debt{std::get<0>(where), std::get<1>(where), std::get<2>(where), range.first, range.second});
  }
  return out;
}

std::optional<std::uint64_t> RepairDebts::oldest_ms() const {
  std::lock_guard lock(mu_);
  std::optional<std::uint64_t> oldest;
  for (const auto& [where, range] : debts_) {
    if (!oldest || range.first < *oldest) oldest = range.first;
  }
  return oldest;
}

std::map<std::string, std::uint64_t> RepairDebts::oldest_ms_by_owner() const {
  std::lock_guard lock(mu_);
  std::map<std::string, std::uint64_t> out;
  for (const auto& [where, range] : debts_) {
    auto [it, fresh] = out.emplace(std::get<0>(where), range.first);
    if (!fresh) it->second = std::min(it->second, range.first);
  }
  return out;
}

std::size_t RepairDebts::size() const {
  std::lock_guard lock(mu_);
  return debts_.size();
}

std::uint64_t RepairDebts::version() const {
  std::lock_guard lock(mu_);
  return version_;
}

// One line per debt: from to partition owner-length owner stream (the stream is the rest
// of the line; owners and streams may not hold newlines).
std::string RepairDebts::encode() const {
  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& [where, range] : debts_) {
    const auto& [owner, stream, partition] = where;
    out += std::to_string(range.first) + " " + std::to_string(range.second) + " " + std::to_string(partition) +
           " " + std::to_string(owner.size()) + " " + owner + stream + "\n";
  }
  return out;
}

namespace {

bool read_number(std::string_view& line, std::uint64_t& out) {
  const auto space = line.find(' ');
  if (space == std::string_view::npos) return false;
  const auto [end, ec] = std::from_chars(line.data(), line.data() + space, out);
  if (ec != std::errc() || end != line.data() + space) return false;
  line.remove_prefix(space + 1);
  return true;
}

}  // namespace

Status RepairDebts::decode(std::string_view text) {
  std::map<Where, std::pair<std::uint64_t, std::uint64_t>> read;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    if (nl == std::string_view::npos) return Error(ErrorCode::kStorageError, "repair debts: truncated line");
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    std::uint64_t from = 0, to = 0, partition = 0, owner_bytes = 0;
    if (!read_number(line, from) || !read_number(line, to) || !read_number(line, partition) ||
        !read_number(line, owner_bytes) || owner_bytes > line.size() ||
        partition > std::numeric_limits<std::uint32_t>::max()) {
      return Error(ErrorCode::kStorageError, "repair debts: malformed line");
    }
    read[Where{std::string(line.substr(0, owner_bytes)), std::string(line.substr(owner_bytes)),
               static_cast<std::uint32_t>(partition)}] = {from, to};
  }
  std::lock_guard lock(mu_);
  debts_ = std::move(read);
  ++version_;
  return {};
}

}  // namespace alldata::broker::repair
