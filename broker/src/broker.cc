#include "alldata/broker/broker.h"

#include "membership/replace_check.h"
#include "net_util.h"
#include "server_context.h"
#include "session.h"

#include <sys/statvfs.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <list>
#include <thread>

namespace alldata::broker {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

constexpr const char* kVersion = "0.1.0";
constexpr const char* kLeaseMeta = "keygen.lease_ms";
constexpr const char* kOriginMeta = "origin";
constexpr const char* kNodeIdMeta = "node_id";

Status write_ready_file(const std::string& path, const std::string& client, const std::string& peer,
                        const std::string& gossip) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << "client=" << client << "\n";
    if (!peer.empty()) f << "peer=" << peer << "\n";
    if (!gossip.empty()) f << "gossip=" << gossip << "\n";
    f.flush();
    if (!f) return Error(ErrorCode::kStorageError, "cannot write ready file " + tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return Error(ErrorCode::kStorageError, "cannot rename " + tmp + ": " + ec.message());
  return {};
}

// One thread running one io_context; sessions on it are tracked here and touched only from
// that thread.
struct IoThread {
  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(io);
  std::list<std::weak_ptr<Session>> sessions;
  std::thread thread;
};

class BrokerImpl final : public Broker {
 public:
  BrokerImpl(BrokerOptions options, std::shared_ptr<spdlog::logger> logger)
      : options_(std::move(options)), logger_(std::move(logger)) {}

  ~BrokerImpl() override { stop(); }

  Status init();
  Status check_replace();

  std::string client_address() const override { return ctx_->client_address; }
  std::uint16_t client_port() const override { return port_; }
  std::string peer_address() const override { return peer_address_; }
  std::string gossip_address() const override { return cluster_ ? cluster_->gossip_address() : ""; }
  const std::string& node_id() const override { return node_id_; }
  std::uint64_t origin() const override { return keygen_->origin(); }

  void stop() override;
  void on_exit_request(std::function<void()> fn) override {
    std::unique_lock lock(exit_mu_);
    if (exit_requested_) {
      lock.unlock();
      if (fn) fn();
      return;
    }
    exit_handler_ = std::move(fn);
  }
  void wait() override {
    std::unique_lock lock(stop_mu_);
    stop_cv_.wait(lock, [&] { return stopped_; });
  }

 private:
  // Accepts on `acceptor` until it closes; `peer`: sessions are peer sessions.
  asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, bool peer);
  // Opens, binds and listens; the error names `what` and the address.
  Status listen(tcp::acceptor& acceptor, const std::string& address, const char* what);
  // Renews the key lease before it runs out; seals old intervals once a minute.
  asio::awaitable<void> lease_loop();
  Result<std::string> load_or_make(const char* name, const std::string& fresh);

  BrokerOptions options_;
  std::shared_ptr<spdlog::logger> logger_;
  SystemClock clock_;
  std::unique_ptr<storage::EventStore> store_;
  std::unique_ptr<Keygen> keygen_;
  std::unique_ptr<KeyLease> lease_;
  std::unique_ptr<LocalCoordinator> coordinator_;
  std::unique_ptr<asio::thread_pool> storage_pool_;
  std::string node_id_;
  std::string version_ = kVersion;
  std::unique_ptr<ConnectionTable> connection_table_;
  std::unique_ptr<ServerContext> ctx_;
  // Cluster membership (gossip, replication, hints) on its own thread; only with gossip.
  std::unique_ptr<asio::io_context> cluster_io_ = std::make_unique<asio::io_context>(1);
  asio::executor_work_guard<asio::io_context::executor_type> cluster_work_ =
      asio::make_work_guard(*cluster_io_);
  std::thread cluster_thread_;
  std::unique_ptr<Cluster> cluster_;
  std::mutex exit_mu_;  // guards the two below
  bool exit_requested_ = false;
  std::function<void()> exit_handler_;
  std::vector<std::unique_ptr<IoThread>> io_;
  std::unique_ptr<tcp::acceptor> acceptor_;
  std::unique_ptr<tcp::acceptor> peer_acceptor_;
  std::uint16_t port_ = 0;
  std::string peer_address_;
  std::size_t next_io_ = 0;
  // Sessions not yet ended; stop() waits on sessions_cv_ for it to reach zero.
  std::mutex sessions_mu_;
  std::condition_variable sessions_cv_;
  std::uint32_t live_sessions_ = 0;

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  bool stopped_ = false;
};

Result<std::string> BrokerImpl::load_or_make(const char* name, const std::string& fresh) {
  auto got = store_->get_meta(name);
  if (!got) return got.error();
  if (*got) return **got;
  if (auto st = store_->put_meta(name, fresh); !st) return st.error();
  return fresh;
}

// --replace NODE_ID: checked before the data folder is touched, so a refused attempt
// leaves it empty for the next one.
Status BrokerImpl::check_replace() {
  if (options_.replace.empty()) return {};
  if (!options_.node_id.empty() && options_.node_id != options_.replace) {
    return Error(ErrorCode::kBadRequest, "--replace " + options_.replace + " takes that node id; --node-id " +
                                             options_.node_id + " contradicts it");
  }
  std::error_code ec;
  const auto events = std::filesystem::path(options_.data_dir) / "events";
  if (std::filesystem::exists(events, ec) && !std::filesystem::is_empty(events, ec)) {
    return Error(ErrorCode::kBadRequest, "--replace needs an empty data folder, and " + events.string() +
                                             " holds a store: to restart a broker with its data, leave out --replace");
  }
  if (options_.gossip_listen.empty()) {
    return Error(ErrorCode::kBadRequest, "--replace needs --gossip-listen and --seeds: a cluster to join");
  }
  auto listen = parse_host_port(options_.gossip_listen, true);
  if (!listen) return Error(ErrorCode::kBadRequest, "--gossip-listen: " + listen.error().message);
  if (auto st = check_replaceable(options_.replace, options_.cluster_name, options_.seeds, listen->host,
                                  std::chrono::seconds(5), logger_);
      !st) {
    return Error(st.error().code, "--replace " + options_.replace + ": " + st.error().message);
  }
  logger_->warn("replacing {}: the cluster holds it dead; this broker takes its node id and pulls its partitions",
                options_.replace);
  options_.node_id = options_.replace;
  return {};
}

// The free space below which writes are refused (options.h, min_free_disk_bytes).
std::uint64_t min_free_disk_bytes(const BrokerOptions& o) {
  if (o.min_free_disk_bytes != BrokerOptions::kAutoMinFreeDisk) return o.min_free_disk_bytes;
  struct statvfs fs {};
  if (::statvfs(o.data_dir.c_str(), &fs) != 0) return 0;
  const std::uint64_t total = static_cast<std::uint64_t>(fs.f_blocks) * fs.f_frsize;
  return std::min<std::uint64_t>(total / 20, 1ull << 30);
}

Status BrokerImpl::init() {
  if (options_.partitions == 0 || options_.partitions > 65536) {
    return Error(ErrorCode::kBadRequest, "partitions must be between 1 and 65536");
  }
  if (options_.io_threads == 0) options_.io_threads = 1;
  if (options_.storage_threads == 0) options_.storage_threads = 1;

  if (auto st = check_replace(); !st) return st;
  std::error_code fec;
  std::filesystem::create_directories(options_.data_dir, fec);
  if (fec) {
    return Error(ErrorCode::kStorageError,
                 "cannot create data folder " + options_.data_dir + ": " + fec.message());
  }
  storage::Options so;
  so.path = (std::filesystem::path(options_.data_dir) / "events").string();
  so.sync = options_.sync;
  so.interval = options_.partition_interval;
  so.seal_after = std::max(options_.partition_interval, 2 * options_.max_key_skew);
  so.max_queued_bytes = options_.max_write_queue_bytes;
  so.max_hint_bytes_per_target = options_.max_hint_bytes_per_node;
  so.min_free_disk_bytes = min_free_disk_bytes(options_);
  so.logger = logger_;
  auto store = storage::EventStore::open(so);
  if (!store) return store.error();
  store_ = std::move(*store);

  // Identity: a random origin for keys, and a node id, both kept in the data folder.
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(random_origin()));
  auto origin_text = load_or_make(kOriginMeta, hex);
  if (!origin_text) return origin_text.error();
  const std::uint64_t origin = std::strtoull(origin_text->c_str(), nullptr, 16);
  auto stored_id = load_or_make(kNodeIdMeta, options_.node_id.empty()
                                                 ? "broker-" + origin_text->substr(0, 8)
                                                 : options_.node_id);
  if (!stored_id) return stored_id.error();
  node_id_ = options_.node_id.empty() ? *stored_id : options_.node_id;
  if (!options_.node_id.empty() && options_.node_id != *stored_id) {
    if (auto st = store_->put_meta(kNodeIdMeta, options_.node_id); !st) return st.error();
  }

  auto lease_ms = KeyLease::load(*store_);
  if (!lease_ms) return lease_ms.error();
  // Every key made before the restart is at or below the stored lease.
  keygen_ = std::make_unique<Keygen>(origin, clock_, (*lease_ms << 16) | 0xFFFF);
  keygen_->set_limit(keygen_->high_water());
  lease_ = std::make_unique<KeyLease>(*store_, *keygen_);
  if (auto st = lease_->extend(keygen_->high_water()); !st) return st.error();

  coordinator_ = std::make_unique<LocalCoordinator>(*store_);
  storage_pool_ = std::make_unique<asio::thread_pool>(options_.storage_threads);
  connection_table_ = std::make_unique<ConnectionTable>(ConnectionTable::Limits{
      options_.max_pending_connections, options_.max_connections,
      static_cast<std::uint64_t>(options_.evict_idle_after.count())});
  // Braces, not make_unique: an aggregate (clang 14 has no parenthesized aggregate init).
  ctx_.reset(new ServerContext{options_, *logger_, *store_, coordinator_.get(), *keygen_, *lease_,
                               *storage_pool_, node_id_, version_, *connection_table_});

  for (std::uint32_t i = 0; i < options_.io_threads; ++i) io_.push_back(std::make_unique<IoThread>());
  acceptor_ = std::make_unique<tcp::acceptor>(io_[0]->io);
  if (auto st = listen(*acceptor_, options_.client_listen, "clients"); !st) return st;
  port_ = acceptor_->local_endpoint().port();
  ctx_->client_address = endpoint_text(acceptor_->local_endpoint().address(), port_);
  if (!options_.peer_listen.empty()) {
    peer_acceptor_ = std::make_unique<tcp::acceptor>(io_[0]->io);
    if (auto st = listen(*peer_acceptor_, options_.peer_listen, "peers"); !st) return st;
    const auto peer = peer_acceptor_->local_endpoint();
    peer_address_ = endpoint_text(peer.address(), peer.port());
  }

  if (!options_.gossip_listen.empty()) {
    auto cluster = Cluster::start(options_, node_id_, ctx_->client_address, peer_address_, *store_,
                                  cluster_io_->get_executor(), *storage_pool_, logger_);
    if (!cluster) return cluster.error();
    cluster_ = std::move(*cluster);
    ctx_->cluster = cluster_.get();
    ctx_->coordinator = &cluster_->coordinator();
    cluster_->on_left([this] {
      std::function<void()> fn;
      {
        std::lock_guard lock(exit_mu_);
        exit_requested_ = true;
        fn = std::move(exit_handler_);
      }
      if (fn) fn();
    });
    cluster_thread_ = std::thread([this] { cluster_io_->run(); });
  }

  auto log_failure = [log = logger_](const char* what) {
    return [log, what](std::exception_ptr e) {
      if (e) log->error("{} failed: {}", what, describe_exception(e));
    };
  };
  asio::co_spawn(io_[0]->io, accept_loop(*acceptor_, false), log_failure("client accept loop"));
  if (peer_acceptor_) {
    asio::co_spawn(io_[0]->io, accept_loop(*peer_acceptor_, true), log_failure("peer accept loop"));
  }
  asio::co_spawn(io_[0]->io, lease_loop(), log_failure("key lease loop"));
  for (auto& t : io_) {
    t->thread = std::thread([io = &t->io] { io->run(); });
  }
  logger_->info("broker {} listening for clients on {}{}{} (data {}, sync {}, {} partitions, interval {} ms)",
                node_id_, ctx_->client_address, peer_address_.empty() ? "" : ", peers on ",
                peer_address_, options_.data_dir, options_.sync ? "on" : "off",
                options_.partitions, options_.partition_interval.count());
  if (!options_.ready_file.empty()) {
    auto st = write_ready_file(options_.ready_file, ctx_->client_address, peer_address_,
                               cluster_ ? cluster_->gossip_address() : "");
    if (!st) return st.error();
  }
  return {};
}

Status BrokerImpl::listen(tcp::acceptor& acceptor, const std::string& address, const char* what) {
  auto ip_port = parse_ip_port(address, /*allow_port_zero=*/true, "listen address");
  if (!ip_port) return ip_port.error();
  const tcp::endpoint endpoint(ip_port->ip, ip_port->port);
  boost::system::error_code ec;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Error(ErrorCode::kConnectionFailed,
                 std::string("cannot listen for ") + what + " on " + address + ": " + ec.message());
  }
  return {};
}

asio::awaitable<void> BrokerImpl::accept_loop(tcp::acceptor& acceptor, bool peer) {
  for (;;) {
    IoThread& target = *io_[next_io_++ % io_.size()];
    auto [ec, socket] = co_await acceptor.async_accept(target.io, asio::as_tuple(asio::use_awaitable));
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      logger_->warn("accept failed: {}", ec.message());
      // E.g. out of file descriptors: back off instead of spinning.
      asio::steady_timer t(acceptor.get_executor(), std::chrono::milliseconds(100));
      co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    if (ctx_->stopping.load()) co_return;
    // No limit here: the connection table bounds connections before hello (the oldest is
    // closed for a new one) and sessions after it (session.cc).
    ++ctx_->connections;
    {
      std::lock_guard lock(sessions_mu_);
      ++live_sessions_;
    }
    asio::post(target.io, [this, &target, peer, socket = std::move(socket)]() mutable {
      auto session = std::make_shared<Session>(std::move(socket), *ctx_, peer);
      target.sessions.push_back(session);
      auto it = std::prev(target.sessions.end());
      if (ctx_->stopping.load()) session->stop();
      asio::co_spawn(target.io, session->run(),
                     [this, &target, it, session](std::exception_ptr e) {
                       if (e) logger_->error("session {} ended with an exception", session->remote());
                       target.sessions.erase(it);
                       --ctx_->connections;
                       std::lock_guard lock(sessions_mu_);
                       if (--live_sessions_ == 0) sessions_cv_.notify_all();
                     });
    });
  }
}

asio::awaitable<void> BrokerImpl::lease_loop() {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  auto next_seal = std::chrono::steady_clock::now();
  while (!ctx_->stopping.load()) {
    timer.expires_after(std::chrono::milliseconds(500));
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    if (ctx_->stopping.load()) break;
    if (std::chrono::steady_clock::now() >= next_seal) {
      // Intervals past the acceptance window stop taking new writes and get digests.
      next_seal = std::chrono::steady_clock::now() + std::chrono::minutes(1);
      auto sealed = co_await asio::co_spawn(
          *storage_pool_,
          [this]() -> asio::awaitable<Result<std::size_t>> {
            co_return store_->seal_old_intervals(clock_.now_ms());
          },
          asio::use_awaitable);
      if (!sealed) {
        logger_->error("cannot seal old intervals: {}", sealed.error().to_string());
      } else if (*sealed > 0) {
        logger_->info("sealed {} interval(s)", *sealed);
      }
    }
    const std::uint64_t limit_ms = keygen_->limit() >> 16;
    const std::uint64_t used_ms = std::max(clock_.now_ms(), keygen_->high_water() >> 16);
    if (limit_ms < used_ms + KeyLease::kSpanMs / 2) {
      Status st = co_await asio::co_spawn(
          *storage_pool_,
          [this]() -> asio::awaitable<Status> { co_return lease_->extend(keygen_->high_water()); },
          asio::use_awaitable);
      if (!st) logger_->error("cannot renew the key lease: {}", st.error().to_string());
    }
  }
}

void BrokerImpl::stop() {
  {
    std::lock_guard lock(stop_mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (ctx_) {
    logger_->info("broker {} stopping: no new requests; answering those in flight", node_id_);
    ctx_->stopping.store(true);
    if (acceptor_) {
      asio::post(io_[0]->io, [this] {
        boost::system::error_code ignored;
        acceptor_->close(ignored);
        if (peer_acceptor_) peer_acceptor_->close(ignored);
      });
    }
    for (auto& t : io_) {
      asio::post(t->io, [&t] {
        for (auto& w : t->sessions) {
          if (auto s = w.lock()) s->stop();
        }
      });
    }
    // Sessions end once their in-flight requests are answered; bounded by the write timeout.
    const auto deadline = std::chrono::steady_clock::now() + options_.write_timeout +
                          options_.produce_timeout;
    {
      std::unique_lock lock(sessions_mu_);
      if (!sessions_cv_.wait_until(lock, deadline, [&] { return live_sessions_ == 0; })) {
        logger_->warn("{} sessions still open at the stop deadline; closing them", live_sessions_);
      }
    }
    if (cluster_ && cluster_thread_.joinable()) {
      // Sessions are done, but a write answered at QUORUM may still be replicating to its
      // last replica: let it finish (bounded), then stop gossip, handoff and peer
      // connections on their own thread. The promise is set from a second post, after the
      // close that cluster_->stop() posts itself.
      const auto writes_deadline = std::chrono::steady_clock::now() + 3 * options_.replica_timeout;
      while (cluster_->writes_in_flight() > 0 && std::chrono::steady_clock::now() < writes_deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      std::promise<void> stopped;
      asio::post(*cluster_io_, [&] {
        cluster_->stop();
        asio::post(*cluster_io_, [&] { stopped.set_value(); });
      });
      stopped.get_future().wait_for(std::chrono::seconds(5));
    }
    cluster_work_.reset();
    cluster_io_->stop();
    if (cluster_thread_.joinable()) cluster_thread_.join();
    for (auto& t : io_) t->work.reset();
    for (auto& t : io_) t->io.stop();
    for (auto& t : io_) {
      if (t->thread.joinable()) t->thread.join();
    }
    // Every thread that runs handlers is stopped; now finish the work that completes into
    // the (stopped, still alive) io_contexts: storage reads, then queued writes.
    storage_pool_->join();
    coordinator_.reset();
    cluster_.reset();
    store_.reset();  // writes everything queued, then closes RocksDB
    // Only now destroy what pending handlers point into: the cluster's coroutines (which
    // may hold work on session contexts) before the session contexts themselves.
    cluster_io_.reset();
    acceptor_.reset();
    peer_acceptor_.reset();
    for (auto& t : io_) t->sessions.clear();
    io_.clear();
    logger_->info("broker {} stopped", node_id_);
  }
  {
    std::lock_guard lock(stop_mu_);
    stopped_ = true;
  }
  stop_cv_.notify_all();
}

}  // namespace

Result<std::uint64_t> KeyLease::load(storage::EventStore& store) {
  auto v = store.get_meta(kLeaseMeta);
  if (!v) return v.error();
  if (!*v) return std::uint64_t{0};
  return std::strtoull((*v)->c_str(), nullptr, 10);
}

Status KeyLease::extend(std::uint64_t needed_hlc) {
  std::lock_guard lock(mu_);
  const std::uint64_t base_ms = std::max(needed_hlc >> 16, keygen_.clock().now_ms());
  if ((keygen_.limit() >> 16) >= base_ms + kSpanMs / 2) return {};  // renewed meanwhile
  const std::uint64_t lease_ms = base_ms + kSpanMs;
  if (auto st = store_.put_meta(kLeaseMeta, std::to_string(lease_ms)); !st) return st;
  keygen_.set_limit((lease_ms << 16) | 0xFFFF);
  return {};
}

Result<std::unique_ptr<Broker>> Broker::start(BrokerOptions options,
                                              std::shared_ptr<spdlog::logger> logger) {
  auto broker = std::make_unique<BrokerImpl>(std::move(options), std::move(logger));
  if (auto st = broker->init(); !st) {
    broker->stop();
    return st.error();
  }
  return std::unique_ptr<Broker>(std::move(broker));
}

}  // namespace alldata::broker
