#include "comm/store.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace othink::comm {

namespace {

enum Op : uint8_t { kHello = 1, kSet = 2, kGet = 3, kWait = 4 };
enum Status : uint8_t { kOk = 0, kError = 1 };

// Messages bigger than this are a client speaking another protocol (or garbage on the port).
constexpr uint32_t kMaxMessage = 64u << 20;

void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint32_t get_u32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

std::string encode(uint8_t head, const std::vector<std::string>& fields) {
  std::string body(1, static_cast<char>(head));
  for (const std::string& f : fields) {
    put_u32(body, static_cast<uint32_t>(f.size()));
    body += f;
  }
  std::string msg;
  put_u32(msg, static_cast<uint32_t>(body.size()));
  return msg + body;
}

// Splits a message body (after its length) into its head byte and fields; false when malformed.
bool decode(const char* p, size_t n, uint8_t& head, std::vector<std::string>& fields) {
  if (n < 1) return false;
  head = static_cast<uint8_t>(p[0]);
  size_t i = 1;
  while (i < n) {
    if (n - i < 4) return false;
    const uint32_t len = get_u32(p + i);
    i += 4;
    if (n - i < len) return false;
    fields.emplace_back(p + i, len);
    i += len;
  }
  return true;
}

std::string join_keys(const std::vector<std::string>& keys) {
  std::string s;
  for (const std::string& k : keys) s += (s.empty() ? "'" : ", '") + k + "'";
  return s;
}

}  // namespace

struct StoreServer::Client {
  Socket socket;
  std::string in;
  int rank = -1;
  bool dead = false;
  bool waiting = false;
  std::vector<std::string> wait_keys;
};

StoreServer::StoreServer(int port, int world_size) : world_size_(world_size), joined_(world_size, false) {
  listener_ = listen_on(port, port_);
  ::fcntl(listener_.fd(), F_SETFL, ::fcntl(listener_.fd(), F_GETFL) | O_NONBLOCK);
  if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) throw CommError(std::string("pipe failed: ") + std::strerror(errno));
  thread_ = std::thread([this] { run(); });
}

StoreServer::~StoreServer() {
  const char byte = 1;
  if (::write(wake_[1], &byte, 1) < 0) {
    // The pipe cannot be full (one byte, written once): nothing else to do.
  }
  if (thread_.joinable()) thread_.join();
  for (Client* c : clients_) delete c;
  ::close(wake_[0]);
  ::close(wake_[1]);
}

void StoreServer::run() {
  std::vector<pollfd> fds;
  for (;;) {
    fds.clear();
    fds.push_back({wake_[0], POLLIN, 0});
    fds.push_back({listener_.fd(), POLLIN, 0});
    for (Client* c : clients_) fds.push_back({c->socket.fd(), POLLIN, 0});
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[0].revents) return;  // the destructor asks us to stop
    if (fds[1].revents & POLLIN) {
      for (;;) {
        const int fd = ::accept4(listener_.fd(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) break;
        clients_.push_back(new Client{Socket(fd), {}, -1, false, false, {}});
      }
    }
    // Clients accepted above have no entry in fds yet: only the first fds.size() - 2 are polled.
    const size_t polled = fds.size() - 2;
    for (size_t i = 0; i < polled; ++i) {
      Client& c = *clients_[i];
      if (!fds[i + 2].revents) continue;
      char buf[65536];
      for (;;) {
        const ssize_t k = ::recv(c.socket.fd(), buf, sizeof buf, MSG_DONTWAIT);
        if (k > 0) {
          c.in.append(buf, static_cast<size_t>(k));
          continue;
        }
        if (k < 0 && errno == EINTR) continue;
        if (k == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) c.dead = true;  // closed, or a socket error
        break;
      }
      // Every complete message in the buffer, in order.
      while (!c.dead && c.in.size() >= 4) {
        const uint32_t len = get_u32(c.in.data());
        if (len > kMaxMessage) {
          c.dead = true;
          break;
        }
        if (c.in.size() < 4 + static_cast<size_t>(len)) break;
        uint8_t op = 0;
        std::vector<std::string> fields;
        if (!decode(c.in.data() + 4, len, op, fields) || !handle(c, op, fields)) c.dead = true;
        c.in.erase(0, 4 + static_cast<size_t>(len));
      }
    }
    // A rank that left while others wait for keys will not set them: fail those waits now
    // instead of letting them run into the timeout.
    for (Client* c : clients_) {
      if (!c->dead || c->rank < 0) continue;
      const std::string why = "rank " + std::to_string(c->rank) +
                              " left the rendezvous store (its process exited or lost the connection)";
      for (Client* w : clients_) {
        if (w->dead || !w->waiting) continue;
        w->waiting = false;
        reply(*w, kError, {why + " while this rank waited for " + join_keys(w->wait_keys)});
      }
    }
    clients_.erase(std::remove_if(clients_.begin(), clients_.end(),
                                  [](Client* c) {
                                    if (!c->dead) return false;
                                    delete c;
                                    return true;
                                  }),
                   clients_.end());
  }
}

bool StoreServer::handle(Client& c, uint8_t op, const std::vector<std::string>& f) {
  switch (op) {
    case kHello: {
      if (f.size() != 2) return false;
      const int rank = std::atoi(f[0].c_str()), world = std::atoi(f[1].c_str());
      std::string err;
      if (world != world_size_)
        err = "WORLD_SIZE mismatch: rank " + f[0] + " has WORLD_SIZE=" + f[1] + " but rank 0 has WORLD_SIZE=" +
              std::to_string(world_size_) + " (every rank must be started with the same WORLD_SIZE)";
      else if (rank < 0 || rank >= world_size_)
        err = "rank " + f[0] + " is out of range for WORLD_SIZE=" + std::to_string(world_size_);
      else if (joined_[rank])
        err = "two processes joined with RANK=" + f[0] + " (each rank must be started once)";
      if (!err.empty()) {
        reply(c, kError, {err});
        poison(err);
        return true;
      }
      joined_[rank] = true;
      c.rank = rank;
      reply(c, kOk, {});
      return true;
    }
    case kSet:
      if (f.size() != 2) return false;
      data_[f[0]] = f[1];
      reply(c, kOk, {});
      answer_waits();
      return true;
    case kGet: {
      if (f.size() != 1) return false;
      auto it = data_.find(f[0]);
      if (it == data_.end()) reply(c, kError, {"the store has no key '" + f[0] + "'"});
      else reply(c, kOk, {it->second});
      return true;
    }
    case kWait:
      if (!poisoned_.empty()) {
        reply(c, kError, {poisoned_});
        return true;
      }
      c.waiting = true;
      c.wait_keys = f;
      answer_waits();
      return true;
    default:
      return false;
  }
}

void StoreServer::reply(Client& c, uint8_t status, const std::vector<std::string>& fields) {
  const std::string msg = encode(status, fields);
  try {
    // Replies are small and the client is reading: this only waits on a stalled peer.
    c.socket.send_all(msg.data(), msg.size(), Clock::now() + std::chrono::seconds(30), "store reply");
  } catch (const CommError&) {
    c.dead = true;
  }
}

void StoreServer::answer_waits() {
  for (Client* c : clients_) {
    if (c->dead || !c->waiting) continue;
    const bool ready = std::all_of(c->wait_keys.begin(), c->wait_keys.end(),
                                   [this](const std::string& k) { return data_.count(k) > 0; });
    if (!ready) continue;
    c->waiting = false;
    reply(*c, kOk, {});
  }
}

void StoreServer::poison(const std::string& msg) {
  if (poisoned_.empty()) poisoned_ = msg;
  for (Client* c : clients_) {
    if (c->dead || !c->waiting) continue;
    c->waiting = false;
    reply(*c, kError, {poisoned_});
  }
}

StoreClient::StoreClient(const std::string& host, int port, int rank, int world_size, std::chrono::milliseconds timeout)
    : address_(host + ":" + std::to_string(port)), timeout_(timeout) {
  const auto deadline = Clock::now() + timeout;
  try {
    socket_ = connect_with_retry(host, port, deadline, "rendezvous");
  } catch (const CommError& e) {
    throw CommError(std::string(e.what()) + " within " + format_seconds(timeout) +
                    ": is rank 0 running, and are MASTER_ADDR / MASTER_PORT its address and port?");
  }
  request(kHello, {std::to_string(rank), std::to_string(world_size)}, deadline, "joining the store at " + address_);
}

std::vector<std::string> StoreClient::request(uint8_t op, const std::vector<std::string>& fields,
                                              Clock::time_point deadline, const std::string& what) {
  if (broken_) throw CommError(what + ": an earlier store request failed, the connection is out of step");
  try {
    const std::string msg = encode(op, fields);
    socket_.send_all(msg.data(), msg.size(), deadline, what);
    char head[4];
    socket_.recv_all(head, 4, deadline, what);
    const uint32_t len = get_u32(head);
    if (len > kMaxMessage) throw CommError(what + ": a malformed reply (is MASTER_PORT another service's port?)");
    std::string body(len, '\0');
    socket_.recv_all(body.data(), len, deadline, what);
    uint8_t status = 0;
    std::vector<std::string> out;
    if (!decode(body.data(), body.size(), status, out))
      throw CommError(what + ": a malformed reply (is MASTER_PORT another service's port?)");
    if (status != kOk) throw CommError(out.empty() ? what + ": the store refused the request" : out[0]);
    return out;
  } catch (const CommError&) {
    broken_ = true;
    throw;
  }
}

void StoreClient::set(const std::string& key, const std::string& value) {
  request(kSet, {key, value}, Clock::now() + timeout_, "store set '" + key + "' at " + address_);
}

void StoreClient::wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) {
  try {
    request(kWait, keys, Clock::now() + timeout, "store wait");
  } catch (const CommError& e) {
    const std::string msg = e.what();
    if (msg.find("timed out") != std::string::npos)
      throw CommError("timed out after " + format_seconds(timeout) + " waiting for " + join_keys(keys) +
                      " in the rendezvous store at " + address_ + ": a rank did not start, or died");
    throw;
  }
}

std::string StoreClient::get(const std::string& key, std::chrono::milliseconds timeout) {
  wait({key}, timeout);
  return request(kGet, {key}, Clock::now() + timeout_, "store get '" + key + "' at " + address_)[0];
}

}  // namespace othink::comm
