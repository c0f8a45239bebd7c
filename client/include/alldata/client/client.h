// The AllData client library in one include: Producer, Scanner, Admin.
#pragma once

#include "alldata/client/admin.h"
#include "alldata/client/producer.h"
#include "alldata/client/scanner.h"
#include "alldata/client/types.h"
