// The rendezvous key-value store, as torch's TCPStore: rank 0 serves it on MASTER_PORT, every rank
// (rank 0 too) is a client. The ranks exchange what they need to connect to each other through it
// (gloo's pair addresses, the NCCL unique id); after that the collectives go peer to peer.
//
// The server runs on its own C++ thread: collectives block the calling (main) thread of rank 0 for
// as long as they take, and the other ranks may still be reading the store meanwhile, so it cannot
// live on Node's event loop.
//
// Wire format (both sides are this file): a message is [u32 length][u8 op][fields], a field is
// [u32 length][bytes], integers little-endian. A reply is [u32 length][u8 status][fields].
#pragma once
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "comm/net.h"

namespace othink::comm {

class StoreServer {
 public:
  // Listens on `port` (0: an ephemeral one, see port()) for a group of world_size ranks; throws
  // CommError when the port is taken.
  StoreServer(int port, int world_size);
  ~StoreServer();  // stops the thread and closes every connection
  StoreServer(const StoreServer&) = delete;
  StoreServer& operator=(const StoreServer&) = delete;

  int port() const { return port_; }

 private:
  struct Client;
  void run();
  // Handles one complete request of client c; false drops the connection.
  bool handle(Client& c, uint8_t op, const std::vector<std::string>& fields);
  void reply(Client& c, uint8_t status, const std::vector<std::string>& fields);
  void answer_waits();
  // Makes every pending and later wait fail with msg (a rank with another WORLD_SIZE, a rank
  // twice): the whole group then stops with the reason instead of timing out.
  void poison(const std::string& msg);

  Socket listener_;
  int port_ = 0;
  int world_size_;
  int wake_[2] = {-1, -1};  // self-pipe: the destructor wakes poll() with it
  std::thread thread_;
  // Only the server thread touches these.
  std::vector<Client*> clients_;
  std::map<std::string, std::string> data_;
  std::vector<bool> joined_;
  std::string poisoned_;
};

class StoreClient {
 public:
  // Connects to the store at host:port and introduces itself (rank, world_size), retrying until
  // `timeout` while the server is not up. A different WORLD_SIZE or a rank that is already there
  // throws CommError with the reason.
  StoreClient(const std::string& host, int port, int rank, int world_size, std::chrono::milliseconds timeout);

  void set(const std::string& key, const std::string& value);
  // Waits until every key exists (up to timeout), then returns; throws CommError naming them.
  void wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout);
  // wait({key}) then the value.
  std::string get(const std::string& key, std::chrono::milliseconds timeout);

  // The local IP address that reaches the store: the one the other ranks can reach us on.
  std::string local_address() const { return socket_.local_address(); }
  const std::string& address() const { return address_; }

 private:
  std::vector<std::string> request(uint8_t op, const std::vector<std::string>& fields, Clock::time_point deadline,
                                   const std::string& what);

  Socket socket_;
  std::string address_;  // host:port, for messages
  std::chrono::milliseconds timeout_;
  // A request that timed out leaves its reply in flight: the connection is then out of step.
  bool broken_ = false;
};

}  // namespace othink::comm
