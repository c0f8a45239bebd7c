// RocksDB's info log routed into the store's spdlog logger instead of a LOG file in the data
// folder. Besides one place for every log line, this keeps a full disk from killing the
// process: Debian's RocksDB is built with assertions, and its file logger aborts on the
// write after a failed one (ENOSPC) (`WritableFileWriter::AssertFalseAndGetStatusForPrevError`).
// RocksDB's INFO and HEADER lines go to debug, WARN to warn, ERROR and FATAL to error.
#pragma once

#include <rocksdb/env.h>
#include <spdlog/logger.h>

#include <memory>

namespace alldata::storage {

std::shared_ptr<rocksdb::Logger> make_rocksdb_logger(std::shared_ptr<spdlog::logger> logger);

}  // namespace alldata::storage
