#include "repair/debt_settler.h"

#include "on_pool.h"

#include "alldata/protocol/framing.h"
#include "alldata/protocol/key.h"
#include "alldata/protocol/wire.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <kj/exception.h>

namespace alldata::broker::repair {
namespace asio = boost::asio;

DebtSettler::DebtSettler(asio::any_io_executor executor, RepairDebts& debts, storage::EventStore& store,
                         asio::thread_pool& storage_pool, PeerClient& peers, const ViewSource& views,
                         std::chrono::milliseconds period, std::chrono::milliseconds request_timeout,
                         std::shared_ptr<spdlog::logger> log)
    : executor_(executor), debts_(debts), store_(store), storage_pool_(storage_pool), peers_(peers),
      views_(views), period_(period), request_timeout_(request_timeout), log_(std::move(log)), wake_(executor) {}

void DebtSettler::load() {
  auto got = store_.get_meta(kMetaKey);
  if (!got) {
    log_->error("cannot read the stored repair debts: {}", got.error().to_string());
    return;
  }
  if (!*got) return;
  if (auto st = debts_.decode(**got); !st) {
    log_->error("stored repair debts unreadable: {}", st.error().to_string());
    return;
  }
  persisted_version_ = debts_.version();
  if (debts_.size() > 0) {
    log_->warn("{} partitions have copies that only repair can restore: the watermark holds until it does",
               debts_.size());
  }
}

void DebtSettler::start() { asio::co_spawn(executor_, loop(), asio::detached); }

void DebtSettler::stop() {
  stopping_ = true;
  wake_.cancel();
}

asio::awaitable<bool> DebtSettler::settle(const Debt& d, const ViewMember& owner) {
  PeerClient::RequestBuilder build = [&d](wire::Request::Builder req) {
    auto r = req.initRepair();
    r.setFromMs(d.from_ms);
    r.setToMs(d.to_ms);
    if (d.partition != kAllPartitions) {
      r.setStream(protocol::text(d.stream));
      r.initPartitions(1).set(0, d.partition);
    }
  };
  auto answer = co_await peers_.request(owner.node_id, owner.peer_address, build, 128, request_timeout_);
  if (!answer) {
    log_->debug("repair debt of {} for {}/{}: {}", d.owner, d.stream, d.partition, answer.error().to_string());
    co_return false;
  }
  try {
    auto reader = protocol::make_reader(*answer);
    auto r = reader.getRoot<wire::Response>().getRepair();
    // The owner compared the partition (it owns it now) with every other live replica.
    co_return r.getPairsFailed() == 0 && r.getPartitions() > 0;
  } catch (const kj::Exception&) {
    co_return false;
  }
}

void DebtSettler::share_out(const Debt& d, const ClusterView& view) {
  std::size_t owners = 0;
  for (const ViewMember& m : view.members()) {
    if (!m.live() || (m.lifecycle != Lifecycle::kNormal && m.lifecycle != Lifecycle::kLeaving)) continue;
    debts_.add(m.node_id, "", kAllPartitions, d.from_ms, d.to_ms);
    ++owners;
  }
  debts_.settle(d);
  log_->warn("{} live owners are asked to repair every partition over [{}, {}): writes this broker had in "
             "flight when it died may have reached only some of them",
             owners, format_time_ms(d.from_ms), format_time_ms(d.to_ms));
}

asio::awaitable<void> DebtSettler::persist() {
  const std::uint64_t version = debts_.version();
  if (version == persisted_version_) co_return;
  // The text lives in this frame and the lambda only refers to it: on_pool's inner lambda
  // is a temporary inside co_await, which GCC 12 destroys twice (harmless only when it is
  // trivially destructible).
  const std::string text = debts_.encode();
  auto st = co_await on_pool(storage_pool_, [this, &text] { return store_.put_meta(kMetaKey, text); });
  if (st) {
    persisted_version_ = version;
  } else {
    log_->error("cannot store the repair debts: {}", st.error().to_string());
  }
}

asio::awaitable<void> DebtSettler::loop() {
  while (!stopping_) {
    wake_.expires_after(period_);
    co_await wake_.async_wait(asio::as_tuple(asio::use_awaitable));
    if (stopping_) break;
    co_await persist();  // first: a debt is durable before anything else is tried
    for (const Debt& d : debts_.all()) {
      if (stopping_) break;
      auto view = views_.view();
      if (d.owner == kEveryOwner) {
        if (view && view->ready()) share_out(d, *view);
        continue;
      }
      const ViewMember* owner = view ? view->member(d.owner) : nullptr;
      if (owner == nullptr) {
        if (view && view->ready()) {
          // Reaped or never known: its partitions have other owners, which background
          // repair fills; nothing of this debt can be settled with it.
          log_->warn("repair debt for {} dropped: no such member any more", d.owner);
          debts_.settle(d);
        }
        continue;
      }
      if (owner->lifecycle == Lifecycle::kLeft || owner->lifecycle == Lifecycle::kRemoved) {
        debts_.settle(d);  // its partitions moved; the placement change's repair fills the new owners
        continue;
      }
      if (!owner->live() || owner->peer_address.empty()) continue;
      if (co_await settle(d, *owner)) {
        debts_.settle(d);
        log_->info("repair debt settled: {} has the copies of {}/{} it lacked", d.owner, d.stream, d.partition);
      }
    }
    co_await persist();
  }
}

}  // namespace alldata::broker::repair
