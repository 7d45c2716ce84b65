#include "comm/net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <thread>

namespace othink::comm {

std::string format_seconds(std::chrono::milliseconds ms) {
  char buf[32];
  const double s = ms.count() / 1000.0;
  std::snprintf(buf, sizeof buf, s == static_cast<long long>(s) ? "%.0fs" : "%.1fs", s);
  return buf;
}

Socket& Socket::operator=(Socket&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

void Socket::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

namespace {

// Milliseconds left until the deadline, for poll() (0 when it has passed).
int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 1 << 30));
}

// Waits until fd is ready for `events` or the deadline; false on timeout.
bool wait_ready(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int r = ::poll(&p, 1, remaining_ms(deadline));
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) return true;  // let the following read / write report the error
  }
}

}  // namespace

void Socket::send_all(const void* data, size_t n, Clock::time_point deadline, const std::string& what) const {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    // MSG_NOSIGNAL: a peer that went away is an error to report, not a SIGPIPE.
    const ssize_t k = ::send(fd_, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (k > 0) {
      p += k;
      n -= static_cast<size_t>(k);
      continue;
    }
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      if (!wait_ready(fd_, POLLOUT, deadline)) throw CommError(what + ": timed out sending");
      continue;
    }
    throw CommError(what + ": connection lost (" + std::strerror(errno) + ")");
  }
}

void Socket::recv_all(void* data, size_t n, Clock::time_point deadline, const std::string& what) const {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    const ssize_t k = ::recv(fd_, p, n, MSG_DONTWAIT);
    if (k > 0) {
      p += k;
      n -= static_cast<size_t>(k);
      continue;
    }
    if (k == 0) throw CommError(what + ": the connection was closed by the other side");
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      if (!wait_ready(fd_, POLLIN, deadline)) throw CommError(what + ": timed out");
      continue;
    }
    throw CommError(what + ": connection lost (" + std::strerror(errno) + ")");
  }
}

std::string Socket::local_address() const {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "";
  char host[NI_MAXHOST];
  if (::getnameinfo(reinterpret_cast<sockaddr*>(&addr), len, host, sizeof host, nullptr, 0, NI_NUMERICHOST) != 0) return "";
  std::string s(host);
  // An IPv4 peer reached through a dual-stack socket shows as ::ffff:a.b.c.d.
  if (s.rfind("::ffff:", 0) == 0 && s.find('.') != std::string::npos) s = s.substr(7);
  return s;
}

namespace {

// One non-blocking connect attempt to one resolved address; 0 or an errno.
int try_connect(const addrinfo* ai, Clock::time_point deadline, Socket& out) {
  Socket s(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
  if (!s.valid()) return errno;
  ::fcntl(s.fd(), F_SETFL, ::fcntl(s.fd(), F_GETFL) | O_NONBLOCK);
  if (::connect(s.fd(), ai->ai_addr, ai->ai_addrlen) != 0) {
    if (errno != EINPROGRESS) return errno;
    if (!wait_ready(s.fd(), POLLOUT, deadline)) return ETIMEDOUT;
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(s.fd(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return err;
  }
  const int one = 1;
  ::setsockopt(s.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // small request / reply messages
  out = std::move(s);
  return 0;
}

}  // namespace

Socket connect_with_retry(const std::string& host, int port, Clock::time_point deadline, const std::string& what) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  const std::string port_s = std::to_string(port);
  const int gai = ::getaddrinfo(host.c_str(), port_s.c_str(), &hints, &list);
  if (gai != 0) throw CommError(what + ": cannot resolve '" + host + "' (" + ::gai_strerror(gai) + ")");
  std::string last = "no address";
  auto backoff = std::chrono::milliseconds(20);
  for (;;) {
    for (const addrinfo* ai = list; ai; ai = ai->ai_next) {
      Socket s;
      const int err = try_connect(ai, deadline, s);
      if (err == 0) {
        ::freeaddrinfo(list);
        return s;
      }
      last = std::strerror(err);
    }
    if (Clock::now() + backoff >= deadline) break;
    // The other side may not listen yet (rank 0 starts later): retry, backing off to 1 s.
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
  }
  ::freeaddrinfo(list);
  throw CommError(what + ": could not connect to " + host + ":" + port_s + " (last error: " + last + ")");
}

Socket listen_on(int port, int& bound_port) {
  const int one = 1;
  int err = 0;
  Socket s(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (s.valid()) {
    const int zero = 0;
    ::setsockopt(s.fd(), IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);  // IPv4 clients too
    ::setsockopt(s.fd(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);   // a restart while old sockets sit in TIME_WAIT
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_any;
    a.sin6_port = htons(static_cast<uint16_t>(port));
    if (::bind(s.fd(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      err = errno;
      s.close();
    }
  }
  if (!s.valid() && err != EADDRINUSE) {
    // No IPv6 in this kernel / container: IPv4 only.
    s = Socket(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!s.valid()) throw CommError(std::string("cannot create a socket (") + std::strerror(errno) + ")");
    ::setsockopt(s.fd(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    a.sin_port = htons(static_cast<uint16_t>(port));
    err = ::bind(s.fd(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 ? 0 : errno;
    if (err != 0) s.close();
  }
  if (!s.valid()) {
    if (err == EADDRINUSE)
      throw CommError("MASTER_PORT " + std::to_string(port) +
                      " is already in use on this machine (another job, or a previous run still exiting?): choose another MASTER_PORT");
    throw CommError("cannot listen on MASTER_PORT " + std::to_string(port) + " (" + std::strerror(err) + ")");
  }
  if (::listen(s.fd(), 128) != 0) throw CommError(std::string("listen failed (") + std::strerror(errno) + ")");
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  ::getsockname(s.fd(), reinterpret_cast<sockaddr*>(&addr), &len);
  bound_port = addr.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port)
                                          : ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  return s;
}

}  // namespace othink::comm
