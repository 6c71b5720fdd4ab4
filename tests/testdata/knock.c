/*
 * knock: the test suite's TCP load generator for net-bouncer (Linux; `cc -O2 -o knock knock.c`).
 *
 *   knock [-n TOTAL] [-c CONCURRENCY] [-s SOURCES] [-m wait|reset|close] [-t SECONDS] HOST PORT
 *
 * Makes TOTAL connections to HOST:PORT (HOST is a numeric IPv4 or IPv6 address, never a name),
 * at most CONCURRENCY in flight, with non-blocking sockets and one epoll set. With SOURCES > 1
 * (IPv4 only) connection i is bound to 127.0.0.(1 + i % SOURCES) before it connects, so that the
 * server sees many client addresses and one source address does not run out of ports.
 *
 * What a connection does once the handshake is done (-m):
 *   wait   (default) wait until the server closes it, counting any byte the server sends
 *   reset  close it at once with SO_LINGER 0: the client sends a RST, as a connect scan
 *          (nmap -sT) does
 *   close  close it at once the orderly way (FIN): the client's side ends in TIME-WAIT
 *
 * Output, one line on stdout when done or when SECONDS have passed:
 *   connections=N failed=N bytes=N seconds=S
 * connections: handshakes that completed (and, in wait mode, ended with the server's close);
 * failed: connections refused, timed out, left unfinished at the time limit or not even started
 * (no socket, no address); bytes: bytes received from the server (a honeypot sends none).
 * Exit status: 0 when every connection succeeded and no byte was received, 1 otherwise, 2 on bad
 * usage.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

/* Bounds of the options: the program never holds more than MAX_CONCURRENCY sockets. */
#define MAX_TOTAL 100000000L
#define MAX_CONCURRENCY 10000L
#define MAX_SOURCES 254L
#define MAX_SECONDS 3600L
#define DEFAULT_TOTAL 1000L
#define DEFAULT_CONCURRENCY 64L
#define DEFAULT_SECONDS 60L
/* File descriptors kept free for stdio and the epoll set. */
#define FD_RESERVE 16
#define EVENTS_PER_WAIT 256

enum mode { MODE_WAIT, MODE_RESET, MODE_CLOSE };
enum state { SLOT_FREE, SLOT_CONNECTING, SLOT_CONNECTED };

struct slot {
  int fd;
  enum state state;
};

struct counts {
  long started, connections, failed, bytes;
};

static void usage(void) {
  fprintf(stderr,
          "usage: knock [-n TOTAL] [-c CONCURRENCY] [-s SOURCES] [-m wait|reset|close] "
          "[-t SECONDS] HOST PORT\n");
}

/* Parses a whole decimal number in [min, max]; returns 0 on success. */
static int parse_long(const char *text, long min, long max, long *out) {
  char *end;
  errno = 0;
  long value = strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value < min || value > max) return -1;
  *out = value;
  return 0;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Target and source addresses. */
static struct sockaddr_storage target;
static socklen_t target_len;
static long sources = 1;

/* Starts connection number `index`: a non-blocking socket, bound and connecting. -1 if it failed. */
static int start_connection(long index) {
  int fd = socket(target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (sources > 1) {
    /* The port is chosen at connect time (IP_BIND_ADDRESS_NO_PORT), per 4-tuple: a bound source
     * address then does not limit the connections to its own range of ephemeral ports. */
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in source = {.sin_family = AF_INET};
    source.sin_addr.s_addr = htonl(INADDR_LOOPBACK + (uint32_t)(index % sources));
    if (bind(fd, (struct sockaddr *)&source, sizeof source) < 0) {
      close(fd);
      return -1;
    }
  }
  if (connect(fd, (struct sockaddr *)&target, target_len) < 0 && errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Closes a slot's socket; with SO_LINGER 0 the kernel sends a RST instead of a FIN. */
static void finish(int epoll_fd, struct slot *slot, int reset) {
  if (reset) {
    struct linger linger = {.l_onoff = 1, .l_linger = 0};
    setsockopt(slot->fd, SOL_SOCKET, SO_LINGER, &linger, sizeof linger);
  }
  epoll_ctl(epoll_fd, EPOLL_CTL_DEL, slot->fd, NULL);
  close(slot->fd);
  slot->fd = -1;
  slot->state = SLOT_FREE;
}

/* Reads what the server sent until it would block (0), closed (1) or failed (-1). */
static int drain(int fd, struct counts *counts) {
  char buffer[4096];
  for (;;) {
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n > 0) {
      counts->bytes += n;
      continue;
    }
    if (n == 0) return 1;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    /* A reset after the handshake is also the server closing the connection. */
    return errno == ECONNRESET ? 1 : -1;
  }
}

/* Handles an event on a slot's socket. */
static void on_event(int epoll_fd, struct slot *slot, uint32_t events, enum mode mode,
                     struct counts *counts) {
  if (slot->state == SLOT_CONNECTING) {
    int error = 0;
    socklen_t length = sizeof error;
    if (getsockopt(slot->fd, SOL_SOCKET, SO_ERROR, &error, &length) < 0) error = errno;
    if (error != 0 && error != ECONNRESET) {
      counts->failed++;
      finish(epoll_fd, slot, 0);
      return;
    }
    if (error == 0 && !(events & EPOLLOUT)) return; /* still connecting */
    if (mode != MODE_WAIT) {
      counts->connections++;
      finish(epoll_fd, slot, mode == MODE_RESET);
      return;
    }
    slot->state = SLOT_CONNECTED;
    struct epoll_event event = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = slot};
    if (epoll_ctl(epoll_fd, EPOLL_CTL_MOD, slot->fd, &event) < 0) {
      counts->failed++;
      finish(epoll_fd, slot, 0);
      return;
    }
  }
  int result = drain(slot->fd, counts);
  if (result == 0) return;
  if (result > 0) counts->connections++;
  else counts->failed++;
  finish(epoll_fd, slot, 0);
}

int main(int argc, char **argv) {
  long total = DEFAULT_TOTAL, concurrency = DEFAULT_CONCURRENCY, seconds = DEFAULT_SECONDS;
  enum mode mode = MODE_WAIT;
  int option;
  while ((option = getopt(argc, argv, "n:c:s:m:t:h")) != -1) {
    switch (option) {
      case 'n':
        if (parse_long(optarg, 1, MAX_TOTAL, &total) == 0) break;
        fprintf(stderr, "knock: -n must be 1-%ld, not \"%s\"\n", MAX_TOTAL, optarg);
        return 2;
      case 'c':
        if (parse_long(optarg, 1, MAX_CONCURRENCY, &concurrency) == 0) break;
        fprintf(stderr, "knock: -c must be 1-%ld, not \"%s\"\n", MAX_CONCURRENCY, optarg);
        return 2;
      case 's':
        if (parse_long(optarg, 1, MAX_SOURCES, &sources) == 0) break;
        fprintf(stderr, "knock: -s must be 1-%ld, not \"%s\"\n", MAX_SOURCES, optarg);
        return 2;
      case 'm':
        if (strcmp(optarg, "wait") == 0) mode = MODE_WAIT;
        else if (strcmp(optarg, "reset") == 0) mode = MODE_RESET;
        else if (strcmp(optarg, "close") == 0) mode = MODE_CLOSE;
        else {
          fprintf(stderr, "knock: -m must be wait, reset or close, not \"%s\"\n", optarg);
          return 2;
        }
        break;
      case 't':
        if (parse_long(optarg, 1, MAX_SECONDS, &seconds) == 0) break;
        fprintf(stderr, "knock: -t must be 1-%ld seconds, not \"%s\"\n", MAX_SECONDS, optarg);
        return 2;
      case 'h':
        usage();
        return 0;
      default:
        usage();
        return 2;
    }
  }
  if (argc - optind != 2) {
    usage();
    return 2;
  }
  const char *host = argv[optind];
  long port;
  if (parse_long(argv[optind + 1], 1, 65535, &port) != 0) {
    fprintf(stderr, "knock: PORT must be 1-65535, not \"%s\"\n", argv[optind + 1]);
    return 2;
  }
  memset(&target, 0, sizeof target);
  struct sockaddr_in *v4 = (struct sockaddr_in *)&target;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&target;
  if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)port);
    target_len = sizeof *v4;
  } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)port);
    target_len = sizeof *v6;
  } else {
    fprintf(stderr, "knock: HOST must be a numeric IPv4 or IPv6 address, not \"%s\"\n", host);
    return 2;
  }
  if (sources > 1 && target.ss_family != AF_INET) {
    fprintf(stderr, "knock: -s applies to IPv4 only (sources 127.0.0.1-127.0.0.N)\n");
    return 2;
  }
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY &&
      (rlim_t)concurrency + FD_RESERVE > limit.rlim_cur) {
    fprintf(stderr, "knock: -c %ld needs more open files than the limit of %lu\n", concurrency,
            (unsigned long)limit.rlim_cur);
    return 2;
  }
  if (concurrency > total) concurrency = total;

  struct slot *slots = calloc((size_t)concurrency, sizeof *slots);
  int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (slots == NULL || epoll_fd < 0) {
    perror("knock");
    return 1;
  }
  for (long i = 0; i < concurrency; i++) slots[i].fd = -1;

  struct counts counts = {0};
  long in_flight = 0;
  double start = now(), deadline = start + (double)seconds;
  struct epoll_event events[EVENTS_PER_WAIT];
  for (;;) {
    /* Fill the free slots while connections remain to be started. */
    for (long i = 0; i < concurrency && counts.started < total; i++) {
      if (slots[i].state != SLOT_FREE) continue;
      int fd = start_connection(counts.started++);
      if (fd < 0) {
        counts.failed++;
        continue;
      }
      slots[i].fd = fd;
      slots[i].state = SLOT_CONNECTING;
      struct epoll_event event = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.ptr = &slots[i]};
      if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event) < 0) {
        counts.failed++;
        close(fd);
        slots[i].fd = -1;
        slots[i].state = SLOT_FREE;
      }
    }
    in_flight = 0;
    for (long i = 0; i < concurrency; i++) in_flight += slots[i].state != SLOT_FREE;
    if (in_flight == 0 && counts.started >= total) break;
    double left = deadline - now();
    if (left <= 0) break;
    int timeout_ms = left > 1.0 ? 1000 : (int)(left * 1000) + 1;
    int ready = epoll_wait(epoll_fd, events, EVENTS_PER_WAIT, timeout_ms);
    if (ready < 0) {
      if (errno == EINTR) continue;
      perror("knock: epoll_wait");
      return 1;
    }
    for (int k = 0; k < ready; k++) {
      struct slot *slot = events[k].data.ptr;
      if (slot->state != SLOT_FREE) on_event(epoll_fd, slot, events[k].events, mode, &counts);
    }
  }
  double elapsed = now() - start;
  /* At the time limit: what is in flight and what was never started has failed. */
  long unfinished = in_flight + (total - counts.started);
  if (unfinished > 0) {
    fprintf(stderr, "knock: time limit of %ld s reached with %ld connections unfinished\n", seconds,
            unfinished);
    for (long i = 0; i < concurrency; i++) {
      if (slots[i].state != SLOT_FREE) finish(epoll_fd, &slots[i], 0);
    }
    counts.failed += unfinished;
  }
  printf("connections=%ld failed=%ld bytes=%ld seconds=%.3f\n", counts.connections, counts.failed,
         counts.bytes, elapsed);
  fflush(stdout);
  free(slots);
  close(epoll_fd);
  return counts.failed == 0 && counts.bytes == 0 ? 0 : 1;
}
