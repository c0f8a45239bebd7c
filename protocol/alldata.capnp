# AllData wire protocol, version 1.
#
# This file and protocol/README.md are the whole contract for a client or SDK writer.
# Every message travels in one frame: a 4-byte big-endian unsigned length N, then N bytes
# holding one Cap'n Proto message in the standard (unpacked) stream serialization.
# A client sends `Request`s and receives `Response`s on one TCP connection.
#
# Evolution rule: fields and enumerants are only ever added, with new ordinals; nothing is
# renumbered or removed. Unknown union members received by a broker are answered with
# `unknownRequest`.

@0xbf2a13fe6bef8097;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("alldata::wire");

const protocolVersion :UInt32 = 1;

# Every response carries one of these. `ok` means the request succeeded.
enum ErrorCode {
  ok @0;
  badRequest @1;          # the request is malformed (missing field, bad key length, ...)
  helloRequired @2;       # the first request on a connection must be `hello`
  unsupportedVersion @3;  # `hello.protocolVersion` is not spoken by this broker
  unknownRequest @4;      # a request kind this broker does not know
  notAllowed @5;          # a peer-only request on a client session, or bad credentials
  invalidStream @6;       # empty, too long, or illegal characters in a stream name
  invalidPartition @7;    # partition number >= the cluster's partition count
  eventTooLarge @8;       # one event's payload + headers exceed the broker's max-event-bytes
  keySkew @9;             # a client-supplied key's time is too far from the broker's clock
  invalidRange @10;       # scan with from > to
  storageError @11;       # the broker could not store or read (disk full, I/O error)
  overloaded @12;         # a queue is full: retry later with back-off
  timeout @13;            # the request did not complete within its timeout
  notEnoughReplicas @14;  # fewer replicas than the commit level asks for were written
  shuttingDown @15;       # the broker is stopping; retry on another broker
  internal @16;           # a bug in the broker; the message says more
  intervalSealed @17;     # the event's time interval no longer accepts writes
  notReady @18;           # the broker does not coordinate writes yet (it is joining, or its
                          # membership view is incomplete): retry on another broker
  keyConflict @19;        # an event's key is already stored with other content: events never
                          # change, the first stays (the message names the key)
}

enum Role {
  client @0;
  peer @1;
}

enum CommitLevel {
  any @0;     # stored durably on some broker (a hint counts)
  one @1;     # stored on one replica of the partition
  quorum @2;  # stored on floor(RF/2)+1 replicas (the default)
  all @3;     # stored on every replica
}

struct Header {
  name @0 :Text;
  value @1 :Data;
}

# One event. `key` is empty (the broker assigns one) or exactly 16 bytes:
#   bytes 0..5   unix time in milliseconds, big-endian
#   bytes 6..7   logical counter within that millisecond, big-endian
#   bytes 8..15  origin id, big-endian (the producer or broker that made the key)
# Keys are unique in the cluster and their byte order is time order.
struct Event {
  key @0 :Data;
  payload @1 :Data;
  headers @2 :List(Header);
  partition @3 :UInt32;   # set in scan results; ignored in produce
}

struct Hello {
  protocolVersion @0 :UInt32;   # the highest version the client speaks
  clientId @1 :Text;            # free text for logs
  role @2 :Role;
  credentials @3 :Data;         # reserved; empty today
}

struct HelloResult {
  protocolVersion @0 :UInt32;   # the version this session speaks
  nodeId @1 :Text;              # the broker's id
  partitions @2 :UInt32;        # partitions per stream in this cluster
  maxFrameBytes @3 :UInt32;     # frames longer than this are refused
  maxEventBytes @4 :UInt32;     # one event's payload + headers may not exceed this
  maxKeySkewMs @5 :UInt32;      # client keys must be within this of the broker's clock
  origin @6 :UInt64;            # the broker's own origin id (in keys it makes)
}

# Append events to one partition of one stream. All events of one request are stored
# atomically (one write batch): either all are acknowledged or none is.
struct Produce {
  stream @0 :Text;
  partition @1 :UInt32;         # ignored when partitionKey is set
  partitionKey @2 :Data;        # if non-empty: partition = xxh64(partitionKey, seed 0) % partitions
  commitLevel @3 :CommitLevel = quorum;
  timeoutMs @4 :UInt32;         # 0 = the broker's default
  events @5 :List(Event);
}

struct ProduceResult {
  keys @0 :Data;                # 16 bytes per event, in request order
  partition @1 :UInt32;         # the partition the events went to
  replicas @2 :UInt32;          # how many replicas acknowledged
}

# Read one partition of one stream over the key range [from, to), in key order.
# `from` and `to` are each empty or exactly 16 bytes (a key, or a time as the first 6 bytes
# with the rest 0x00). Empty `from` = the beginning of time, empty `to` = the end of time.
# A page ends after maxEvents events or once its events' bytes (payload and headers) reach maxBytes.
# To continue, send the same request with `from` = `ScanResult.nextFrom`.
struct Scan {
  stream @0 :Text;
  partition @1 :UInt32;
  from @2 :Data;
  to @3 :Data;
  maxEvents @4 :UInt32;         # 0 = broker default (1000)
  maxBytes @5 :UInt32;          # 0 = broker default (1 MiB)
}

struct ScanResult {
  events @0 :List(Event);
  nextFrom @1 :Data;            # where the next page starts (16 bytes)
  done @2 :Bool;                # true: nothing left in [from, to) now
}

struct Metadata {
  streams @0 :Bool;             # include the list of streams
  stream @1 :Text;              # if set: include the replica set of each partition of it
}

# Where one partition of a stream lives: its replicas in preference order (node ids as in
# MetadataResult.members). Scan a partition from any live replica.
struct PartitionReplicas {
  partition @0 :UInt32;
  nodeIds @1 :List(Text);
}

struct Member {
  nodeId @0 :Text;
  clientAddress @1 :Text;       # host:port
  peerAddress @2 :Text;         # host:port, empty when not a cluster member
  zone @3 :Text;
  region @4 :Text;
  live @5 :Bool;                # alive or suspect, and neither left nor removed
  phi @6 :Float64;              # obsolete (the failure detector is SWIM now): always 0
  pendingHints @7 :UInt64;
  liveness @8 :Liveness;        # what the answering broker's failure detector says
  lifecycle @9 :Lifecycle;      # protocol/README.md, "Member lifecycle"
  incarnation @10 :UInt64;      # rises when the member restarts, changes state or refutes
  handOverPartitions @11 :UInt64;  # joining: partitions it still pulls; leaving: still pushes
  handOverBytes @12 :UInt64;    # event bytes pulled or pushed so far in that hand-over
  incompleteSinceMs @13 :UInt64;  # may lack events from this time on (hints held for it,
                                  # repair debts owed to it); 0 = none known
}

struct MetadataResult {
  nodeId @0 :Text;              # the broker that answered
  partitions @1 :UInt32;
  replicationFactor @2 :UInt32;
  intervalMs @3 :UInt64;        # length of a storage interval
  members @4 :List(Member);
  streams @5 :List(Text);
  watermarkMs @6 :UInt64;       # below this time, ranges are complete (0 = unknown)
  version @7 :Text;             # the broker's software version
  sync @8 :Bool;                # whether writes are fsynced before acknowledgement
  replicaSets @9 :List(PartitionReplicas);  # for Metadata.stream, one per partition
  membershipStatus @10 :Text;   # "ready", or why the answering broker is not yet (joining:
                                # waiting for seeds ..., refused: ...); empty for a single broker
}

# Peer requests: reserved for the cluster (replication, hinted handoff, anti-entropy).
# A broker answers them with `notAllowed` on a client session.
struct Replicate {
  stream @0 :Text;
  partition @1 :UInt32;
  events @2 :List(Event);       # keys always set
  hintFor @3 :Text;             # non-empty: store as a hint for this node id (it was unreachable)
}

struct DeliverHints {
  stream @0 :Text;
  partition @1 :UInt32;
  events @2 :List(Event);
}

# Anti-entropy repair (broker/README.md, "Anti-entropy repair"). Digests cover event keys
# only: a count and the XOR of XXH64 (seed 0) of the 16 key bytes, so two replicas holding
# the same keys in a range have equal digests.
struct Digest {
  stream @0 :Text;
  partition @1 :UInt32;
  intervalStartMs @2 :UInt64;   # unused (kept for numbering)
  fromMs @3 :UInt64;            # without `bounds`: one digest per interval holding events of
  toMs @4 :UInt64;              #   the partition whose start is in [fromMs, toMs)
  bounds @5 :List(Data);        # else 2..65 strictly ascending 16-byte keys: one digest per
                                #   piece [bounds[i], bounds[i+1])
}

struct RangeDigest {
  startMs @0 :UInt64;           # per interval: the interval's start; per piece: unused
  count @1 :UInt64;
  xorHash @2 :UInt64;
}

struct DigestResult {
  digests @0 :List(RangeDigest);
}

struct FetchRange {
  stream @0 :Text;
  partition @1 :UInt32;
  from @2 :Data;                # with `keys` empty: list the keys of [from, to), at most
  to @3 :Data;                  #   `maxKeys` (<= 65536) of them
  maxKeys @4 :UInt32;
  keys @5 :Data;                # else: the events stored under these keys (16 bytes each,
                                #   ascending, at most 65536); the answer may stop early
}

struct FetchResult {
  keys @0 :Data;                # listing: 16 bytes per key, in order
  events @1 :List(Event);       # by keys: the events stored (keys not stored are left out)
  nextFrom @2 :Data;            # listing: where the next page starts; by keys: the first key
                                #   not read
  done @3 :Bool;                # nothing more to list, or every key was read
}

# Run anti-entropy repair on the broker reached now (a client request): it compares every
# partition it holds a replica of with each other live replica and copies what either
# lacks. Answered when the run ends (it may take long: use a long request timeout).
struct Repair {
  stream @0 :Text;              # empty: every stream the broker holds
  fromMs @1 :UInt64;            # the intervals holding a time in [fromMs, toMs); toMs 0 = now
  toMs @2 :UInt64;
  partitions @3 :List(UInt32);  # only these partitions (empty: every one); needs a stream
}

struct RepairResult {
  partitions @0 :UInt64;        # partitions of which the broker holds a replica, compared
  pairs @1 :UInt64;             # (partition, other replica) pairs compared
  pairsFailed @2 :UInt64;       # of those, the ones that stopped with an error
  rangesCompared @3 :UInt64;    # intervals and sub-ranges whose digests were compared
  rangesDiffered @4 :UInt64;
  keysListed @5 :UInt64;        # keys listed where ranges differed (both sides)
  eventsReceived @6 :UInt64;    # events this broker lacked and got
  eventsSent @7 :UInt64;        # events other replicas lacked and got from this broker
  bytesReceived @8 :UInt64;     # their record bytes
  bytesSent @9 :UInt64;
  bytesExchanged @10 :UInt64;   # every request and answer with other brokers
  seconds @11 :Float64;
  errors @12 :List(Text);       # the first few failures, "stream/partition with node: reason"
}

# An operator's verdict: member `nodeId` is gone for good (a client request, answered by
# any broker of the cluster). The survivors restore the replication factor from the copies
# that remain; the node id is refused afterwards.
struct RemoveMember {
  nodeId @0 :Text;
}

# An operator's request to broker `nodeId` (it must be the broker that receives it) to
# leave the cluster for good: it becomes `leaving`, pushes each partition it owns to the
# owners that take it over, delivers the hints it holds, becomes `left` and exits. Answered
# once the departure has started; `alldata cluster` shows its progress. A broker restarted
# while leaving carries on.
struct Decommission {
  nodeId @0 :Text;
}

struct Request {
  correlationId @0 :UInt64;     # echoed in the response; pick any value, unique per connection
  union {
    hello @1 :Hello;
    produce @2 :Produce;
    scan @3 :Scan;
    metadata @4 :Metadata;
    replicate @5 :Replicate;
    deliverHints @6 :DeliverHints;
    digest @7 :Digest;
    fetchRange @8 :FetchRange;
    repair @9 :Repair;
    removeMember @10 :RemoveMember;
    decommission @11 :Decommission;
  }
}

struct Response {
  correlationId @0 :UInt64;
  error @1 :ErrorCode;
  message @2 :Text;             # human-readable detail; empty on success
  union {
    none @3 :Void;              # error responses, and requests without a result
    hello @4 :HelloResult;
    produce @5 :ProduceResult;
    scan @6 :ScanResult;
    metadata @7 :MetadataResult;
    digest @8 :DigestResult;
    fetchRange @9 :FetchResult;
    repair @10 :RepairResult;
  }
}

# ---------------------------------------------------------------------------------------
# Membership (broker to broker; not part of the client protocol): SWIM-style failure
# detection with Lifeguard's refinements over UDP, dissemination piggybacked on its
# datagrams, and a full-state push-pull over TCP on the same port number. See
# broker/README.md, "Membership" for the protocol, and protocol/README.md, "Member
# lifecycle" for the states.
#
# UDP: one datagram holds one MembershipDatagram in the standard unpacked serialization,
# with no length prefix, at most `max-datagram-bytes` (1400) bytes.
# TCP: the requester sends one frame (4-byte big-endian length, then a PushPull message),
# the responder answers with one frame, and the connection closes.

const membershipMagic :UInt32 = 0x414c444d;  # "ALDM"

# What the failure detector says of a member.
enum Liveness {
  alive @0;
  suspect @1;   # a probe failed; the member may refute by raising its incarnation
  dead @2;      # the suspicion timed out unrefuted
}

# The member's role in the cluster (protocol/README.md, "Member lifecycle").
enum Lifecycle {
  joining @0;   # new; not an owner of partitions yet; does not coordinate writes
  normal @1;    # owns partitions
  leaving @2;   # still owns partitions, handing them over
  left @3;      # gone by its own decision; reaped later, its id refused
  removed @4;   # gone by an operator's decision; reaped later, its id refused
}

# What a broker publishes of itself. Only its owner changes it, under a new incarnation.
struct MemberState {
  clientAddress @0 :Text;
  peerAddress @1 :Text;
  zone @2 :Text;
  region @3 :Text;
  partitions @4 :UInt32;          # cluster setting: must equal ours
  replicationFactor @5 :UInt32;   # cluster setting: must equal ours
  lifecycle @6 :Lifecycle;        # joining, normal, leaving or left (removed is a verdict)
  watermarkMs @7 :UInt64;         # see watermarkHeld
  watermarkHeld @8 :Bool;         # true: complete below watermarkMs until further notice;
                                  # false: watermarkMs was its bound when published and it
                                  # advances with time from then on
  pendingHints @9 :UInt64;        # hints it holds for others
  load @10 :UInt64;               # replica writes in flight when published
  handOverPartitions @11 :UInt64; # joining: partitions still to pull; leaving: to push
  handOverBytes @12 :UInt64;      # event bytes pulled or pushed so far in that hand-over
  owed @13 :List(Owed);           # members that may lack events this member knows of
}

# Member `nodeId` may lack events from `sinceMs` on: this member holds hints for it, or
# knows of copies that were stored nowhere (repair debts). An empty nodeId stands for every
# other member (the list is bounded: the rest is folded into it).
struct Owed {
  nodeId @0 :Text;
  sinceMs @1 :UInt64;
}

# A member's own record at an incarnation. A higher incarnation supersedes a lower one; a
# member raises its incarnation to change its state or to refute a suspicion of it.
struct MemberAlive {
  nodeId @0 :Text;
  address @1 :Text;               # gossip host:port (UDP, and TCP for push-pull)
  incarnation @2 :UInt64;
  state @3 :MemberState;
  watermarkAgeMs @4 :UInt64;      # how long the sender has known state.watermarkMs (an
                                  # unheld watermark advances from when it was published)
}

# `from` suspects `nodeId` at `incarnation` (a probe of it failed).
struct MemberSuspect {
  nodeId @0 :Text;
  incarnation @1 :UInt64;
  from @2 :Text;
}

# `from` declares `nodeId` dead at `incarnation` (its suspicion timed out).
struct MemberDead {
  nodeId @0 :Text;
  incarnation @1 :UInt64;
  from @2 :Text;
}

# An operator removed `nodeId` (through broker `by`): final, whatever its incarnation.
struct MemberRemoved {
  nodeId @0 :Text;
  by @1 :Text;
}

struct Ping {
  seq @0 :UInt64;                 # echoed by the ack
  target @1 :Text;                # the node id the sender means to reach
}

# Probe `target` for the sender and forward its ack (and a nack if none came in time).
struct PingReq {
  seq @0 :UInt64;
  target @1 :Text;
  targetAddress @2 :Text;
  wantNack @3 :Bool;
}

struct Ack {
  seq @0 :UInt64;
}

struct Nack {
  seq @0 :UInt64;
}

# The sender will not talk to the receiver: its id is refused (left, removed, reaped,
# cluster settings that differ, or the member table is full). `reason` says which.
struct Refused {
  nodeId @0 :Text;
  reason @1 :Text;
}

struct MembershipMessage {
  union {
    ping @0 :Ping;
    pingReq @1 :PingReq;
    ack @2 :Ack;
    nack @3 :Nack;
    alive @4 :MemberAlive;
    suspect @5 :MemberSuspect;
    dead @6 :MemberDead;
    removed @7 :MemberRemoved;
    refused @8 :Refused;
  }
}

struct MembershipDatagram {
  magic @0 :UInt32;               # membershipMagic; anything else is dropped
  cluster @1 :Text;               # cluster name; datagrams of another cluster are dropped
  from @2 :Text;                  # the sender's node id
  fromAddress @3 :Text;           # the sender's gossip address: replies go there
  fromIncarnation @4 :UInt64;     # the sender's own incarnation now
  messages @5 :List(MembershipMessage);
}

# One member in a push-pull: its latest record and what the sender believes of it.
struct MemberEntry {
  record @0 :MemberAlive;
  liveness @1 :Liveness;
  removedBy @2 :Text;             # non-empty: removed by this broker
}

# A member that was forgotten. Final (left, removed): its node id may not come back until
# the tombstone expires. Not final (dead for longer than reap-after): records of it up to
# `incarnation` are old news; a newer incarnation (it restarted) is welcome again.
struct Tombstone {
  nodeId @0 :Text;
  reason @1 :Text;                # why, for logs: "left", "removed by b0", "dead"
  remainingMs @2 :UInt64;
  incarnation @3 :UInt64;
  final @4 :Bool;
}

struct PushPull {
  magic @0 :UInt32;               # membershipMagic
  cluster @1 :Text;
  from @2 :Text;
  fromAddress @3 :Text;
  join @4 :Bool;                  # the sender is joining (or rejoining)
  members @5 :List(MemberEntry);  # the sender's whole view, itself included
  tombstones @6 :List(Tombstone);
  refused @7 :Text;               # in an answer only: non-empty = the request was refused
  ping @8 :Bool;                  # a probe over TCP (when UDP pings went unanswered): no
                                  # members sent, nothing merged; answered with ping set
  query @9 :Bool;                 # a look at the view by a broker not yet running
                                  # (alldata-broker --replace): nothing merged; answered
                                  # with the whole view
}
