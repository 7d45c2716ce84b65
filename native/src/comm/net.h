// Blocking TCP with deadlines, for the rendezvous store (comm/store.h): every wait has an end, so a
// dead or missing peer becomes an error that says what was awaited, never a hang.
#pragma once
#include <chrono>
#include <cstddef>
#include <stdexcept>
#include <string>

namespace othink::comm {

using Clock = std::chrono::steady_clock;

// Every failure of the communicator (store, gloo, NCCL) as one type, so the bindings turn it into a
// JS Error naming the call.
struct CommError : std::runtime_error {
  explicit CommError(const std::string& msg) : std::runtime_error(msg) {}
};

// Seconds as people read them in an error ("2.5s", "1800s").
std::string format_seconds(std::chrono::milliseconds ms);

// An owned socket; closed on destruction.
class Socket {
 public:
  Socket() = default;
  explicit Socket(int fd) : fd_(fd) {}
  Socket(Socket&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Socket& operator=(Socket&& o) noexcept;
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket() { close(); }

  int fd() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void close();

  // Sends / receives exactly n bytes before the deadline; throws CommError("<what>: ...") on a
  // closed connection, a socket error or the deadline.
  void send_all(const void* data, size_t n, Clock::time_point deadline, const std::string& what) const;
  void recv_all(void* data, size_t n, Clock::time_point deadline, const std::string& what) const;

  // The local IP address of a connected socket ("10.0.0.5"): the interface that reaches the peer.
  std::string local_address() const;

 private:
  int fd_ = -1;
};

// Connects to host:port, retrying refused / unreachable attempts until the deadline (the listener
// may not be up yet). A host that does not resolve fails at once. On timeout the CommError names
// host:port and the last socket error.
Socket connect_with_retry(const std::string& host, int port, Clock::time_point deadline, const std::string& what);

// Listens on every interface (IPv6 dual-stack when the kernel has it, else IPv4) on `port` (0: an
// ephemeral one). A port already taken throws CommError naming it; bound_port gets the real port.
Socket listen_on(int port, int& bound_port);

}  // namespace othink::comm
